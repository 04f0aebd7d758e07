"""``lab serve``: a bundle (folder or ``models:/NAME@ALIAS``) served as vLLM behind the gateway.

Upstreams: ``vllm`` (start vLLM's server with the bundle's engine arguments), ``transformers``
(the bundle's model in process: the baseline, and the way to serve without vLLM), or the URL of an
OpenAI-compatible server already running (``http://127.0.0.1:8000/v1#served-name``); ``auto`` is
vllm when it is installed, else transformers. The fallback (``--fallback``) answers when the
upstream fails after its retries: ``message`` (a fixed reply), ``transformers`` or ``none``.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.config.generation import ANSWER_TIMEOUT_S
from lab.errors import ConfigError


def resolve_bundle(bundle: str, root: Path) -> Path:
    """A bundle folder, or a registry URI downloaded under ``.cache/bundles``."""
    if bundle.startswith("models:/"):
        from lab.export.registry import bundle_from_registry

        safe = bundle.replace(":/", "_").replace("/", "_").replace("@", "_")
        return bundle_from_registry(bundle, root / ".cache" / "bundles" / safe, root=root)
    return Path(bundle)


def settings_timeout(settings: Any) -> float:
    """The upstream's read timeout: the gateway's whole-answer timeout (default :data:`ANSWER_TIMEOUT_S`)."""
    return float(getattr(settings, "request_timeout_s", None) or ANSWER_TIMEOUT_S)


def transformers_upstream(bundle_dir: Path, meta: dict[str, Any], batch_size: int = 8) -> Any:
    """The bundle's model (base, base + its adapter, or its full fine-tune) through lab's
    transformers backend."""
    from lab.generate import make_backend
    from lab.handoff.bundle import bundle_model
    from lab.serve.upstream import BackendUpstream

    model = bundle_model(bundle_dir, meta)
    if model.adapter:
        from lab.finetune import load_finetuned

        backend = make_backend({"backend": "transformers", "model": load_finetuned(model.adapter),
                                "batch_size": batch_size})
    else:
        backend = make_backend({"backend": "transformers", "model": model.spec or model.base,
                                "batch_size": batch_size})
    return BackendUpstream(backend, name=f"transformers:{model.spec or meta['model']['base']}")


def build(bundle_dir: Path, *, upstream: str = "auto", fallback: str = "message", settings: Any = None,
          vllm_port: int = 8000, root: Path | None = None, store_dir: Path | None = None,
          fallback_message: str = "The model is unavailable right now; please try again shortly.",
          judges_dir: Path | None = None, guardrails: bool = True) -> tuple[Any, Any]:
    """The :class:`~lab.serve.chat.ChatService` and the vLLM process it needs (or None). When the
    settings sample responses for online evaluation, its judges are
    :func:`lab.serve.online_judges.default_judges` (``judges_dir``: the judge stage's output folder).
    ``guardrails=False`` serves without the bundle's policy (what the policy costs is measured so).

    Raises
    ------
    BundleError
        The bundle is unreadable, old, or exported with another prompt version or base-model
        revision than this machine has (:class:`lab.serve.rag.RAG`, :func:`lab.handoff.bundle.bundle_model`).
    """
    from lab.guardrails.policy import Policy
    from lab.serve.chat import RAG, ChatService, Settings
    from lab.serve.metrics import GatewayMetrics, VLLMCollector
    from lab.serve.upstream import MessageUpstream, OpenAIUpstream
    from lab.serve.vllm_proc import VLLMServer, vllm_installed

    root = root or Path.cwd()
    rag = RAG(bundle_dir, store_dir=store_dir)
    meta = rag.bundle
    metrics = GatewayMetrics()
    proc = None
    if upstream == "auto":
        upstream = "vllm" if vllm_installed() else "transformers"
    served = meta["model"].get("served_name", "lab")
    if upstream == "vllm":
        from lab.handoff.bundle import bundle_vllm_args

        proc = VLLMServer(bundle_vllm_args(bundle_dir, meta), port=vllm_port, root=root, log=root / ".cache" / "vllm" / "server.log")
        up: Any = OpenAIUpstream(f"{proc.url}/v1", served, timeout_s=settings_timeout(settings))
        metrics.registry.register(VLLMCollector(f"{proc.url}/metrics"))
    elif upstream == "transformers":
        up = transformers_upstream(bundle_dir, meta)
    elif upstream.startswith(("http://", "https://")):
        base, _, name = upstream.partition("#")
        up = OpenAIUpstream(base, name or served, api_key=os.environ.get("LAB_UPSTREAM_API_KEY"),
                            timeout_s=settings_timeout(settings))
        from lab.generate.vllm_metrics import metrics_url

        metrics.registry.register(VLLMCollector(metrics_url(base)))
    else:
        raise ConfigError(f"--upstream {upstream!r}: expected auto, vllm, transformers or http(s)://host:port/v1#name")
    if fallback == "message":
        fb: Any = MessageUpstream(fallback_message)
    elif fallback == "transformers":
        fb = up if upstream == "transformers" else transformers_upstream(bundle_dir, meta)
    elif fallback == "none":
        fb = None
    else:
        raise ConfigError(f"--fallback {fallback!r}: expected message, transformers or none")
    from lab.handoff.bundle import bundle_policy

    policy_cfg = bundle_policy(bundle_dir, meta) if guardrails else None
    policy = Policy.from_config(policy_cfg) if policy_cfg else None
    settings = settings or Settings()
    if settings.api_key is None and os.environ.get("LAB_API_KEY"):
        settings = replace(settings, api_key=os.environ["LAB_API_KEY"])
    judges: list[Any] = []
    if settings.judging:
        from lab.serve.online_judges import default_judges

        judges = default_judges(settings, judges_dir=judges_dir, policy=policy, rag=rag)
    return ChatService(rag, up, fallback=fb, settings=settings, policy=policy, metrics=metrics, judges=judges), proc


def serve(bundle: str, *, feedback: Path, host: str = "127.0.0.1", port: int = 8080, upstream: str = "auto",
          fallback: str = "message", vllm_port: int = 8000, root: Path | None = None, trace: bool = True,
          timeout_s: float = ANSWER_TIMEOUT_S, stream_window: int | None = None,
          stream_chunk: int | None = None, judge_sample: float = 0.0,
          judge_sample_routes: dict[str, float] | None = None, judge_queue: int | None = None,
          judges_dir: Path | None = None, guardrails: bool = True) -> None:
    """Run the gateway (and vLLM) until interrupted; both are stopped on the way out. ``feedback``:
    the JSONL file the gateway appends users' ratings to (the caller picks it: ``lab serve --feedback``).
    ``stream_window``/``stream_chunk``: how a streamed answer passes the output rules
    (:mod:`lab.serve.streamguard`; None: its defaults). ``judge_sample`` (per route
    ``judge_sample_routes``), ``judge_queue``, ``judges_dir``: online evaluation
    (:mod:`lab.serve.online_eval`; 0: off). ``guardrails=False``: without the bundle's policy."""
    import uvicorn

    from lab.serve.chat import Settings
    from lab.serve.gateway import create_app

    root = root or Path.cwd()
    bundle_dir = resolve_bundle(bundle, root)
    stream = {k: v for k, v in (("stream_window", stream_window), ("stream_chunk", stream_chunk)) if v is not None}
    online: dict[str, Any] = {"judge_sample": judge_sample, "judge_sample_routes": dict(judge_sample_routes or {})}
    if judge_queue is not None:
        online["judge_queue"] = judge_queue
    settings = Settings(feedback_path=feedback, trace=trace, request_timeout_s=timeout_s, **stream, **online)
    gw, proc = build(bundle_dir, upstream=upstream, fallback=fallback, settings=settings, vllm_port=vllm_port,
                     root=root, judges_dir=judges_dir, guardrails=guardrails)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler found before it
    # started: this one turns it into a normal exit, so the finally below stops vLLM
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        if proc is not None:
            print(f"[lab serve] starting vLLM on {proc.url} (log: {proc.log}) ...", flush=True)
            proc.wait_healthy()
        print(f"[lab serve] gateway on http://{host}:{port} (upstream {gw.upstream.name}, "
              f"fallback {getattr(gw.fallback, 'name', 'none')}, guardrail policy "
              f"{gw.policy.id if gw.policy is not None else 'off'})", flush=True)
        if gw.online is not None:
            from lab.serve.online_judges import describe

            print(f"[lab serve] online evaluation: {settings.judge_sample:.0%} of answered responses "
                  f"(routes {settings.judge_sample_routes or 'all alike'}), queue {settings.judge_queue}, judges "
                  f"from {judges_dir or 'none (rules only)'}:\n  " + describe(gw.online.judges).replace("\n", "\n  "),
                  flush=True)
        uvicorn.run(create_app(gw), host=host, port=port, log_level="warning")
    finally:
        if proc is not None:
            proc.stop()
        print("[lab serve] stopped", flush=True)


def gate_and_promote(bundle: str, *, name: str, version: str | None = None,
                     upstream: str = "auto", vllm_port: int = 8000, root: Path | None = None,
                     alias: str = "champion") -> dict[str, Any]:
    """Serve the bundle (in process, the upstream as ``lab serve`` would use it, no fallback: a canary
    answered by a fallback proves nothing), run the canary (:func:`lab.serve.gate.canary`), record the
    result on the model version and move ``alias`` only when it passed. ``version`` defaults to the
    newest version of ``name`` registered from this bundle (found by its ``bundle_id`` in this
    machine's MLflow store: :func:`lab.export.registry.version_of_bundle`)."""
    from lab.export.registry import promote, version_of_bundle
    from lab.handoff.bundle import read_bundle
    from lab.serve.chat import Settings
    from lab.serve.gate import canary
    from lab.serve.gateway import create_app

    root = root or Path.cwd()
    bundle_dir = resolve_bundle(bundle, root)
    if version is None:
        version = version_of_bundle(name, read_bundle(bundle_dir)["provenance"].get("bundle_id", ""), root=root)
    gw, proc = build(bundle_dir, upstream=upstream, fallback="none", settings=Settings(mlflow_feedback=False),
                     vllm_port=vllm_port, root=root)
    try:
        if proc is not None:
            proc.wait_healthy()
        result = canary(bundle_dir, app=create_app(gw))
    finally:
        if proc is not None:
            proc.stop()
    result["promoted"] = promote(name, version, result, alias=alias, root=root)
    result.update(name=name, version=version)
    return result
