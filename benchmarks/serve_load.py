"""Load test of the serving path: N concurrent streamed chat requests (bounded in count and time,
loopback only) against vLLM directly, a plain transformers generation of the same model (the
baseline), and the gateway with its guardrails off (``lab serve --no-guardrails``) and on (the
bundle's policy), all with the same RAG prompts of the bundle's held-out questions and the same
generation settings (max tokens, temperature 0, the bundle's stop strings).

    python benchmarks/serve_load.py --bundle results/export/bundle --requests 64 --concurrency 16 64 \
        --vllm-python .venv-serve/bin/python --gateway-cpus 1 --client-cpus 1 \
        --out benchmarks/results/serve_load.json --plot benchmarks/results/serve_load.png

Each target runs every ``--concurrency`` in turn, each burst after one uncounted warm-up request.
Per target and concurrency: ``requests``, ``concurrency``, ``errors``, ``tokens_per_s`` (completion
tokens / wall time of the burst), ``ttft_p50_s``/``ttft_p95_s`` (first streamed content; for
transformers the first decoding step of the batch), ``latency_p50_s``/``latency_p95_s`` and
``breakdown``:

- gateway targets: the seconds each request spent in each stage of the gateway (queue, thread
  wait, input checks, retrieval, context checks, prompt, upstream TTFT, decode, output checks,
  other, total: :mod:`lab.serve.stages`), read from each response's ``lab.timings``, as p50, p95 and
  mean over the requests; ``checks``: each guardrail check's cost (calls, mean ms per call, ms per
  request), from the gateway's ``lab_guardrail_check_duration_seconds`` read from its ``/metrics``
  before and after the burst; ``upstream``: vLLM's own means over the burst (queue, prefill,
  decode, TTFT, end to end) from its ``/metrics``;
- ``vllm``: vLLM's own means, the same way; ``transformers``: none (one ``generate()`` call).

``--out FILE`` holds one object per target (``vllm``, ``transformers``, ``gateway_guardrails_off``,
``gateway_guardrails_on``; a target not run says ``skipped`` and why) at the highest concurrency,
``by_concurrency`` (the same per concurrency), ``ratios`` per concurrency against the goals of the
issue (``gateway_off_over_vllm_tokens_per_s`` >= 0.9, ``gateway_on_over_vllm_ttft_p50`` <= 1.5;
``goals`` says which were met), ``cost_per_check`` (the policy's checks at the highest
concurrency), ``arrangement`` (who got which cores and threads) and ``complete``. The file is
rewritten (atomically) as each target finishes, with ``complete: false`` until the last: a run
stopped midway keeps what it measured, and the targets it did not reach say so.

**Cores and threads.** One vLLM server (started here, or ``--vllm-url``) serves the vLLM target
and is the upstream of both gateways, so they share its warm state; its prefix cache is reset
before every burst (``VLLM_SERVER_DEV_MODE=1`` exposes ``/reset_prefix_cache``), so no target
reads prompts another one cached. vLLM's CPU build binds its model's OpenMP threads itself
(``VLLM_CPU_OMP_THREADS_BIND``, default ``auto``: one per physical core, less one core it reserves
for its scheduler and API server; ``--vllm-cpus`` names them) and holds ``VLLM_CPU_KVCACHE_SPACE``
GiB of KV cache (lab's default 2: about 90k tokens of SmolLM2-135M in bf16, 23 KB a token, enough
for 64 RAG prompts). On 2 cores ``auto`` gives the model one thread on core 0 and reserves core 1
(its log: ``core ids=[0]``, ``reserved_cpus=[1]``); ``--gateway-cpus 1 --client-cpus 1`` put the
gateway and this load generator on core 1 too, so nothing preempts the model's thread, and the
gateway runs with ``OMP_NUM_THREADS`` = ``--gateway-threads`` (default 1), so its classifiers and
embedder never spin a second OpenMP pool. Its CPU-bound steps run in asyncio's default worker pool
(``min(32, cpus + 4)`` threads, 6 here), about one core of Python under the GIL. A deployment with
more cores should give vLLM its own (``VLLM_CPU_OMP_THREADS_BIND`` to a list of them, or a GPU or
machine of its own, with ``LD_PRELOAD`` of libiomp and tcmalloc as vLLM's CPU guide says), pin the
gateway to the rest with ``OMP_NUM_THREADS`` and torch's threads equal to their count (one gateway
process per few cores behind a load balancer rather than a bigger pool: the checks hold the GIL),
and raise ``VLLM_CPU_KVCACHE_SPACE`` to the concurrency times the prompt length.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))   # benchmarks/ (already first when run as a script)
from _serve_stats import check_costs, pct, scrape, stage_breakdown, vllm_means

TARGETS = ("vllm", "transformers", "gateway_guardrails_off", "gateway_guardrails_on")
GATEWAYS = ("gateway_guardrails_off", "gateway_guardrails_on")
ALL_CPUS = os.sched_getaffinity(0)
#: the goals of issue 33: (key, bound, higher_is_better)
GOALS = {"gateway_off_over_vllm_tokens_per_s": (0.9, True), "gateway_on_over_vllm_ttft_p50": (1.5, False)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _questions(bundle: Path, n: int) -> list[dict[str, Any]]:
    from lab.serve.gate import read_eval

    items = read_eval(bundle)
    if not items:
        raise SystemExit(f"{bundle}/eval.jsonl: no questions (export the bundle with `dvc repro export`)")
    return [items[i % len(items)] for i in range(n)]


# --------------------------------------------------------------------------- one burst
async def _burst(url: str, bodies: list[dict[str, Any]], concurrency: int, timeout_s: float, *,
                 metrics: dict[str, str | None] | None = None, reset_url: str | None = None) -> dict[str, Any]:
    """Stream every body to ``url``/chat/completions, ``concurrency`` at a time. ``metrics``: name ->
    a /metrics URL scraped after the warm-up and after the burst (``_scrapes``: name -> (before,
    after)); each response's ``lab.timings`` is kept (``_timings``). ``reset_url``: POSTed to
    before the warm-up (vLLM's ``/reset_prefix_cache``)."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    ttft: list[float] = []
    lat: list[float] = []
    timings: list[dict[str, float]] = []
    tokens = 0
    errors: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        nonlocal tokens
        async with sem:
            t0 = time.perf_counter()
            first = None
            got = 0
            try:
                async with client.stream("POST", "/chat/completions", json={**body, "stream": True,
                                         "stream_options": {"include_usage": True}}) as r:
                    if r.status_code != 200:
                        errors[f"http_{r.status_code}"] = errors.get(f"http_{r.status_code}", 0) + 1
                        await r.aread()
                        return
                    async for line in r.aiter_lines():
                        if not line.startswith("data:") or line.strip() == "data: [DONE]":
                            continue
                        chunk = json.loads(line[5:])
                        if "error" in chunk:
                            errors["stream_error"] = errors.get("stream_error", 0) + 1
                            return
                        text = "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or [])
                        if text and first is None:
                            first = time.perf_counter() - t0
                        if chunk.get("usage"):
                            got = chunk["usage"].get("completion_tokens") or got
                        if (chunk.get("lab") or {}).get("timings"):
                            timings.append(chunk["lab"]["timings"])
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            lat.append(time.perf_counter() - t0)
            if first is not None:
                ttft.append(first)
            tokens += got

    metrics = {k: v for k, v in (metrics or {}).items() if v}
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s,
                                 limits=httpx.Limits(max_connections=concurrency + 8)) as client:
        reset = None
        if reset_url:
            try:
                reset = (await client.post(reset_url)).status_code == 200
            except httpx.HTTPError:
                reset = False
        # one request first, not counted: load-time work (LoRA load, compilation, caches) is not throughput
        await client.post("/chat/completions", json={**bodies[0], "max_tokens": 4})
        before = {k: await asyncio.to_thread(scrape, u) for k, u in metrics.items()}
        t_all = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*[one(client, b) for b in bodies]), timeout_s)
        wall = time.perf_counter() - t_all
        after = {k: await asyncio.to_thread(scrape, u) for k, u in metrics.items()}
    out = {"requests": len(bodies), "concurrency": concurrency, "errors": sum(errors.values()),
           "errors_by_type": errors, "completion_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
           "ttft_p50_s": pct(ttft, 0.5), "ttft_p95_s": pct(ttft, 0.95), "latency_p50_s": pct(lat, 0.5),
           "latency_p95_s": pct(lat, 0.95), "_timings": timings,
           "_scrapes": {k: (before[k], after[k]) for k in metrics}}
    if reset_url:
        out["prefix_cache_reset"] = reset
    return out


def _gateway_result(r: dict[str, Any]) -> dict[str, Any]:
    """A gateway burst with its ``breakdown`` (stages, checks, the upstream's own means)."""
    scrapes = r.pop("_scrapes")
    gw, up = scrapes.get("gateway", (None, None)), scrapes.get("upstream", (None, None))
    r["breakdown"] = {"stages_s": stage_breakdown(r.pop("_timings")), "checks": check_costs(*gw, r["requests"]),
                      "upstream_vllm_mean_s": vllm_means(*up)}
    return r


def _vllm_result(r: dict[str, Any]) -> dict[str, Any]:
    scrapes = r.pop("_scrapes")
    r.pop("_timings")
    r["breakdown"] = {"vllm_mean_s": vllm_means(*scrapes.get("upstream", (None, None)))}
    return r


# --------------------------------------------------------------------------- the targets
def _wait(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    import urllib.request

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _cpus(spec: str | None) -> set[int] | None:
    """``"0-1"``, ``"1"``, ``"0,2"`` -> a set of CPU ids (None: not pinned)."""
    if not spec:
        return None
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def gateway_target(name: str, bundle: Path, questions: list[dict], args: argparse.Namespace,
                   upstream: str) -> dict[int, dict[str, Any]]:
    """A gateway (``lab serve``, the bundle's policy on or off, or the running one at
    ``--gateway-on-url``/``--gateway-off-url``) at every concurrency."""
    from lab.generate.vllm_metrics import metrics_url

    bodies = [{"messages": [{"role": "user", "content": q["question"]}], "topic": q.get("title"),
               "max_tokens": args.max_tokens, "temperature": 0} for q in questions]
    given = args.gateway_on_url if name == "gateway_guardrails_on" else args.gateway_off_url
    proc = None
    if given:
        url = given
    else:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "LAB_API_KEY"}
        env["OMP_NUM_THREADS"] = str(args.gateway_threads)
        pin = _cpus(args.gateway_cpus)
        cmd = [sys.executable, "-m", "lab.cli", "serve", str(bundle), "--port", str(port), "--upstream", upstream,
               "--fallback", "none", "--vllm-port", str(_free_port()), *args.gateway_arg]
        if name == "gateway_guardrails_off":
            cmd.append("--no-guardrails")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        # before it starts any thread (they inherit it); unpinned, it has every CPU (not --client-cpus)
        os.sched_setaffinity(proc.pid, pin or ALL_CPUS)
        url = f"http://127.0.0.1:{port}/v1"
    try:
        if proc is not None:
            _wait(url.removesuffix("/v1") + "/readyz", args.start_timeout_s, proc)
        scrape = {"gateway": metrics_url(url), "upstream": metrics_url(args.vllm_url) if args.vllm_url else None}
        out = {}
        for c in args.concurrency:
            print(f"[serve_load] {name}: {len(bodies)} requests, concurrency {c} ...", flush=True)
            r = asyncio.run(_burst(url, bodies, c, args.timeout_s, metrics=scrape, reset_url=_reset_url(args)))
            out[c] = _gateway_result({**r, "upstream": upstream if proc is not None else url,
                                      "policy": _policy(bundle) if name == "gateway_guardrails_on" else None})
        return out
    finally:
        if proc is not None:
            _stop(proc)


def _policy(bundle: Path) -> dict[str, list[str]] | None:
    """The checks of the bundle's policy per side (what ``gateway_guardrails_on`` applies; None: no policy)."""
    from lab.handoff.bundle import read_bundle

    policy = read_bundle(bundle).get("guardrails")
    return {side: [r["check"] for r in policy.get(side) or []] for side in ("input", "context", "output")} if policy else None


def _reset_url(args: argparse.Namespace) -> str | None:
    return args.vllm_url.partition("#")[0].rstrip("/").removesuffix("/v1") + "/reset_prefix_cache" if args.vllm_url else None


def _prompts(bundle: Path, questions: list[dict]) -> tuple[list[list[dict]], tuple[str, ...]]:
    """The messages the gateway builds for these questions (same retriever, same prompt code), and
    the bundle's stop strings (the gateway passes them upstream)."""
    from lab.serve.rag import RAG

    rag = RAG(bundle)
    hits = rag.search([q["question"] for q in questions])
    return [rag.messages(q["question"], h, q.get("title")) for q, h in zip(questions, hits, strict=True)], rag.stop


def vllm_target(bundle: Path, questions: list[dict], args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    from lab.generate.vllm_metrics import metrics_url
    from lab.handoff.bundle import read_bundle

    served = read_bundle(bundle)["model"].get("served_name", "lab")
    prompts, stop = _prompts(bundle, questions)
    bodies = [{"model": served, "messages": m, "max_tokens": args.max_tokens, "temperature": 0,
               **({"stop": list(stop)} if stop else {})} for m in prompts]
    out = {}
    for c in args.concurrency:
        print(f"[serve_load] vllm: {len(bodies)} requests, concurrency {c} ...", flush=True)
        r = asyncio.run(_burst(args.vllm_url.partition("#")[0], bodies, c, args.timeout_s,
                               metrics={"upstream": metrics_url(args.vllm_url)}, reset_url=_reset_url(args)))
        out[c] = _vllm_result(r)
    return out


def transformers_target(bundle: Path, questions: list[dict], args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    from lab.generate import GenParams
    from lab.handoff.bundle import read_bundle
    from lab.serve.app import transformers_upstream

    backend = transformers_upstream(bundle, read_bundle(bundle), batch_size=max(args.concurrency)).backend
    prompts, stop = _prompts(bundle, questions)
    params = GenParams(max_new_tokens=args.max_tokens, temperature=0.0, seed=0, stop=stop)
    backend.generate(prompts[:1], params)  # warm-up
    out = {}
    for c in args.concurrency:
        print(f"[serve_load] transformers: {len(prompts)} prompts, batch {c} ...", flush=True)
        backend.batch_size = c
        t0 = time.perf_counter()
        gens = backend.generate(prompts, params)
        wall = time.perf_counter() - t0
        ttft = [g.ttft_s for g in gens if g.ttft_s is not None]
        lat = [g.latency_s for g in gens]
        tokens = sum(g.tokens_out for g in gens)
        out[c] = {"requests": len(prompts), "concurrency": c, "errors": 0, "completion_tokens": tokens,
                  "wall_s": wall, "tokens_per_s": tokens / wall, "ttft_p50_s": pct(ttft, 0.5),
                  "ttft_p95_s": pct(ttft, 0.95), "latency_p50_s": pct(lat, 0.5), "latency_p95_s": pct(lat, 0.95),
                  "breakdown": None, "note": f"one generate() call, batch size {c} (the backend's batching)"}
    return out


def _start_vllm(bundle: Path, args: argparse.Namespace) -> Any:
    """vLLM's server for the bundle (dev mode: its prefix cache can be reset), or the reason it is not there."""
    from lab.handoff.bundle import bundle_vllm_args, read_bundle
    from lab.serve.vllm_proc import VLLMServer, vllm_installed, vllm_python

    if not vllm_installed():
        return f"vLLM is not installed for {vllm_python()} (make serve builds .venv-serve; --vllm-python PATH)"
    os.environ.setdefault("VLLM_SERVER_DEV_MODE", "1")
    if args.vllm_cpus:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = args.vllm_cpus
    meta = read_bundle(bundle)
    server = VLLMServer(bundle_vllm_args(bundle, meta), port=_free_port(), root=ROOT,
                        log=ROOT / ".cache" / "vllm" / "bench.log")
    print(f"[serve_load] starting vLLM on {server.url} (log: {server.log}) ...", flush=True)
    server.wait_healthy(args.start_timeout_s)
    args.vllm_url = f"{server.url}/v1#{meta['model'].get('served_name', 'lab')}"
    return server


# --------------------------------------------------------------------------- the report
#: What a wanted target not finished yet says in a partial ``--out`` (a run stopped before it).
NOT_RUN = "not run: the benchmark stopped before this target (see its log)"


def _skipped(reason: str, args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    return {c: {"skipped": reason, "requests": 0, "concurrency": c, "errors": 0, "tokens_per_s": None,
                "ttft_p50_s": None, "ttft_p95_s": None, "latency_p50_s": None, "latency_p95_s": None,
                "breakdown": None} for c in args.concurrency}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(runs: dict[str, dict[int, dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    """The ``--out`` object (module docstring) from each target's results per concurrency."""
    top = max(args.concurrency)
    by_c = {str(c): {t: runs[t][c] for t in TARGETS} for c in args.concurrency}
    ratios = {}
    for c, r in by_c.items():
        v, off, on, tf = r["vllm"], r["gateway_guardrails_off"], r["gateway_guardrails_on"], r["transformers"]
        ratios[c] = {"gateway_off_over_vllm_tokens_per_s": _ratio(off["tokens_per_s"], v["tokens_per_s"]),
                     "gateway_on_over_vllm_ttft_p50": _ratio(on["ttft_p50_s"], v["ttft_p50_s"]),
                     "gateway_on_over_off_tokens_per_s": _ratio(on["tokens_per_s"], off["tokens_per_s"]),
                     "vllm_over_transformers": _ratio(v["tokens_per_s"], tf["tokens_per_s"])}
    goals = {}
    for key, (bound, higher) in GOALS.items():
        met = {c: (None if x[key] is None else (x[key] >= bound if higher else x[key] <= bound)) for c, x in ratios.items()}
        goals[key] = {"goal": f"{'>=' if higher else '<='} {bound}", "met": met}
    on = runs["gateway_guardrails_on"][top]
    return {**{t: runs[t][top] for t in TARGETS}, "by_concurrency": by_c, "ratios": ratios, "goals": goals,
            "cost_per_check": (on.get("breakdown") or {}).get("checks"),
            "vllm_over_transformers": ratios[str(top)]["vllm_over_transformers"], "max_tokens": args.max_tokens,
            "requests": args.requests, "concurrency": list(args.concurrency), "arrangement": _arrangement(args),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "note": "wall-clock figures; other work on the machine at the same time slows them"}


def _arrangement(args: argparse.Namespace) -> dict[str, Any]:
    from lab.serve.vllm_proc import vllm_python

    return {"vllm_python": vllm_python(), "vllm_url": args.vllm_url,
            "vllm_omp_threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
            "vllm_kvcache_space_gib": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
            "gateway_cpus": args.gateway_cpus or "all", "gateway_omp_threads": args.gateway_threads,
            "client_cpus": args.client_cpus or "all",
            "gateway_to_thread_pool": min(32, (os.cpu_count() or 1) + 4), "gateway_args": args.gateway_arg}


def _plot(path: Path, rep: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lab.io import write_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    cs = rep["concurrency"]
    for t in TARGETS:
        tps = [rep["by_concurrency"][str(c)][t]["tokens_per_s"] for c in cs]
        ttft = [rep["by_concurrency"][str(c)][t]["ttft_p50_s"] for c in cs]
        if any(x is not None for x in tps):
            a.plot(cs, [x or 0 for x in tps], "o-", label=t)
            b.plot(cs, [x or 0 for x in ttft], "o-", label=t)
    a.set(title="throughput", xlabel="concurrent requests", ylabel="completion tokens / s")
    b.set(title="time to first token p50", xlabel="concurrent requests", ylabel="s")
    a.legend(fontsize=7)
    fig.tight_layout()
    write_figure(path, fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "results" / "export" / "bundle")
    ap.add_argument("--requests", type=int, default=64, help="requests per burst")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 64], help="one burst per value, per target")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--vllm-url", help="http://host:port/v1#served-name of a running vLLM server (default: start one)")
    ap.add_argument("--vllm-python", help="the interpreter with vLLM (default: LAB_VLLM_PYTHON, else .venv-serve/bin/python "
                    "when it exists, else this one)")
    ap.add_argument("--vllm-cpus", help="VLLM_CPU_OMP_THREADS_BIND for the vLLM started here, e.g. 0-1 (default auto)")
    ap.add_argument("--gateway-on-url", help="http://host:port/v1 of a running gateway with the policy (default: start one)")
    ap.add_argument("--gateway-off-url", help="... and of one without it (lab serve --no-guardrails)")
    ap.add_argument("--gateway-threads", type=int, default=1, help="OMP_NUM_THREADS of the gateway started here")
    ap.add_argument("--gateway-cpus", help="CPUs the gateway started here is pinned to, e.g. 1 (default: not pinned)")
    ap.add_argument("--client-cpus", help="CPUs this load generator is pinned to once vLLM has started, e.g. 1 "
                    "(default: not pinned)")
    ap.add_argument("--gateway-arg", action="append", default=[], help="one more argument to lab serve (repeatable), "
                    "e.g. --gateway-arg=--no-trace")
    ap.add_argument("--upstream", default="auto", help="the gateways' upstream when no vLLM runs (auto: transformers)")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="bound on one burst")
    ap.add_argument("--start-timeout-s", type=float, default=600.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    if args.requests < 1 or args.requests > 10_000 or min(args.concurrency) < 1:
        raise SystemExit("--requests must be 1..10000 and --concurrency >= 1")
    args.concurrency = sorted(set(args.concurrency))
    wanted = [t for t in args.targets.split(",") if t]
    unknown = [t for t in wanted if t not in TARGETS]
    if unknown:
        raise SystemExit(f"--targets: {', '.join(unknown)} not one of {', '.join(TARGETS)}")
    vp = args.vllm_python or os.environ.get("LAB_VLLM_PYTHON") or (
        str(ROOT / ".venv-serve" / "bin" / "python") if (ROOT / ".venv-serve" / "bin" / "python").exists() else None)
    if vp:
        os.environ["LAB_VLLM_PYTHON"] = vp
    questions = _questions(args.bundle, args.requests)
    from lab.io import write_json

    runs = {t: _skipped("not in --targets" if t not in wanted else NOT_RUN, args) for t in TARGETS}

    def keep(target: str, result: dict[int, dict[str, Any]]) -> None:
        """Record a finished target and rewrite ``--out`` at once (atomically): a run stopped or
        killed later keeps every target it finished (``complete: false``)."""
        runs[target] = result
        if args.out:
            write_json(args.out, {**report(runs, args), "complete": False})

    server: Any = None
    try:
        if not args.vllm_url and any(t in wanted for t in ("vllm", *GATEWAYS)):
            server = _start_vllm(args.bundle, args)
        if args.client_cpus:   # after vLLM started: it must not inherit the pin
            os.sched_setaffinity(0, _cpus(args.client_cpus))
        if "vllm" in wanted:
            keep("vllm", vllm_target(args.bundle, questions, args) if args.vllm_url else _skipped(server, args))
        upstream = args.vllm_url or args.upstream
        for t in GATEWAYS:
            if t in wanted:
                keep(t, gateway_target(t, args.bundle, questions, args, upstream))
    finally:
        if server is not None and not isinstance(server, str):
            server.stop()
        os.sched_setaffinity(0, ALL_CPUS)
    if "transformers" in wanted:   # after vLLM has stopped: it would share the cores
        keep("transformers", transformers_target(args.bundle, questions, args))
    rep = {**report(runs, args), "complete": True}
    for c, r in rep["ratios"].items():
        print(f"[serve_load] concurrency {c}: {json.dumps(r)}", flush=True)
    if args.out:
        write_json(args.out, rep)
    if args.plot:
        _plot(args.plot, rep)
    print(json.dumps(rep, indent=2))
    return rep


if __name__ == "__main__":
    main()
