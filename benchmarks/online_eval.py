"""Does online evaluation slow the responses it does not judge? The gateway app in process (a small
BM25 bundle written to a temp folder, a fake upstream that answers at once, no tracing), N chat
requests per condition: sampling 0 (the baseline) and 0.25 with the judges ``lab serve`` runs
without the judge stage's models (the claim-level lexical grounding judge, the refusal and the
relevance rules, :func:`lab.serve.online_judges.default_judges`; ``--judges DIR`` adds the stage's
trained ones).

Three conditions: sampling 0, the rate, and an A/A control (a second gateway at sampling 0,
``sample_0_control``: its ratio to the first is the design's own noise and bias). They run
interleaved (``--rounds`` blocks each, in rotating order) so load drift on shared cores hits all
alike; after a sampled block the judges finish their backlog before the next block starts
(uncounted), so their work lands on their own condition's requests only. Each condition warms up
(requests and judges) uncounted first. Latency is the client's, request sent to response read, in
the same process (httpx over ASGI), one request at a time (``--concurrency`` more): the judges'
thread is the only other work, so any slowdown of unsampled requests is the judges' share of the
interpreter and the cores.

    python benchmarks/online_eval.py --n 3000 --rounds 30 --cores-shared --out benchmarks/results/online_eval.json

``--out`` holds per condition (``sample_0``, ``sample_0_control``, ``sample_0.25``): ``requests``,
``unsampled`` and ``sampled`` (count, latency p50/p95/mean in ms), ``judged``, ``dropped``, ``queue_size``; then
``unsampled_p50_ratio`` and ``unsampled_p95_ratio`` (0.25 over 0) with their 95% bootstrap CIs
(``*_ci``: the noise at these sample sizes), ``all_p50_ratio`` and ``all_p95_ratio`` (every
response, sampled or not; ``all_p50_ratio_ci``), ``control_p50_ratio`` and ``control_p95_ratio``
(the A/A control over sampling 0, with ``*_ci``), the judges (name, version),
``cores_shared``, ``machine``, ``seconds`` and ``command``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = {
    "d1": {"title": "Warsaw", "text": "Warsaw is the capital of Poland and stands on the Vistula river."},
    "d2": {"title": "Normans", "text": "The Normans gave their name to Normandy, a region in France."},
    "d3": {"title": "Tesla", "text": "Nikola Tesla was born in 1856 in Smiljan and worked on alternating current."},
    "d4": {"title": "Super Bowl", "text": "Super Bowl 50 was played at Levi's Stadium in Santa Clara."},
    "d5": {"title": "Amazon", "text": "The Amazon rainforest covers much of the Amazon basin of South America."},
    "d6": {"title": "Oxygen", "text": "Oxygen is a chemical element with symbol O and atomic number 8."},
}
QUESTIONS = ["What is the capital of Poland?", "Which river does Warsaw stand on?", "When was Nikola Tesla born?",
             "Where was Super Bowl 50 played?", "What did the Normans give their name to?",
             "What is the atomic number of oxygen?", "Who painted the Mona Lisa?", "How tall is Mount Everest?"]
ANSWERS = ["Warsaw is the capital of Poland.", "It stands on the Vistula river.",
           "Nikola Tesla was born in 1856 in Smiljan.", "I don't know: the passages do not say."]


class FastUpstream:
    """An upstream that answers at once: a canned answer in three deltas (no model, no network)."""

    name = "fast-fake"

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, messages: list[dict], *, max_tokens: int, temperature: float,
                     stop: Sequence[str] = ()) -> Any:
        from lab.serve.upstream import Delta

        text = ANSWERS[self.calls % len(ANSWERS)]
        self.calls += 1
        third = len(text) // 3
        for piece in (text[:third], text[third:2 * third], text[2 * third:]):
            yield Delta(piece)
        yield Delta("", prompt_tokens=40, completion_tokens=12)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def _bundle(folder: Path) -> Path:
    from lab.export.winner import ArmScore, choose_arm
    from lab.generate.domain_qa_prompt import PROMPT_VERSION
    from lab.handoff.bundle import ServedModel, write_bundle

    return write_bundle(folder / "bundle", retrieval_config={"retriever": "bm25", "chunker": "none"}, corpus=CORPUS,
                        model=ServedModel("fake", spec="fake"), choice=choose_arm([ArmScore("rag", 0.5, 0.4, 0.6, 10, 1.0)]),
                        k=2, prompt_version=PROMPT_VERSION,
                        generation={"max_new_tokens": 24, "temperature": 0.0, "seed": 0, "stop": ["\n"]})


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _ratio_ci(base: list[float], other: list[float], q: float, n_resamples: int = 1000,
              seed: int = 0) -> list[float]:
    """95% percentile bootstrap CI of quantile ``q`` of ``other`` over that of ``base`` (each resampled
    on its own): how far the ratio moves by chance at these sample sizes."""
    import random

    rng = random.Random(seed)
    ratios = sorted(_pct(rng.choices(other, k=len(other)), q) / _pct(rng.choices(base, k=len(base)), q)
                    for _ in range(n_resamples))
    return [ratios[int(0.025 * n_resamples)], ratios[int(0.975 * n_resamples) - 1]]


def _summary(latencies: list[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies]
    return {"count": len(ms), "p50_ms": _pct(ms, 0.5), "p95_ms": _pct(ms, 0.95),
            "mean_ms": statistics.fmean(ms) if ms else None}


#: The A/A control: a second gateway at sampling 0, run like the others; its ratio to ``sample_0``
#: is what the design alone (order, drift, the shared cores) moves the figures by.
CONTROL = "sample_0_control"


class Condition:
    """One sampling rate: its gateway, app and the latencies of its requests (sampled or not)."""

    def __init__(self, name: str, rate: float, bundle: Path, judges: list[Any], queue_size: int,
                 folder: Path) -> None:
        from lab.serve.chat import RAG, ChatService, Settings
        from lab.serve.gateway import create_app

        settings = Settings(feedback_path=folder / f"feedback-{name}.jsonl", mlflow_feedback=False, trace=False,
                            judge_sample=rate, judge_queue=queue_size)
        self.name, self.rate = name, rate
        self.gw = ChatService(RAG(bundle), FastUpstream(), settings=settings, judges=judges)
        self.app = create_app(self.gw)
        self.latency: dict[bool, list[float]] = {False: [], True: []}

    async def run(self, questions: list[str], concurrency: int, count: bool = True) -> None:
        import httpx

        sem = asyncio.Semaphore(concurrency)
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as client:
            async def one(q: str) -> None:
                async with sem:
                    t0 = time.perf_counter()
                    r = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": q}]})
                    elapsed = time.perf_counter() - t0
                    if r.status_code != 200:
                        raise SystemExit(f"the gateway answered {r.status_code}: {r.text[:300]}")
                    if count:
                        rid = r.json()["id"]
                        picked = self.gw.online is not None and self.gw.online.wants(rid, "/v1/chat/completions")
                        self.latency[picked].append(elapsed)

            await asyncio.gather(*[one(q) for q in questions])

    def counts(self) -> dict[str, Any]:
        m = self.gw.metrics
        return {"sampled_total": int(m.online_sampled._value.get()), "judged": int(m.online_judged._value.get()),
                "dropped": int(m.online_dropped._value.get())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=400, help="Counted requests per condition.")
    p.add_argument("--rounds", type=int, default=20, help="Interleaved blocks per condition.")
    p.add_argument("--warmup", type=int, default=20, help="Uncounted requests per condition first.")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.25, help="The sampled condition's rate (the baseline is 0).")
    p.add_argument("--queue", type=int, default=64, help="The judges' queue size.")
    p.add_argument("--judges", type=Path, default=None, help="The judge stage's output folder (trained judges).")
    p.add_argument("--cores-shared", action="store_true", help="Record that other work shared the cores.")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.n < args.rounds or args.rounds < 1:
        raise SystemExit("--n must be at least --rounds, and --rounds at least 1")

    from lab.serve.online_eval import Served
    from lab.serve.online_judges import default_judges
    from lab.serve.settings import Settings

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="online-eval-") as tmp:
        folder = Path(tmp)
        bundle = _bundle(folder)
        from lab.serve.rag import RAG

        judges = default_judges(Settings(), judges_dir=args.judges, rag=RAG(bundle))
        warm = Served("warm", None, "/v1/chat/completions", QUESTIONS[0], ANSWERS[0], (CORPUS["d1"]["text"],), (1.0,),
                      source_ids=("d1",))
        for j in judges:   # first use imports and loads what a judge needs: not part of any request
            j.assess(warm)
        on = f"sample_{args.rate:g}"
        conds = [Condition(name, rate, bundle, judges, args.queue, folder)
                 for name, rate in (("sample_0", 0.0), (CONTROL, 0.0), (on, args.rate))]
        for c in conds:
            asyncio.run(c.run([QUESTIONS[i % len(QUESTIONS)] for i in range(args.warmup)], args.concurrency, count=False))
            if c.gw.online is not None:
                c.gw.online.drain(300)
        warm_counts = {c.name: c.counts() for c in conds}
        per_round = args.n // args.rounds
        for r in range(args.rounds):
            for c in conds[r % 3:] + conds[:r % 3]:   # each condition first, second and last in turn
                qs = [QUESTIONS[(r * per_round + i) % len(QUESTIONS)] for i in range(per_round)]
                asyncio.run(c.run(qs, args.concurrency))
                if c.gw.online is not None and not c.gw.online.drain(300):   # its judges' backlog is not
                    raise SystemExit("the judges did not finish their queue within 300 s")   # the next block's
        for c in conds:
            if c.gw.online is not None and not c.gw.online.drain(300):
                raise SystemExit("the judges did not finish their queue within 300 s")
        lat0, lat_aa, lat1 = (c.latency[False] for c in conds)
        all0, all1 = lat0 + conds[0].latency[True], lat1 + conds[2].latency[True]
        out: dict[str, Any] = {"unsampled_p50_ratio_ci": _ratio_ci(lat0, lat1, 0.5),
                               "unsampled_p95_ratio_ci": _ratio_ci(lat0, lat1, 0.95),
                               "all_p50_ratio": _pct(all1, 0.5) / _pct(all0, 0.5),
                               "all_p95_ratio": _pct(all1, 0.95) / _pct(all0, 0.95),
                               "all_p50_ratio_ci": _ratio_ci(all0, all1, 0.5),
                               "control_p50_ratio": _pct(lat_aa, 0.5) / _pct(lat0, 0.5),
                               "control_p95_ratio": _pct(lat_aa, 0.95) / _pct(lat0, 0.95),
                               "control_p50_ratio_ci": _ratio_ci(lat0, lat_aa, 0.5),
                               "control_p95_ratio_ci": _ratio_ci(lat0, lat_aa, 0.95)}
        for c in conds:
            counts = c.counts()
            base = warm_counts[c.name]
            out[c.name] = {
                "rate": c.rate, "requests": len(c.latency[False]) + len(c.latency[True]),
                "unsampled": _summary(c.latency[False]), "sampled": _summary(c.latency[True]),
                "judged": counts["judged"] - base["judged"], "dropped": counts["dropped"] - base["dropped"],
                "queue_size": args.queue}
    base, sampled = out["sample_0"]["unsampled"], out[on]["unsampled"]
    out.update({
        "unsampled_p50_ratio": sampled["p50_ms"] / base["p50_ms"], "unsampled_p95_ratio": sampled["p95_ms"] / base["p95_ms"],
        "judges": [{"name": j.name, "aspect": j.aspect, "version": j.version, "source_type": j.source_type}
                   for j in judges],
        "settings": {"n": args.n, "rounds": args.rounds, "warmup": args.warmup, "concurrency": args.concurrency,
                     "upstream": "fake, answers at once", "trace": False, "retriever": "bm25 over 6 passages"},
        "cores_shared": bool(args.cores_shared),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None},
        "seconds": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/online_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    })
    text = json.dumps(out, indent=2, sort_keys=True) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
