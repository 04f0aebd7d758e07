"""Greedy generation with llama.cpp (GGUF, quantised) against transformers (float32) on the same
model-store model, in one run.

Backs the claim that the optional ``llama-cpp`` backend is several times faster on CPU. Both
backends answer the same chat prompts with the same ``GenParams``, alternating rounds
(transformers, llama.cpp, transformers, ...) so that load on the machine hits both alike. The
baseline is the transformers backend at batch 1 (llama.cpp's high-level API runs one sequence) and
at ``--batch-size`` (its best case). Reported: generated tokens/s of each, the ratios
llama.cpp/transformers, mean time to first token, and how many greedy answers agree (the weights
are the same Q4_K_M values, but llama.cpp computes with quantised kernels, transformers with the
dequantised float32 weights).

    python benchmarks/llamacpp_generation.py --model qwen2.5-coder-0.5b-instruct \
        --out benchmarks/results/llamacpp_generation_qwen05.json

``--prompts FILE``: one question per line (default: built-in questions).
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
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="a built-in GGUF model of the store")
    ap.add_argument("--prompts", type=Path, help="text file, one question per line")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per backend")
    ap.add_argument("--batch-size", type=int, default=8, help="transformers' batched baseline")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, help="JSON file for the figures")
    args = ap.parse_args()

    from lab.generate import GenParams, make_backend
    from lab.io import write_json

    questions, prompts = chat_prompts(args.prompts)
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.0)

    from lab.generate.hf import TransformersBackend

    hf = make_backend({"backend": "transformers", "model": args.model, "batch_size": 1, "threads": args.threads})
    backends = {
        "transformers_batch1": hf,
        # the same loaded weights, batched: transformers' best case on CPU
        f"transformers_batch{args.batch_size}": TransformersBackend((hf.model, hf.tokenizer),
                                                                    batch_size=args.batch_size),
        "llama_cpp": make_backend({"backend": "llama-cpp", "model": args.model, "threads": args.threads}),
    }
    for b in backends.values():  # warm-up: first-call costs out of the timing
        b.generate(prompts[:1], GenParams(max_new_tokens=2, temperature=0.0))
    timing = {n: {"s": 0.0, "tokens": 0, "ttft": []} for n in backends}
    texts: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for n, b in backends.items():
            t0 = time.perf_counter()
            gens = b.generate(prompts, params)
            timing[n]["s"] += time.perf_counter() - t0
            timing[n]["tokens"] += sum(g.tokens_out for g in gens)
            timing[n]["ttft"] += [g.ttft_s for g in gens if g.ttft_s is not None]
            texts[n] = [g.text.strip() for g in gens]
    backends["llama_cpp"].close()
    rate = {n: t["tokens"] / t["s"] for n, t in timing.items()}
    ref = texts["transformers_batch1"]
    report = {
        "model": args.model, "questions": len(questions), "rounds": args.rounds, "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "tokens_per_s": {n: round(r, 2) for n, r in rate.items()},
        "ttft_mean_s": {n: round(sum(t["ttft"]) / len(t["ttft"]), 3) if t["ttft"] else None
                        for n, t in timing.items()},
        "ratio_llama_cpp_over_transformers_batch1": round(rate["llama_cpp"] / rate["transformers_batch1"], 2),
        f"ratio_llama_cpp_over_transformers_batch{args.batch_size}":
            round(rate["llama_cpp"] / rate[f"transformers_batch{args.batch_size}"], 2),
        "greedy_answers_equal_to_transformers": {n: f"{sum(a == b for a, b in zip(t, ref, strict=True))}/{len(ref)}"
                                                 for n, t in texts.items() if n != "transformers_batch1"},
        "answers": {n: t for n, t in texts.items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "note": "other work may share the cores; the alternating rounds hit every backend alike"},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report, indent=2)


if __name__ == "__main__":
    main()
