"""Greedy generation speed of a model-store causal LM in float32 vs bfloat16 on this machine.

Decides the dtype the model store converts GGUF models to ("whichever is faster here"). Both
dtypes answer the same prompts with the transformers backend in the same run, alternating
(fp32, bf16, fp32, bf16, ...) so that load on the machine hits both alike; the report gives
tokens/s per dtype, the ratio bf16/fp32, and whether the greedy answers agree.

    python benchmarks/dtype_generation.py --model qwen2.5-coder-0.5b-instruct \
        --out benchmarks/results/dtype_generation_qwen05.json

``--prompts FILE`` takes a text file with one question per line (default: built-in questions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from _questions import chat_prompts  # benchmarks/ is on sys.path when run as a script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="model-store spec")
    ap.add_argument("--prompts", type=Path, help="text file, one question per line")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per dtype")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, help="JSON file for the figures")
    args = ap.parse_args()

    from lab.generate import GenParams
    from lab.generate.hf import TransformersBackend
    from lab.io import write_json

    questions, prompts = chat_prompts(args.prompts)
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.0)

    backends = {d: TransformersBackend(args.model, dtype=d, batch_size=args.batch_size)
                for d in ("float32", "bfloat16")}
    for b in backends.values():  # warm-up: first-call costs out of the timing
        b.generate(prompts[:1], GenParams(max_new_tokens=2, temperature=0.0))
    timing: dict[str, dict[str, float]] = {d: {"s": 0.0, "tokens": 0} for d in backends}
    texts: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for d, b in backends.items():
            t0 = time.perf_counter()
            gens = b.generate(prompts, params)
            timing[d]["s"] += time.perf_counter() - t0
            timing[d]["tokens"] += sum(g.tokens_out for g in gens)
            texts[d] = [g.text for g in gens]
    for b in backends.values():
        b.close()
    rate = {d: t["tokens"] / t["s"] for d, t in timing.items()}
    agree = sum(a == b for a, b in zip(texts["float32"], texts["bfloat16"], strict=True))
    report = {
        "model": args.model, "questions": len(questions), "rounds": args.rounds,
        "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "tokens_per_s": {d: round(r, 2) for d, r in rate.items()},
        "ratio_bf16_over_fp32": round(rate["bfloat16"] / rate["float32"], 3),
        "faster": max(rate, key=rate.get),
        "greedy_answers_equal": f"{agree}/{len(questions)}",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "note": "other work may share the cores; the alternating rounds hit both dtypes alike"},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report, indent=2)


if __name__ == "__main__":
    main()
