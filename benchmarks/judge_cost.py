"""What a grounded judgment costs on this machine: judgments per second of each grounded judge on
answers of 20, 100 and 300 words, and the gateway's grounding-check latency (p50/p95) per length,
against the lexical rule in the same run (the baseline: ratios ``*_over_lexical``).

Judges (``--judges``; default: the four below, those that cannot load skipped with the reason):
``lexical`` (whole-answer content-word support), ``claims:lexical`` (claim-level, the same rule per
claim), the judge stage's default grounded judge (read from ``judges.json`` beside ``--models``,
``faithfulness-cross-encoder`` when there is none) and its claim-level form ``claims:NAME``, loaded
from ``--models DIR`` (``DIR/<name>``; nothing is trained here). Throughput: each judge's
``judge()`` on the answers of a length at once, as ``lab judge calibrate`` calls it, repeated until
``--min-seconds`` have passed, without a judgment cache. The grounding check: the guardrails
``grounding`` check as the gateway builds it (``make_check``; judge ``lexical``, ``claims:lexical``,
the trained default, or ``claims`` over it), one answer at a time, against a fresh judgment cache,
so every answer is new to it as new traffic is (``fired`` counts the answers it flagged: all are
meant faithful, so these are false alarms of a rule or model that paraphrase trips). Each judge
and check is warmed up once first (model, tokenizer and segmenter loads are not in the figures). A
slow judge or check is measured on fewer answers at a length, about ``--budget-seconds`` each (at
least 3; ``n`` in each row says how many), so the default run stays within about 10 minutes.
Claim-level rows also give windows, pairs scored and inputs still too long per answer; the
whole-answer cross-encoder's the share of inputs longer than its ``max_length`` (cut silently).

Answers are built from SQuAD dev passages, never from a labelled evaluation file: per answer,
``--passages`` consecutive paragraphs of one article (the retrieved context, at least 1.5 times the
answer's length) and sentences taken from them in turn, reworded by :mod:`lab.judge.paraphrase`'s
rules and cut to exactly the length in words. All are faithful: the cost does not depend on the label.

    python benchmarks/judge_cost.py --models results/judge_eval/models \
        --out benchmarks/results/judge_cost.json
    python benchmarks/judge_cost.py --quick --judges lexical --out /tmp/judge_cost.json   # seconds

The load average is recorded at start and end with the threads used; above 1.5 the figures are
labelled as measured on shared cores (``machine.cores_shared``, ``machine.label``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT / "data" / "squad_v1.1_dev"
LOAD_SHARED = 1.5   # a load average above it means other work shared the cores


def make_answers(length: int, n: int, *, passages: int = 4, seed: int = 0, squad: Path = SQUAD) -> list[Any]:
    """``n`` grounded :class:`~lab.judge.JudgeInput` of exactly ``length`` words (see the module docstring)."""
    from lab.judge import JudgeInput
    from lab.judge.baselines import sentences
    from lab.judge.paraphrase import rule_paraphrase

    paras: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in (squad / "dev-v1.1.paragraphs.jsonl").read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        paras[p["title"]].append(p)
    questions: dict[str, str] = {}
    for line in (squad / "dev-v1.1.qa.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        questions.setdefault(q["paragraph_id"], q["question"])
    need = int(1.5 * length)
    windows = [ps[i:i + passages] for ps in paras.values() for i in range(0, len(ps) - passages + 1, passages)
               if sum(len(p["text"].split()) for p in ps[i:i + passages]) >= need]
    rng = random.Random(f"{seed}-{length}")
    rng.shuffle(windows)
    if len(windows) < n:
        raise SystemExit(f"only {len(windows)} contexts of {passages} paragraphs hold {need}+ words; lower --n")
    out = []
    for ps in windows[:n]:
        by_passage = [sentences(p["text"]) for p in ps]
        taken: list[str] = []
        for k in range(max(map(len, by_passage))):   # in turn across the passages, as a summary would
            taken += [s[k] for s in by_passage if k < len(s)]
            if sum(len(t.split()) for t in taken) >= length + 20:
                break
        text = " ".join(taken)
        text = rule_paraphrase(text, rng) or text
        answer = " ".join(text.split()[:length])
        answer = answer if answer.endswith((".", "!", "?")) else answer.rstrip(",;:") + "."
        out.append(JudgeInput(question=questions.get(ps[0]["paragraph_id"], f"Tell me about {ps[0]['title']}."),
                              answer=answer, context="\n\n".join(p["text"] for p in ps)))
    return out


def default_grounded(models: Path) -> tuple[str, str]:
    """(the judge stage's default grounded judge, where that came from)."""
    from lab.judge.catalog import TRAINED_NAME

    choice = models.parent / "judges.json"
    if choice.is_file():
        from lab.handoff import judges

        picked = judges.read(choice).default.get("grounded")
        if picked:
            return picked, str(choice)
    return TRAINED_NAME["grounded"], f"no judges.json at {choice}: the trained judge's name"


def build(name: str, models: Path) -> tuple[Any, Any]:
    """(the judge without a cache, the gateway's grounding check with that judge); SystemExit-free:
    raises :class:`FileNotFoundError` when a trained judge's folder is not there."""
    from lab.guardrails import make_check
    from lab.judge.baselines import LexicalJudge
    from lab.judge.claim_judge import ClaimLevelJudge, CrossEncoderPairScorer, LexicalPairScorer

    if name == "lexical":   # the threshold changes no cost; the gateway's rule is "any word missing"
        return LexicalJudge(threshold=0.5), make_check("grounding", judge="lexical")
    if name == "claims:lexical":
        return ClaimLevelJudge(LexicalPairScorer(1.0), name=name), make_check("grounding", judge="claims:lexical")
    from lab.judge.trained import CrossEncoderJudge

    trained = name.split(":", 1)[1] if name.startswith("claims:") else name
    folder = models / trained
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"no trained judge at {folder} (meta.json missing): `dvc repro judge_eval` trains "
                                f"it, or pass --models DIR; not trained by this benchmark")
    if name.startswith("claims:"):
        judge = ClaimLevelJudge(CrossEncoderPairScorer(CrossEncoderJudge(folder, cache=False)), name=name)
        return judge, make_check("grounding", judge="claims", model_dir=str(folder))
    return CrossEncoderJudge(folder, cache=False), make_check("grounding", model_dir=str(folder))


def _pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def throughput(judge: Any, items: list[Any], min_seconds: float, budget: float) -> dict[str, Any]:
    """Judgments per second of ``judge.judge(...)`` on the answers at once, as ``lab judge calibrate``
    calls it, repeated until ``min_seconds`` have passed. A slow judge gets fewer answers: one is
    judged first, then as many more as fit in ``budget`` seconds at that pace (at least 3 in all)."""
    before = dict(getattr(judge, "counts", {}))
    t0 = time.perf_counter()
    got = judge.judge(items[:1])
    per = time.perf_counter() - t0
    used = min(len(items), max(3, int(budget / per) if per > 0 else len(items)))
    got += judge.judge(items[1:used])
    judged, rounds = used, 1
    while time.perf_counter() - t0 < min_seconds:
        got = judge.judge(items[:used])
        judged, rounds = judged + used, rounds + 1
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"n": used, "rounds": rounds, "seconds": round(seconds, 4),
                           "judgments_per_s": round(judged / seconds, 3),
                           "no_verdict": sum(j.verdict is None for j in got[-used:])}
    counts = getattr(judge, "counts", None)
    if counts:   # claim-level: per answer, over the timed calls
        answers = max(1, counts["answers"] - before.get("answers", 0))
        out.update({f"{k}_per_answer": round((counts[k] - before.get(k, 0)) / answers, 3)
                    for k in ("windows", "pairs_scored", "truncated_inputs")})
        out["multi_window_share"] = round((counts["multi_window_answers"] - before.get("multi_window_answers", 0))
                                          / answers, 3)
    elif hasattr(judge, "_load"):   # the whole-answer cross-encoder: how many inputs it cuts
        from lab.judge.trained import pair_text

        model = judge._load()
        hints = bool(judge.meta.get("settings", {}).get("lexical_hints"))
        sizes = [len(model.tokenizer(*pair_text(i, judge.task, lexical_hints=hints), verbose=False)["input_ids"])
                 for i in items[:used]]
        out["inputs_over_max_length_share"] = round(sum(s > model.max_seq_length for s in sizes) / len(sizes), 3)
        out["max_length"] = model.max_seq_length
    return out


def latency(check: Any, items: list[Any], budget: float) -> dict[str, Any]:
    """The grounding check on one answer at a time, until all are checked or ``budget`` seconds have
    passed (at least 3 answers): p50/p95/mean ms and how many answers it fired on."""
    ms, fired, t0 = [], 0, time.perf_counter()
    for item in items:
        if len(ms) >= 3 and time.perf_counter() - t0 >= budget:
            break
        t1 = time.perf_counter()
        d = check.check(item.answer, context=item.context.split("\n\n"))
        ms.append((time.perf_counter() - t1) * 1000)
        fired += bool(d.fired)
    return {"n": len(ms), "p50_ms": round(_pct(ms, 0.5), 3), "p95_ms": round(_pct(ms, 0.95), 3),
            "mean_ms": round(statistics.fmean(ms), 3), "fired": fired}


def _threads() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    return {"torch": torch.get_num_threads() if torch is not None else None,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count()}


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    load_start = os.getloadavg()
    t_all = time.perf_counter()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    models = Path(args.models)
    default, default_from = default_grounded(models)
    base = default.split(":", 1)[1] if default.startswith("claims:") else default
    names = list(dict.fromkeys(args.judges or ["lexical", "claims:lexical", base, f"claims:{base}"]))
    if "lexical" not in names:
        names.insert(0, "lexical")   # the baseline of every ratio
    items = {n_words: make_answers(n_words, args.n + 1, passages=args.passages, seed=args.seed)
             for n_words in args.lengths}   # one more per length: the first is the warm-up
    built, skipped = {}, {}
    for name in names:
        try:
            built[name] = build(name, models)
        except FileNotFoundError as exc:
            skipped[name] = str(exc)
    judges: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    for name, (judge, check) in built.items():
        judges[name], checks[name] = {}, {}
        warm = items[min(items)][0]   # a short answer: loads the model, tokenizer and segmenter
        judge.judge([warm])
        check.check(warm.answer, context=warm.context.split("\n\n"))
        for n_words, answers in items.items():
            judges[name][str(n_words)] = throughput(judge, answers[1:], args.min_seconds, args.budget_seconds)
            checks[name][str(n_words)] = latency(check, answers[1:], args.budget_seconds)
            print(json.dumps({"judge": name, "words": n_words, **{k: judges[name][str(n_words)][k] for k in
                              ("judgments_per_s", "rounds")}, "check_p50_ms": checks[name][str(n_words)]["p50_ms"]}),
                  file=sys.stderr, flush=True)
    for name, rows in judges.items():   # the ratios against the lexical rule of the same run
        for key, row in rows.items():
            row["per_s_over_lexical"] = round(row["judgments_per_s"] / judges["lexical"][key]["judgments_per_s"], 5)
            c, lex = checks[name][key], checks["lexical"][key]
            c["p50_over_lexical"] = round(c["p50_ms"] / max(lex["p50_ms"], 1e-6), 2)
            c["p95_over_lexical"] = round(c["p95_ms"] / max(lex["p95_ms"], 1e-6), 2)
    load_end = os.getloadavg()
    shared = max(load_start[0], load_end[0]) > LOAD_SHARED
    return {
        "benchmark": "judge_cost", "command": command,
        "settings": {"lengths": args.lengths, "n": args.n, "passages": args.passages, "seed": args.seed,
                     "min_seconds": args.min_seconds,
                     "budget_seconds": args.budget_seconds, "quick": args.quick, "models": str(models),
                     "source": "SQuAD v1.1 dev paragraphs (data/squad_v1.1_dev)"},
        "default_grounded": {"name": default, "from": default_from},
        "answers": {str(k): {"n": len(v) - 1, "mean_words": round(statistics.fmean(len(i.answer.split()) for i in v[1:]), 1),
                             "mean_context_words": round(statistics.fmean(len(i.context.split()) for i in v[1:]), 1)}
                    for k, v in items.items()},
        "judges": judges, "grounding_check": checks, "skipped": skipped, "baseline": "lexical",
        "machine": {"platform": platform.platform(), **_threads(), "load_start": [round(x, 2) for x in load_start],
                    "load_end": [round(x, 2) for x in load_end], "cores_shared": shared,
                    "label": (f"measured on shared cores (1-min load average {load_start[0]:.2f} at start, "
                              f"{load_end[0]:.2f} at end, {os.cpu_count()} CPUs): absolute figures are rough, "
                              f"ratios less so") if shared else "measured on otherwise idle cores"},
        "seconds": round(time.perf_counter() - t_all, 1),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=str(ROOT / "results" / "judge_eval" / "models"),
                    help="the judge stage's trained judges (DIR/<name>/meta.json); judges.json beside it names the default")
    ap.add_argument("--judges", nargs="+", help="default: lexical, claims:lexical, the default grounded judge, claims:<it>")
    ap.add_argument("--lengths", type=int, nargs="+", default=[20, 100, 300], help="answer lengths in words")
    ap.add_argument("--n", type=int, default=30, help="answers per length")
    ap.add_argument("--passages", type=int, default=4, help="paragraphs per context")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="repeat a judge's batch until this long")
    ap.add_argument("--budget-seconds", type=float, default=40.0,
                    help="a slow judge or check gets fewer answers at a length: about this long each (at least 3)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own, OMP_NUM_THREADS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a tiny run: 3 answers per length, one round")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "judge_cost.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.min_seconds, args.budget_seconds = 3, 0.0, 0.0
    command = shlex.join(["python", "benchmarks/judge_cost.py", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory() as cache:   # a fresh judgment cache for the gateway's check
        previous = os.environ.get("LAB_CACHE_DIR")
        os.environ["LAB_CACHE_DIR"] = cache
        try:
            report = run(args, command)
        finally:
            if previous is None:
                os.environ.pop("LAB_CACHE_DIR", None)
            else:
                os.environ["LAB_CACHE_DIR"] = previous
    from lab.io import write_json

    write_json(args.out, report, indent=2)
    print(json.dumps({k: report[k] for k in ("judges", "grounding_check", "skipped", "machine")}, indent=2))
    return report


if __name__ == "__main__":
    main()
