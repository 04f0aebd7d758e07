"""What the red team attacks: a served bundle in process (policy on and off), or a gateway's URL.

A bundle folder is served as ``lab serve`` serves it (:func:`lab.serve.app.build`: the bundle's
retrieval, prompt, upstream and guardrail policy), without a fallback upstream (an attack answered
by a fixed fallback message proves nothing), with the planted documents added to its index
(:func:`lab.redteam.planted.plant`). Two gateways share that retrieval and upstream: ``on`` with the
bundle's policy and ``off`` without any. The benign probes are the bundle's canary questions (its
``eval.jsonl``: the held-out questions the promotion gate asks), with their topics.

A URL (``http://127.0.0.1:PORT``) is a gateway someone started with ``lab serve``: its policy is
whatever it serves (arm ``served``; a second URL serving the same bundle without a policy is arm
``off``). Documents cannot be planted in it, so the categories that need them are left out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.redteam.planted import PlantedDoc, plant
from lab.redteam.runner import Arm, Probe, check_loopback

#: The address an in-process gateway is called by (httpx's ASGI transport never opens a socket).
IN_PROCESS = "http://gateway"


@dataclass
class Target:
    """The arms to attack and what the report says about them."""

    arms: list[Arm]
    kind: str                                   # "bundle" or "url"
    name: str                                   # the bundle folder or the URL
    benign: list[Probe] = field(default_factory=list)   # the bundle's canary questions
    can_plant: bool = False
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    stop: Callable[[], None] = lambda: None    # stops what serving started (a vLLM process)

    async def aclose(self) -> None:
        for arm in self.arms:
            await arm.client.aclose()


def _client(app: Any = None, url: str | None = None, timeout_s: float = 60.0) -> Any:
    import httpx

    transport = httpx.ASGITransport(app=app) if app is not None else None
    return httpx.AsyncClient(transport=transport, base_url=url or IN_PROCESS, timeout=timeout_s)


def canary_questions(bundle_dir: Path, n: int, seed: int) -> list[Probe]:
    """At most ``n`` of the bundle's held-out questions (a seeded sample, in file order) as benign probes.

    Raises
    ------
    DataError
        A question record without a ``question`` string (the message names the file and record).
    """
    from lab.serve.gate import read_eval

    items = read_eval(bundle_dir) if (bundle_dir / "eval.jsonl").is_file() else []
    keep = sorted(random.Random(f"lab.redteam:{seed}:benign").sample(range(len(items)), min(n, len(items))))
    out = []
    for i in keep:
        q = items[i].get("question")
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{bundle_dir / 'eval.jsonl'}: record {i + 1} has no 'question' string; "
                            "rerun `dvc repro export`")
        title = str(items[i].get("title") or "").replace("_", " ") or None
        out.append(Probe(f"benign-{len(out):03d}", "benign", (q,), topic=title))
    return out


def bundle_target(bundle_dir: Path, documents: Sequence[PlantedDoc], *, upstream: Any = "transformers",
                  root: Path | None = None, request_timeout_s: float = 60.0, benign: int = 20, seed: int = 0,
                  store_dir: Path | None = None) -> Target:
    """The bundle served in process, policy on and off, with ``documents`` planted.

    ``upstream``: what :func:`lab.serve.app.build` takes (``transformers``, ``vllm``, ``auto``, an
    OpenAI-compatible URL), or an upstream object (:class:`lab.serve.upstream.Upstream`; tests).

    Raises
    ------
    DataError
        ``bundle_dir`` is no folder (the message says how to get one).
    BundleError
        The bundle is unreadable, old, or of another prompt version.
    """
    from lab.guardrails.policy import Policy
    from lab.handoff.bundle import bundle_policy
    from lab.serve.chat import RAG, ChatService, Settings
    from lab.serve.gateway import create_app

    if not Path(bundle_dir).is_dir():
        raise DataError(f"{bundle_dir}: no bundle folder; `dvc repro export` writes one (results/export/bundle "
                        "by default), or name a bundle folder or a gateway URL on 127.0.0.1")
    settings = Settings(mlflow_feedback=False, trace=False, request_timeout_s=request_timeout_s)
    proc = None
    if isinstance(upstream, str):
        from lab.serve.app import build

        gw, proc = build(Path(bundle_dir), upstream=upstream, fallback="none", settings=settings,
                         root=root, store_dir=store_dir)
    else:
        rag = RAG(bundle_dir, store_dir=store_dir)
        spec = bundle_policy(bundle_dir, rag.bundle)
        gw = ChatService(rag, upstream, settings=settings, policy=Policy.from_config(spec) if spec else None)
    try:
        if proc is not None:
            proc.wait_healthy()
        indexed = plant(gw.rag, documents)
    except BaseException:
        if proc is not None:   # a vLLM server started for nothing is stopped, not left behind
            proc.stop()
        raise
    off = ChatService(gw.rag, gw.upstream, settings=settings, policy=None)
    arms = []
    notes = []
    if gw.policy is not None:
        arms.append(Arm("on", _client(create_app(gw), timeout_s=request_timeout_s), gw.policy.fallback_message,
                        gw.policy.id))
    else:
        notes.append("the bundle has no guardrail policy: only the policy-off arm ran")
    arms.append(Arm("off", _client(create_app(off), timeout_s=request_timeout_s)))
    info = {"bundle_id": gw.rag.bundle.get("provenance", {}).get("bundle_id"), "upstream": gw.upstream.name,
            "policy_id": gw.policy.id if gw.policy is not None else None, "passages_indexed": indexed,
            "planted_documents": len(documents), "retriever": gw.rag.bundle["retrieval"]["config"].get("retriever"),
            "k": gw.rag.k}
    return Target(arms, "bundle", str(bundle_dir), canary_questions(Path(bundle_dir), benign, seed), True, notes,
                  info, stop=proc.stop if proc is not None else (lambda: None))


def url_target(url: str, *, off_url: str | None = None, request_timeout_s: float = 60.0,
               fallback_message: str | None = None) -> Target:
    """A running gateway (arm ``served``) and, optionally, the same bundle served without a policy
    (arm ``off``), both on loopback (:func:`lab.redteam.runner.check_loopback`)."""
    from lab.config.guardrails import DEFAULT_FALLBACK

    url = check_loopback(url, "target")
    arms = [Arm("served", _client(url=url, timeout_s=request_timeout_s), fallback_message or DEFAULT_FALLBACK)]
    if off_url:
        arms.append(Arm("off", _client(url=check_loopback(off_url, "off_target"), timeout_s=request_timeout_s)))
    notes = [("a gateway reached by URL: its policy is whatever it serves (arm served), and no document can be "
              "planted in its index")]
    return Target(arms, "url", url, [], False, notes, {"url": url, "off_url": off_url})


def read_benign(path: Path, n: int) -> list[Probe]:
    """At most ``n`` benign questions of a JSONL file (``question`` or ``text``, optional ``topic``)
    or a CSV file (a ``question`` column, optional ``topic``), in file order.

    Raises
    ------
    DataError
        Another format, a missing column, or a record without a question (the message names the
        file and the line).
    """
    import csv

    from lab.io import iter_jsonl

    path = Path(path)
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        rows = [(row.where, row.record) for row in iter_jsonl(path)]
    elif path.suffix == ".csv":
        if not path.is_file():
            raise DataError(f"{path}: file not found (or not a file)")
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if "question" not in (reader.fieldnames or []):
                raise DataError(f"{path}: no 'question' column (columns: {', '.join(reader.fieldnames or []) or 'none'})")
            rows = [(f"{path}:line {i + 2}", dict(r)) for i, r in enumerate(reader)]
    else:
        raise DataError(f"{path}: benign questions must be a .jsonl or .csv file")
    out = []
    for where, rec in rows[:n]:
        q = rec.get("question", rec.get("text"))
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{where}: no 'question' text; each record needs a non-empty question")
        topic = rec.get("topic")
        out.append(Probe(f"benign-file-{len(out):03d}", "benign", (q,), topic=str(topic) if topic else None))
    return out
