"""Load test of the serving path: N concurrent chat requests (bounded in count and time, loopback
only) against the gateway, against vLLM directly, and against a plain transformers generation of
the same model (the baseline), all with the same RAG prompts of the bundle's held-out questions.

Each target gets one uncounted warm-up request first. Per target: requests, concurrency, errors, tokens/s (completion tokens / wall time of the burst),
time to first token p50/p95 (first streamed content; for transformers the first decoding step of
the batch), end-to-end latency p50/p95. ``vllm_over_transformers`` is the throughput ratio at the
same concurrency. It starts what it needs when given no URL: ``lab serve`` (upstream ``auto``) on a
free port, and vLLM's server when vLLM is installed (otherwise the target says ``skipped`` and why).

    python benchmarks/serve_load.py --bundle results/export/bundle --requests 64 --concurrency 64 \
        --out benchmarks/results/serve_load.json

``--out FILE`` holds one object per target ``gateway``, ``vllm``, ``transformers`` with the keys
``requests``, ``concurrency``, ``errors``, ``tokens_per_s``, ``ttft_p50_s``, ``ttft_p95_s``.
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


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


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


async def _burst(url: str, bodies: list[dict[str, Any]], concurrency: int, timeout_s: float,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Stream every body to ``url``/chat/completions, ``concurrency`` at a time."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    ttft: list[float] = []
    lat: list[float] = []
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
                                         "stream_options": {"include_usage": True}}, headers=headers or {}) as r:
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
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            lat.append(time.perf_counter() - t0)
            if first is not None:
                ttft.append(first)
            tokens += got

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s,
                                 limits=httpx.Limits(max_connections=concurrency + 8)) as client:
        # one request first, not counted: load-time work (LoRA load, compilation, caches) is not throughput
        await client.post("/chat/completions", json={**bodies[0], "max_tokens": 4}, headers=headers or {})
        t_all = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*[one(client, b) for b in bodies]), timeout_s)
    wall = time.perf_counter() - t_all
    return {"requests": len(bodies), "concurrency": concurrency, "errors": sum(errors.values()),
            "errors_by_type": errors, "completion_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "ttft_p50_s": _pct(ttft, 0.5), "ttft_p95_s": _pct(ttft, 0.95), "latency_p50_s": _pct(lat, 0.5),
            "latency_p95_s": _pct(lat, 0.95)}


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


def gateway_target(bundle: Path, questions: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    bodies = [{"messages": [{"role": "user", "content": q["question"]}], "topic": q.get("title"),
               "max_tokens": args.max_tokens} for q in questions]
    if args.gateway_url:
        return asyncio.run(_burst(args.gateway_url, bodies, args.concurrency, args.timeout_s))
    port = _free_port()
    env = {**os.environ}
    env.pop("LAB_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", str(bundle), "--port", str(port),
                             "--upstream", args.upstream, "--fallback", "none", "--vllm-port", str(_free_port())],
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{port}/readyz", args.start_timeout_s, proc)
        out = asyncio.run(_burst(f"http://127.0.0.1:{port}/v1", bodies, args.concurrency, args.timeout_s))
        out["upstream"] = args.upstream
        return out
    finally:
        _stop(proc)


def _prompts(bundle: Path, questions: list[dict]) -> list[list[dict]]:
    """The messages the gateway builds for these questions (same retriever, same prompt code)."""
    from lab.serve.rag import RAG

    rag = RAG(bundle)
    hits = rag.search([q["question"] for q in questions])
    return [rag.messages(q["question"], h, q.get("title")) for q, h in zip(questions, hits, strict=True)]


def vllm_target(bundle: Path, questions: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    from lab.handoff.bundle import bundle_vllm_args, read_bundle
    from lab.serve.vllm_proc import VLLMServer, vllm_installed

    meta = read_bundle(bundle)
    served = meta["model"].get("served_name", "lab")
    bodies = [{"model": served, "messages": m, "max_tokens": args.max_tokens, "temperature": 0}
              for m in _prompts(bundle, questions)]
    if args.vllm_url:
        return asyncio.run(_burst(args.vllm_url, bodies, args.concurrency, args.timeout_s))
    if not vllm_installed():
        return {"skipped": "vLLM is not installed here (pip install 'lab[serve-cpu]' or 'lab[serve-cuda]')",
                "requests": 0, "concurrency": args.concurrency, "errors": 0, "tokens_per_s": None,
                "ttft_p50_s": None, "ttft_p95_s": None}
    server = VLLMServer(bundle_vllm_args(bundle, meta), port=_free_port(), root=ROOT, log=ROOT / ".cache" / "vllm" / "bench.log")
    try:
        server.wait_healthy(args.start_timeout_s)
        return asyncio.run(_burst(f"{server.url}/v1", bodies, args.concurrency, args.timeout_s))
    finally:
        server.stop()


def transformers_target(bundle: Path, questions: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    from lab.generate import GenParams
    from lab.handoff.bundle import read_bundle
    from lab.serve.app import transformers_upstream

    meta = read_bundle(bundle)
    backend = transformers_upstream(bundle, meta, batch_size=args.concurrency).backend
    prompts = _prompts(bundle, questions)
    params = GenParams(max_new_tokens=args.max_tokens, temperature=0.0, seed=0)
    backend.generate(prompts[:1], params)  # warm-up
    t0 = time.perf_counter()
    gens = backend.generate(prompts, params)
    wall = time.perf_counter() - t0
    ttft = [g.ttft_s for g in gens if g.ttft_s is not None]
    lat = [g.latency_s for g in gens]
    tokens = sum(g.tokens_out for g in gens)
    return {"requests": len(prompts), "concurrency": args.concurrency, "errors": 0, "completion_tokens": tokens,
            "wall_s": wall, "tokens_per_s": tokens / wall, "ttft_p50_s": _pct(ttft, 0.5), "ttft_p95_s": _pct(ttft, 0.95),
            "latency_p50_s": _pct(lat, 0.5), "latency_p95_s": _pct(lat, 0.95),
            "note": f"one generate() call, batch size {args.concurrency} (the backend's batching)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "results" / "export" / "bundle")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--gateway-url", help="http://host:port/v1 of a running gateway (default: start lab serve)")
    ap.add_argument("--vllm-url", help="http://host:port/v1 of a running vLLM server (default: start one)")
    ap.add_argument("--upstream", default="auto", help="the upstream of the gateway lab starts")
    ap.add_argument("--targets", default="gateway,vllm,transformers")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="bound on one burst")
    ap.add_argument("--start-timeout-s", type=float, default=600.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.requests > 10_000:
        raise SystemExit("--requests must be 1..10000 and --concurrency >= 1")
    questions = _questions(args.bundle, args.requests)
    fns = {"gateway": gateway_target, "vllm": vllm_target, "transformers": transformers_target}
    results: dict[str, Any] = {}
    for name in args.targets.split(","):
        if name not in fns:
            raise SystemExit(f"--targets: {name!r} is not one of {', '.join(fns)}")
        print(f"[serve_load] {name}: {args.requests} requests, concurrency {args.concurrency} ...", flush=True)
        results[name] = fns[name](args.bundle, questions, args)
        print(f"[serve_load] {name}: {json.dumps(results[name])}", flush=True)
    v, t = results.get("vllm", {}), results.get("transformers", {})
    ratio = v["tokens_per_s"] / t["tokens_per_s"] if v.get("tokens_per_s") and t.get("tokens_per_s") else None
    report = {**results, "vllm_over_transformers": ratio, "max_tokens": args.max_tokens,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "note": "wall-clock figures; other work on the machine at the same time slows them"}
    if args.out:
        from lab.io import write_json

        write_json(args.out, report)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from lab.io import write_figure

        ran = {k: r for k, r in results.items() if r.get("tokens_per_s")}
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
        a.bar(list(ran), [r["tokens_per_s"] for r in ran.values()])
        a.set(title=f"throughput at concurrency {args.concurrency}", ylabel="completion tokens / s")
        for i, r in enumerate(ran.values()):
            b.plot([i, i], [r["ttft_p50_s"] or 0, r["ttft_p95_s"] or 0], "o-")
        b.set_xticks(range(len(ran)), list(ran))
        b.set(title="time to first token p50 - p95", ylabel="s")
        fig.tight_layout()
        write_figure(args.plot, fig)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
