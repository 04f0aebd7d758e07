"""The RAG gateway: an OpenAI-compatible ``/v1/chat/completions`` that retrieves with the bundle's
index (the studies' retriever code and embedding store), builds the study's prompt, calls the
upstream (vLLM) and returns the answer with its sources.

Routes: ``POST /v1/chat/completions`` (``stream: true`` gives server-sent events, the sources in
the last chunk), ``POST /v1/feedback``, ``GET /healthz`` (the process lives), ``GET /readyz``
(index loaded and the upstream answers), ``GET /metrics`` (Prometheus), ``GET /`` (playground).

Bad input is a 4xx with a message naming the field (422 from validation, 400 for a body that is not
JSON or not UTF-8, 413 for a body over ``max_body_bytes``, 401 without the key when one is set);
a failing upstream is retried, then answered by the fallback and counted; an unexpected error is
a 500 counted by type, never a hung request (every upstream call has a timeout).

FastAPI + uvicorn: a well-kept ASGI stack with request validation from pydantic models.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lab.io import read_jsonl
from lab.serve.metrics import GatewayMetrics
from lab.serve.upstream import Upstream, UpstreamError, generate_with_fallback


# --------------------------------------------------------------------------- request models
class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=32_000)


class ChatRequest(BaseModel):
    """The OpenAI chat fields the gateway uses (others are ignored), plus ``k`` and ``topic``."""

    model_config = ConfigDict(extra="ignore")

    messages: list[Message] = Field(min_length=1, max_length=64)
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=2048)
    temperature: float = Field(0.0, ge=0, le=2)
    k: int | None = Field(None, ge=1, le=50)          # passages to retrieve (default: the bundle's)
    topic: str | None = Field(None, max_length=200)   # the study's "Topic:" line (default: top source's title)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=100)
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=4000)


# --------------------------------------------------------------------------- the RAG part
class RAG:
    """The bundle's retriever and prompt: the same functions the studies call."""

    def __init__(self, bundle_dir: str | Path, *, store_dir: str | Path | None = None, embed: Any = None) -> None:
        from lab.export import read_bundle
        from lab.retrieval import load_retriever
        from lab.retrieval.configured import DENSE, config_embedder

        self.dir = Path(bundle_dir)
        self.bundle = read_bundle(self.dir)
        config = self.bundle["retrieval"]["config"]
        self.embed = config_embedder(config, store_dir, embed) if config["retriever"] in DENSE else None
        self.retriever = load_retriever(self.dir / "index", self.embed)
        self.passages: dict[str, dict[str, str]] = {}
        for rec in read_jsonl(self.dir / "passages.jsonl"):
            self.passages[rec["id"]] = {"title": rec.get("title", ""), "text": rec["text"]}
        self.k = int(self.bundle["retrieval"].get("k") or 2)
        self.rag = bool(self.bundle["prompt"].get("rag", True))

    def search(self, questions: Sequence[str], k: int | None = None) -> list[list[tuple[str, float]]]:
        return self.retriever.search(list(questions), k or self.k)

    def messages(self, question: str, hits: Sequence[tuple[str, float]], topic: str | None = None,
                 history: Sequence[dict] = ()) -> list[dict]:
        """The study's prompt for ``question`` (``lab.generate.domain_qa_prompt``); earlier turns kept before it."""
        from lab.data.domain import QAExample
        from lab.generate.domain_qa_prompt import with_context, zero_shot

        if topic is None:
            topic = self.passages[hits[0][0]]["title"] if hits else ""
        ex = QAExample(id="", question=question, answers=(), paragraph_id="", title=topic, context="")
        msgs = with_context(ex, [self.passages[d]["text"] for d, _ in hits]) if self.rag and hits else zero_shot(ex)
        return [msgs[0], *history, *msgs[1:]]

    def embedding_hit_rate(self) -> float | None:
        store = getattr(self.embed, "store", None)
        if store is None:
            return None
        total = store.stats.hits + store.stats.misses
        return store.stats.hits / total if total else None


# --------------------------------------------------------------------------- settings and state
@dataclass
class Settings:
    """How the gateway behaves; ``lab serve`` fills it from flags and the environment."""

    api_key: str | None = None           # required as ``Authorization: Bearer KEY`` when set
    max_body_bytes: int = 1_000_000
    max_concurrency: int = 64            # upstream calls at once; the rest wait (queue depth)
    retries: int = 2
    backoff_s: float = 0.2
    request_timeout_s: float = 300.0     # a whole answer; a CPU server under 64 concurrent prefills needs minutes
    default_max_tokens: int = 64
    feedback_path: Path = Path("feedback.jsonl")
    remember: int = 10_000               # recent responses kept for feedback
    mlflow_feedback: bool = True         # also log feedback to MLflow (tracking store of the project)
    trace: bool = False                  # an MLflow trace per request (lab serve turns it on)


@dataclass
class _Remembered:
    question: str
    answer: str
    contexts: list[str]
    sources: list[dict[str, Any]]
    trace_id: str | None = None
    created: float = field(default_factory=time.time)


class Gateway:
    """The app's state: RAG, upstreams, guardrail policy, metrics, recent responses."""

    def __init__(self, rag: RAG, upstream: Upstream, *, fallback: Upstream | None = None,
                 settings: Settings | None = None, policy: Any = None,
                 metrics: GatewayMetrics | None = None) -> None:
        self.rag, self.upstream, self.fallback = rag, upstream, fallback
        self.settings = settings or Settings()
        self.metrics = metrics or GatewayMetrics()
        self.policy = policy
        if policy is not None:
            policy.on_decision.append(lambda stage, o: self.metrics.guardrails.labels(o.decision.check, o.action).inc())
        self.metrics.add_gauges("lab_embedding_store_hit_ratio", "Embedding-store hits / lookups of query "
                                "embeddings since start", rag.embedding_hit_rate)
        from lab.serve.tracing import Tracer

        self.tracer = Tracer(self.settings.trace, on_error=lambda: self.metrics.errors.labels("trace").inc())
        self._slots = asyncio.Semaphore(self.settings.max_concurrency)
        self._recent: OrderedDict[str, _Remembered] = OrderedDict()
        self._feedback_lock = asyncio.Lock()

    def remember(self, rid: str, item: _Remembered) -> None:
        self._recent[rid] = item
        while len(self._recent) > self.settings.remember:
            self._recent.popitem(last=False)


# --------------------------------------------------------------------------- the app
def create_app(gw: Gateway) -> Any:
    """The FastAPI app of a :class:`Gateway`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(title="lab RAG gateway", docs_url=None, redoc_url=None, openapi_url=None)
    m = gw.metrics
    s = gw.settings

    def error(status: int, message: str, kind: str, route: str) -> JSONResponse:
        m.requests.labels(route, str(status)).inc()
        m.errors.labels(kind).inc()
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{loc}: {e.get('msg')}")
        if any("JSON decode error" in p or "json_invalid" in p for p in problems):
            return error(400, "the body is not valid JSON: " + "; ".join(problems), "bad_json", request.url.path)
        return error(422, "invalid request: " + "; ".join(problems), "invalid_request", request.url.path)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if path.startswith("/v1/"):
            if s.api_key:
                got = request.headers.get("authorization", "")
                if not hmac.compare_digest(got.encode(), f"Bearer {s.api_key}".encode()):
                    return error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                 "unauthorized", path)
            if request.method == "POST":
                size = request.headers.get("content-length")
                if size is not None and size.isdigit() and int(size) > s.max_body_bytes:
                    return error(413, f"body of {size} bytes is over the limit of {s.max_body_bytes}",
                                 "too_large", path)
                body = await request.body()
                if len(body) > s.max_body_bytes:
                    return error(413, f"body of {len(body)} bytes is over the limit of {s.max_body_bytes}",
                                 "too_large", path)
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return error(400, f"the body is not UTF-8 (byte {exc.start}): send UTF-8 JSON",
                                 "bad_encoding", path)
        try:
            return await call_next(request)
        except Exception as exc:  # noqa: BLE001 (counted and answered, never a dropped connection)
            return error(500, f"internal error ({type(exc).__name__})", f"internal:{type(exc).__name__}", path)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        up = await gw.upstream.ready()
        body = {"index": gw.rag.retriever.count if hasattr(gw.rag.retriever, "count") else None,
                "upstream": gw.upstream.name, "upstream_ready": up, "fallback": getattr(gw.fallback, "name", None)}
        return JSONResponse(body, status_code=200 if up else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    async def playground() -> str:
        from lab.serve.playground import PAGE

        return PAGE

    @app.post("/v1/feedback")
    async def feedback(req: FeedbackRequest) -> Response:
        item = gw._recent.get(req.response_id)
        if item is None:
            return error(404, f"response_id {req.response_id!r} is unknown (or too old: the gateway keeps the "
                         f"last {s.remember} responses)", "unknown_response", "/v1/feedback")
        rec = {"question": item.question, "answer": item.answer, "rating": req.rating, "contexts": item.contexts,
               "response_id": req.response_id, "comment": req.comment, "ts": time.time(), "trace_id": item.trace_id,
               "bundle": gw.rag.bundle.get("provenance", {}).get("bundle_id")}
        async with gw._feedback_lock:
            await asyncio.to_thread(_append_line, s.feedback_path, rec)
            if s.mlflow_feedback:
                await asyncio.to_thread(_log_feedback_mlflow, rec)
        await asyncio.to_thread(gw.tracer.feedback, item.trace_id, req.rating, req.comment)
        m.feedback.labels(req.rating).inc()
        m.requests.labels("/v1/feedback", "200").inc()
        return JSONResponse({"stored": True, "response_id": req.response_id})

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest) -> Response:
        route = "/v1/chat/completions"
        t0 = time.perf_counter()
        users = [msg for msg in req.messages if msg.role == "user"]
        if not users or not users[-1].content.strip():
            return error(422, "messages: the last user message must be non-empty text (the question)",
                         "invalid_request", route)
        question = users[-1].content
        history = [msg.model_dump() for msg in req.messages[:-1] if msg.role != "system"]
        if req.messages[-1].role != "user":
            return error(422, "messages: the last message must be the user's question", "invalid_request", route)
        tr = gw.tracer
        root = tr.start("chat", "CHAIN", inputs={"question": question, "k": req.k, "stream": req.stream})
        if gw.policy is not None:
            span = tr.start("guardrails.input", "GUARDRAIL", inputs={"text": question}, parent=root)
            checked = await asyncio.to_thread(gw.policy.apply, question, "input")
            tr.end(span, outputs=checked.to_dict())
            if not checked.allowed:
                return _complete(gw, req, route, t0, question, checked.text, [], [], blocked=True, span=root)
            question = checked.text
        t_r = time.perf_counter()
        span = tr.start("retrieval", "RETRIEVER", inputs={"query": question, "k": req.k or gw.rag.k}, parent=root)
        hits = (await asyncio.to_thread(gw.rag.search, [question], req.k))[0]
        m.retrieval.observe(time.perf_counter() - t_r)
        tr.end(span, outputs=[{"id": d, "score": float(sc)} for d, sc in hits])
        sources = [{"id": d, "score": float(sc), "title": gw.rag.passages[d]["title"],
                    "text": gw.rag.passages[d]["text"]} for d, sc in hits]
        msgs = gw.rag.messages(question, hits, req.topic, history)
        max_tokens = req.max_tokens or s.default_max_tokens
        contexts = [x["text"] for x in sources]
        # output checks need the whole answer: with output rules a stream is sent after them, in one chunk
        if req.stream and (gw.policy is None or not gw.policy.rules["output"]):
            return StreamingResponse(_stream(gw, req, route, t0, question, msgs, max_tokens, sources, contexts, root),
                                     media_type="text/event-stream")
        span = tr.start("generation", "LLM", inputs={"messages": msgs, "max_tokens": max_tokens}, parent=root)
        try:
            text, usage, source = await _generate(gw, msgs, max_tokens, req.temperature)
        except UpstreamError as exc:
            tr.end(span, error=str(exc))
            tr.end(root, error=str(exc))
            return error(502, f"upstream failed and no fallback is configured ({exc.kind})", f"upstream:{exc.kind}",
                         route)
        except TimeoutError:
            tr.end(span, error="timeout")
            tr.end(root, error="timeout")
            return error(504, f"no answer within {s.request_timeout_s:.0f} s", "timeout", route)
        tr.end(span, outputs=text, attributes={"generated_by": source, **usage})
        if gw.policy is not None:
            span = tr.start("guardrails.output", "GUARDRAIL", inputs={"text": text}, parent=root)
            out = await asyncio.to_thread(gw.policy.apply, text, "output", context=contexts)
            tr.end(span, outputs=out.to_dict())
            text = out.text
        return _complete(gw, req, route, t0, question, text, sources, contexts, usage=usage, source=source,
                         stream=req.stream, span=root)

    return app


def _complete(gw: Gateway, req: ChatRequest, route: str, t0: float, question: str, text: str,
              sources: list[dict], contexts: list[str], *, usage: dict | None = None, source: str = "",
              blocked: bool = False, stream: bool = False, span: Any = None) -> Any:
    from fastapi.responses import JSONResponse, StreamingResponse

    from lab.serve.tracing import trace_id

    rid = f"chatcmpl-{uuid.uuid4().hex}"
    tid = trace_id(span)
    gw.tracer.end(span, outputs={"answer": text, "sources": [x["id"] for x in sources]},
                  attributes={"response_id": rid, "blocked": blocked})
    gw.remember(rid, _Remembered(question, text, contexts, sources, tid))
    gw.metrics.requests.labels(route, "200").inc()
    gw.metrics.duration.observe(time.perf_counter() - t0)
    usage = usage or {"prompt_tokens": 0, "completion_tokens": 0}
    usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
    body = {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": req.model or "lab",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "content_filter" if blocked else "stop"}],
            "usage": usage, "sources": sources, "lab": {"generated_by": source, "blocked": blocked, "trace_id": tid}}
    if not stream:
        return JSONResponse(body)

    async def one() -> Any:
        chunk = {"id": rid, "object": "chat.completion.chunk", "created": body["created"], "model": body["model"],
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                              "finish_reason": body["choices"][0]["finish_reason"]}],
                 "usage": usage, "sources": sources, "lab": body["lab"]}
        yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(one(), media_type="text/event-stream")


async def _generate(gw: Gateway, msgs: list[dict], max_tokens: int, temperature: float
                    ) -> tuple[str, dict[str, int], str]:
    parts: list[str] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    source = ""
    t0 = time.perf_counter()
    first: float | None = None

    async def run() -> None:
        nonlocal source, first
        async for src, d in _deltas(gw, msgs, max_tokens, temperature):
            source = src
            if d.text and first is None:
                first = time.perf_counter()
            parts.append(d.text)
            if d.prompt_tokens is not None:
                usage["prompt_tokens"] = d.prompt_tokens
            if d.completion_tokens is not None:
                usage["completion_tokens"] = d.completion_tokens

    await asyncio.wait_for(run(), gw.settings.request_timeout_s)
    _observe_tokens(gw, t0, first, usage)
    return "".join(parts), usage, source


async def _deltas(gw: Gateway, msgs: list[dict], max_tokens: int, temperature: float) -> Any:
    m = gw.metrics
    m.queue_depth.inc()
    async with gw._slots:
        m.queue_depth.dec()
        m.in_flight.inc()
        try:
            async for pair in generate_with_fallback(
                    gw.upstream, gw.fallback, msgs, max_tokens=max_tokens, temperature=temperature,
                    retries=gw.settings.retries, backoff_s=gw.settings.backoff_s,
                    on_retry=lambda kind: m.retries.inc(),
                    on_fallback=lambda kind: m.fallbacks.labels(kind).inc()):
                yield pair
        finally:
            m.in_flight.dec()


def _observe_tokens(gw: Gateway, t0: float, first: float | None, usage: dict[str, int]) -> None:
    m = gw.metrics
    end = time.perf_counter()
    if first is not None:
        m.ttft.observe(first - t0)
        if usage["completion_tokens"] > 1:
            m.tpot.observe((end - first) / (usage["completion_tokens"] - 1))
    m.tokens.labels("input").observe(usage["prompt_tokens"])
    m.tokens.labels("output").observe(usage["completion_tokens"])


async def _stream(gw: Gateway, req: ChatRequest, route: str, t0: float, question: str, msgs: list[dict],
                  max_tokens: int, sources: list[dict], contexts: list[str], root: Any = None) -> Any:
    from lab.serve.tracing import trace_id

    tr = gw.tracer
    span = tr.start("generation", "LLM", inputs={"messages": msgs, "max_tokens": max_tokens}, parent=root)
    rid = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    model = req.model or "lab"
    parts: list[str] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    first: float | None = None
    source = ""

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    deadline = time.perf_counter() + gw.settings.request_timeout_s
    try:
        gen = _deltas(gw, msgs, max_tokens, req.temperature)
        while True:
            try:
                src, d = await asyncio.wait_for(gen.__anext__(), max(0.01, deadline - time.perf_counter()))
            except StopAsyncIteration:
                break
            source = src
            if d.prompt_tokens is not None:
                usage["prompt_tokens"] = d.prompt_tokens
            if d.completion_tokens is not None:
                usage["completion_tokens"] = d.completion_tokens
            if d.text:
                if first is None:
                    first = time.perf_counter()
                parts.append(d.text)
                yield chunk({"role": "assistant", "content": d.text} if len(parts) == 1 else {"content": d.text})
    except (UpstreamError, TimeoutError) as exc:
        kind = exc.kind if isinstance(exc, UpstreamError) else "timeout"
        gw.metrics.errors.labels(f"upstream:{kind}").inc()
        gw.metrics.requests.labels(route, "502").inc()
        tr.end(span, error=str(exc) or kind)
        tr.end(root, error=str(exc) or kind)
        yield f"data: {json.dumps({'error': {'message': f'upstream failed ({kind})', 'type': kind}})}\n\n"
        yield "data: [DONE]\n\n"
        return
    _observe_tokens(gw, t0, first, usage)
    text = "".join(parts)
    tr.end(span, outputs=text, attributes={"generated_by": source, **usage})
    tr.end(root, outputs={"answer": text, "sources": [x["id"] for x in sources]}, attributes={"response_id": rid})
    gw.remember(rid, _Remembered(question, text, contexts, sources, trace_id(root)))
    gw.metrics.requests.labels(route, "200").inc()
    gw.metrics.duration.observe(time.perf_counter() - t0)
    usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
    yield chunk({}, "stop", usage=usage, sources=sources,
                lab={"generated_by": source, "blocked": False, "trace_id": trace_id(root)})
    yield "data: [DONE]\n\n"


def _append_line(path: Path, rec: dict[str, Any]) -> None:
    """Append one JSON line and fsync: feedback already acknowledged is never lost."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _log_feedback_mlflow(rec: dict[str, Any]) -> None:
    """Feedback lands in ONE ``gateway feedback`` run of the project's tracking store (tag
    ``lab.kind=feedback``), as rows of its ``feedback.json`` table (``log_table`` appends) and the
    running counts ``feedback_up`` / ``feedback_down``. Client API only: safe from worker threads."""
    import mlflow

    from lab import tracking

    tracking.setup()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("lab")
    found = client.search_runs([exp.experiment_id], filter_string="tags.`lab.kind` = 'feedback'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = client.create_run(exp.experiment_id, run_name="gateway feedback",
                                   tags={"lab.kind": "feedback"}).info.run_id
    row = {k: [json.dumps(v) if isinstance(v, list) else v] for k, v in rec.items()}
    client.log_table(run_id, row, artifact_file="feedback.json")
    key = f"feedback_{rec['rating']}"
    n = len(client.get_metric_history(run_id, key))
    client.log_metric(run_id, key, n + 1, step=n + 1)
