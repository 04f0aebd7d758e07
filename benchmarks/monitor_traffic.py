"""The health report on real gateway traffic: a window of in-domain questions and a window of
questions from another corpus, sent to ``lab serve`` of a bundle, then ``lab monitor`` on each window.

As a user runs it: ``lab serve BUNDLE`` as a subprocess (tracing into a fresh MLflow store, online
judging at ``--judge-sample``), questions sent one at a time over HTTP, the server stopped (its traces
flushed), then ``lab monitor DIR --since T0 --until T1 --bundle BUNDLE`` per window, its exit code and
``report.json`` read back. In-domain questions are SQuAD dev questions of the bundle's own articles
(the titles of its ``eval.jsonl``) that are not among its offline questions; off-domain ones come from
``--offdomain`` (default HaluEval's HotpotQA questions: another corpus). A healthy report exits 0; a
drifted one exits 1. Nothing here is a timed assert: the figures are one run's, written to ``--out``.

    python benchmarks/monitor_traffic.py --bundle results/export/bundle --n 100 --judge-sample 0.25 \
        --out benchmarks/results/monitor_traffic.json

``--out`` holds ``bundle``, ``upstream``, ``judge_sample``; ``windows`` with one object per window
(``normal``, ``offdomain``): ``requests``, ``http_errors``, ``seconds``, ``exit_code``, ``alerted`` (the
checks that alerted), ``alerts``, ``drift`` and ``limits`` (each check's statistic, p-value, threshold
and status) and ``traffic`` (the report's counts and latencies); ``judged`` (``traces`` in the store
and those ``judged`` by an online judge), ``reports`` (the two report folders), the command, machine
and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def in_domain_questions(bundle: Path, qa: Path, n: int, seed: int) -> list[str]:
    """SQuAD questions of the bundle's articles that are not its offline (eval.jsonl) questions."""
    offline = [json.loads(line) for line in (bundle / "eval.jsonl").read_text(encoding="utf-8").splitlines() if line]
    titles = {r.get("title") for r in offline}
    seen = {r["question"].strip().lower() for r in offline}
    pool = []
    for line in qa.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("title") in titles and r["question"].strip().lower() not in seen:
            pool.append(r["question"])
    if len(pool) < n:
        raise SystemExit(f"{qa}: only {len(pool)} questions of the bundle's articles {sorted(titles)}; ask for fewer (--n)")
    return random.Random(seed).sample(pool, n)


def other_questions(path: Path, n: int, seed: int) -> list[str]:
    pool = [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(pool) < n:
        raise SystemExit(f"{path}: only {len(pool)} questions; ask for fewer (--n)")
    return random.Random(seed).sample(pool, n)


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"lab serve exited with {proc.returncode} before it was ready (see its log)")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"lab serve not ready within {timeout_s:.0f} s")


def send(url: str, questions: list[str], timeout_s: float) -> dict[str, Any]:
    import httpx

    errors = 0
    t0 = time.monotonic()
    with httpx.Client(timeout=timeout_s) as c:
        for q in questions:
            r = c.post(f"{url}/v1/chat/completions", json={"model": "lab", "messages": [{"role": "user", "content": q}]})
            errors += r.status_code != 200
    return {"requests": len(questions), "http_errors": errors, "seconds": round(time.monotonic() - t0, 1)}


def monitor(report_dir: Path, since: datetime, until: datetime, bundle: Path, env: dict[str, str]) -> dict[str, Any]:
    cmd = ["lab", "monitor", str(report_dir), "--since", _iso(since), "--until", _iso(until), "--bundle", str(bundle)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if r.returncode == 2 or not (report_dir / "report.json").is_file():
        raise SystemExit(f"lab monitor failed ({r.returncode}): {r.stderr[-2000:]}")
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    alerted = ", ".join(c["name"] for c in (report.get("drift") or []) + (report.get("limits") or [])
                        if c.get("status") == "alert")
    return {"exit_code": r.returncode, "alerted": alerted or "none", "alerts": report.get("alerts"),
            "drift": report.get("drift"), "limits": report.get("limits"),
            "traffic": report.get("traffic"), "command": " ".join(cmd)}


def judged_share(env: dict[str, str]) -> dict[str, int]:
    """Traces in the store and those with an online judge's assessment (source LLM_JUDGE or CODE)."""
    code = ("import json, mlflow; from mlflow.tracking import MlflowClient\n"
            "exps = MlflowClient().search_experiments()\n"
            "ts = [t for e in exps for t in mlflow.search_traces(locations=[e.experiment_id], return_type='list', max_results=5000)]\n"
            "j = sum(any(a.source.source_type in ('LLM_JUDGE', 'CODE') for a in (t.info.assessments or [])) for t in ts)\n"
            "print(json.dumps({'traces': len(ts), 'judged': j}))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"reading the traces failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "results/export/bundle")
    ap.add_argument("--qa", type=Path, default=ROOT / "data/squad_v1.1_dev/dev-v1.1.qa.jsonl",
                    help="SQuAD-style QA JSONL (title, question): the in-domain questions")
    ap.add_argument("--offdomain", type=Path, default=ROOT / "data/halueval/qa_grounded.dev250.jsonl",
                    help="JSONL with a question per record from another corpus")
    ap.add_argument("--n", type=int, default=100, help="requests per window")
    ap.add_argument("--upstream", default="transformers")
    ap.add_argument("--judge-sample", type=float, default=0.25)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    ap.add_argument("--work", type=Path, default=None, help="folder for the store, logs and reports (default: a temp folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    started = time.monotonic()
    bundle = args.bundle.resolve()
    work = args.work or Path(tempfile.mkdtemp(prefix="monitor_traffic_"))
    work.mkdir(parents=True, exist_ok=True)
    normal = in_domain_questions(bundle, args.qa, args.n, args.seed)
    offdomain = other_questions(args.offdomain, args.n, args.seed)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = ["lab", "serve", str(bundle), "--port", str(port), "--upstream", args.upstream,
           "--judge-sample", str(args.judge_sample), "--feedback", str(work / "feedback.jsonl")]
    with open(work / "serve.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(url, proc, 600)
            windows: dict[str, Any] = {}
            for name, qs in (("normal", normal), ("offdomain", offdomain)):
                t0 = datetime.now(UTC)
                windows[name] = send(url, qs, args.timeout_s)
                windows[name]["since"], windows[name]["until"] = t0, datetime.now(UTC)
                print(f"{name}: {windows[name]['requests']} requests in {windows[name]['seconds']} s", flush=True)
                time.sleep(1)
        finally:
            os.killpg(proc.pid, signal.SIGINT)   # a clean shutdown flushes the async trace writer
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    result: dict[str, Any] = {"bundle": str(args.bundle), "upstream": args.upstream, "judge_sample": args.judge_sample}
    result["windows"] = {}
    for name, w in windows.items():
        rep = monitor(work / f"report_{name}", w.pop("since"), w.pop("until"), bundle, env)
        result["windows"][name] = {**w, **rep}
        print(f"{name}: lab monitor exit {rep['exit_code']}, alerts {rep['alerts']}", flush=True)
    result["judged"] = judged_share(env)
    result["reports"] = {n: str(work / f"report_{n}") for n in windows}
    result.update(command=" ".join(sys.argv), machine=f"{platform.node()} {os.cpu_count()} cores",
                  seconds=round(time.monotonic() - started, 1))
    from lab.io import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
