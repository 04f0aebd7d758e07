"""Per-check latency (p50/p95) and throughput of the guardrail checks on CPU, against a same-run
baselines: one compiled e-mail regex over the same texts (the cheapest rule there is), and
Presidio's pattern recognisers without NER (what the ``pii`` check costs before any model runs).

Texts: user prompts (a labelled JSONL, default the shared deepset injection prompts) and PII texts
(Presidio span JSON, default the shared small generated set), each check timed one text at a time
as the request path calls it, after one warm-up call (model and pipeline loads are not in the
figures). Trained checks (injection, jailbreak, toxicity, the fine-tuned PII NER) load from
``--models DIR`` (``DIR/<name>``), the grounding judge from the judge stage beside it.

    python benchmarks/guardrails_latency.py --models results/guardrails_eval/models \
        --out benchmarks/results/guardrails_latency.json

``--long-inputs`` measures the trained classifiers on long texts instead (1,000 to 20,000 words of
benign scientific prose, each also with one held-out attack planted at a random position): the
false-positive rate, the recall by position quintile and the latency per check, with the check's
default windows against the whole text at once in the same run (``benchmarks/_long_inputs.py``
says how the texts are made and what the JSON holds):

    python benchmarks/guardrails_latency.py --long-inputs [--n 20 | --n 10 5 2] \
        --out benchmarks/results/guardrails_long_inputs.json

``--window-effect`` scores the guardrails stage's own labelled sets with the default windows and
whole, to show what windows change on them (``benchmarks/_window_effect.py``):

    python benchmarks/guardrails_latency.py --window-effect --out benchmarks/results/guardrails_window_effect.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _time(fn, texts: list[str]) -> dict[str, float]:
    fn(texts[0])  # warm-up
    ms = []
    t_all = time.perf_counter()
    for t in texts:
        t0 = time.perf_counter()
        fn(t)
        ms.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - t_all
    return {"n": len(texts), "p50_ms": round(_pct(ms, 0.5), 4), "p95_ms": round(_pct(ms, 0.95), 4),
            "mean_ms": round(statistics.fmean(ms), 4), "texts_per_s": round(len(texts) / wall, 1)}


class _Grounded:
    """The grounding check timed on (answer, context) pairs: each text is judged against another
    prompt of the set as its context (the cost does not depend on whether it is supported)."""

    def __init__(self, check, contexts: list[str]) -> None:
        self.check_, self.contexts = check, contexts

    def check(self, text: str):
        return self.check_.check(text[:300], context=[self.contexts[len(text) % len(self.contexts)]])


def long_inputs(args: argparse.Namespace, argv: Sequence[str] | None) -> dict:
    """The ``--long-inputs`` report (:mod:`_long_inputs`), with the machine and the command."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))   # benchmarks/ (already first when run as a script)
    from _long_inputs import run
    from guardrails_benign import classifier_training_files

    training = (classifier_training_files(ROOT / "params.yaml") if args.training_files is None
                else list(args.training_files))
    report = run(corpus=args.corpus, models=args.models, lengths=args.lengths, n=args.n, seed=args.seed,
                 training_files=training, calibration=args.calibration,
                 calibration_windows_max=args.calibration_windows,
                 progress=lambda line: print(line, file=sys.stderr, flush=True))
    report.update(cores_shared=bool(args.shared), cpu_count=os.cpu_count(), platform=platform.platform(),
                  command=shlex.join(["python", "benchmarks/guardrails_latency.py",
                                      *(argv if argv is not None else sys.argv[1:])]))
    return report


def window_effect(args: argparse.Namespace, argv: Sequence[str] | None) -> dict:
    """The ``--window-effect`` report (:mod:`_window_effect`), with the command."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _window_effect import run

    report = run(params=ROOT / "params.yaml", models=args.models)
    report["command"] = shlex.join(["python", "benchmarks/guardrails_latency.py",
                                    *(argv if argv is not None else sys.argv[1:])])
    return report


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=Path, default=ROOT / "data/guardrails/prompt_injection/deepset_train.jsonl")
    ap.add_argument("--pii", type=Path, default=ROOT / "data/guardrails/pii/presidio_generated_small.json")
    ap.add_argument("--models", type=Path, default=ROOT / "results/guardrails_eval/models")
    ap.add_argument("--limit", type=int, default=200, help="texts per set")
    ap.add_argument("--out", type=Path)
    long = ap.add_argument_group("long inputs (--long-inputs)")
    long.add_argument("--long-inputs", action="store_true",
                      help="measure the classifiers on long texts, windowed against whole (nothing else runs)")
    long.add_argument("--n", type=int, nargs="+", default=[20],
                      help="benign long texts per length, each with a planted copy: one count, or one per length")
    long.add_argument("--lengths", type=int, nargs="+", default=[1000, 5000, 20000], help="words per long text")
    long.add_argument("--corpus", type=Path, default=ROOT / "data/chroma_chunking/corpora/pubmed.md",
                      help="benign paragraphs: a text/Markdown file (one per line) or JSONL with 'text'")
    long.add_argument("--calibration", type=Path, nargs="*", default=[
        ROOT / f"data/chroma_chunking/corpora/{name}.md" for name in ("wikitexts", "finance", "state_of_the_union")],
                      help="benign prose of other domains whose windows set the calibrated cut (none: no such cut)")
    long.add_argument("--calibration-windows", type=int, default=200, help="at most this many calibration windows")
    long.add_argument("--seed", type=int, default=0)
    long.add_argument("--training-files", nargs="*", type=Path, default=None,
                      help="paragraphs found in these labelled files are left out (default: the classifiers' "
                           "training files of params.yaml guardrails_eval)")
    long.add_argument("--shared", action="store_true", help="record that other work shared the cores")
    ap.add_argument("--window-effect", action="store_true",
                    help="score the guardrails stage's labelled sets windowed and whole (nothing else runs)")
    args = ap.parse_args(argv)
    if args.long_inputs or args.window_effect:
        report = long_inputs(args, argv) if args.long_inputs else window_effect(args, argv)
        print(json.dumps(report, indent=2))
        if args.out:
            from lab.io import write_json

            write_json(args.out, report, indent=2)
        return

    from lab.guardrails import make_check
    from lab.guardrails.evaluate import read_labelled
    from lab.io import write_json

    prompts = read_labelled(args.prompts).texts[: args.limit]
    pii_texts = read_labelled(args.pii).texts[: args.limit]
    texts = prompts + pii_texts
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    checks = {"limits": make_check("limits"), "secrets": make_check("secrets"), "refusal": make_check("refusal"),
              "json_schema": make_check("json_schema", schema=schema), "pii": make_check("pii"),
              "injection_rules_only": make_check("injection", classifier=False)}
    skipped = {}
    for name in ("injection", "jailbreak", "toxicity"):
        folder = args.models / name
        if folder.is_dir():
            checks[name] = make_check(name, model_dir=str(folder))
        else:
            skipped[name] = f"no trained model in {folder} (dvc repro guardrails_eval, or --models DIR)"
    ner = args.models / "pii_ner" / "model"
    if (ner / "config.cfg").is_file():
        checks["pii_fine_tuned_ner"] = make_check("pii", nlp_model=str(ner))
    else:
        skipped["pii_fine_tuned_ner"] = f"no fine-tuned PII NER in {ner} (dvc repro guardrails_eval)"
    grounding = args.models.parents[1] / "judge_eval" / "models" / "faithfulness-cross-encoder"
    if grounding.is_dir():
        g = make_check("grounding", model_dir=str(grounding))
        checks["grounding"] = _Grounded(g, prompts)
    else:
        skipped["grounding"] = f"no trained faithfulness judge in {grounding} (dvc repro judge_eval)"
    # the baselines: one e-mail regex, and Presidio's pattern recognisers with no NER (a blank spaCy
    # tokenizer as its NLP engine), what the pii check costs before any model runs
    baseline = _time(lambda t: EMAIL.search(t), texts)
    import tempfile

    import spacy

    with tempfile.TemporaryDirectory() as blank:
        spacy.blank("en").to_disk(blank)
        patterns_only = make_check("pii", nlp_model=blank)
        presidio_patterns = _time(lambda t: patterns_only.check(t), texts)
    figures = {}
    for name, c in checks.items():
        f = _time(lambda t, c=c: c.check(t), texts)
        f["p50_over_baseline"] = round(f["p50_ms"] / max(baseline["p50_ms"], 1e-6), 1)
        f["p50_over_presidio_patterns"] = round(f["p50_ms"] / max(presidio_patterns["p50_ms"], 1e-6), 2)
        figures[name] = f
    report = {"texts": {"prompts": len(prompts), "pii_texts": len(pii_texts), "mean_chars":
                        round(statistics.fmean(len(t) for t in texts))},
              "baseline_email_regex": baseline, "baseline_presidio_patterns_only": presidio_patterns,
              "checks": figures, "skipped": skipped,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "note": "one text at a time, after a warm-up; other work may share the cores"}}
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report, indent=2)


if __name__ == "__main__":
    main()
