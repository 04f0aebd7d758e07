"""The RAG gateway's HTTP face: thin FastAPI routes over the chat service (:mod:`lab.serve.chat`),
an OpenAI-compatible ``/v1/chat/completions`` that answers with the bundle's retrieval, the study's
prompt and the upstream (vLLM), with the answer's sources.

Routes: ``POST /v1/chat/completions`` (``stream: true`` gives server-sent events, the sources in
the last chunk; with output guardrails the text is released as it passes them and late verdicts
come in the last chunk's ``lab`` field: :mod:`lab.serve.streamguard`), ``POST /v1/feedback``,
``GET /healthz`` (the process lives), ``GET /readyz`` (index loaded and the upstream answers),
``GET /metrics`` (Prometheus), ``GET /`` (playground).

Bad input is a 4xx with a message naming the field (422 from validation, 400 for a body that is not
JSON or not UTF-8, 413 for a body over ``max_body_bytes``, 401 without the key when one is set);
a failing upstream is retried, then answered by the fallback and counted; an unexpected error is
a 500 counted by type (mid-stream: an error event, then ``[DONE]``), never a hung request (every
upstream call has a timeout). The routes count requests, errors and durations; the service counts
what happens inside a turn. An answered response is handed to the online judges after it was sent
(a background task; a stream's after ``[DONE]``); on shutdown they finish their queue (bounded) and stop.

FastAPI + uvicorn: a well-kept ASGI stack with request validation from pydantic models.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lab.serve.chat import (
    RAG,
    Answer,
    ChatError,
    ChatRequest,
    ChatService,
    FeedbackRequest,
    Message,
    Settings,
    Turn,
)

__all__ = ["RAG", "ChatRequest", "ChatService", "FeedbackRequest", "Message", "Settings", "create_app"]

CHAT = "/v1/chat/completions"


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


DONE = "data: [DONE]\n\n"


def create_app(gw: ChatService) -> Any:
    """The FastAPI app of a :class:`~lab.serve.chat.ChatService`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.background import BackgroundTask

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if gw.policy is not None:   # models the checks load on first use: at start-up, not in a request
            await asyncio.to_thread(gw.policy.warm)
        yield
        if gw.online is not None:   # judge what is queued (bounded), then stop the judges' thread
            await asyncio.to_thread(gw.online.close)

    app = FastAPI(title="lab RAG gateway", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    m = gw.metrics
    s = gw.settings

    def error(status: int, message: str, kind: str, route: str) -> JSONResponse:
        m.requests.labels(route, str(status)).inc()
        m.errors.labels(kind).inc()
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    def answered(route: str, t0: float) -> None:
        m.requests.labels(route, "200").inc()
        m.duration.observe(time.perf_counter() - t0)

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
        body, up = await gw.ready()
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
        try:
            await gw.feedback(req)
        except ChatError as exc:
            return error(exc.status, exc.message, exc.kind, "/v1/feedback")
        m.requests.labels("/v1/feedback", "200").inc()
        return JSONResponse({"stored": True, "response_id": req.response_id})

    @app.post(CHAT)
    async def chat(req: ChatRequest) -> Response:
        try:
            turn = gw.start(req, route=CHAT)
            blocked = await gw.prepare(turn)
            if blocked is not None:
                answered(CHAT, turn.t0)
                if req.stream:
                    return StreamingResponse(_one_chunk(blocked), media_type="text/event-stream")
                return JSONResponse(blocked.body())
            if gw.streams(turn):
                return StreamingResponse(_streamed(gw, turn, answered), media_type="text/event-stream")
            answer = await gw.generate(turn)
        except ChatError as exc:
            return error(exc.status, exc.message, exc.kind, CHAT)
        answered(CHAT, turn.t0)

        async def judge_later() -> None:   # a background task: runs once the response is sent
            gw.judge_later(turn, answer, streamed=False)

        return JSONResponse(answer.body(), background=BackgroundTask(judge_later))

    return app


async def _one_chunk(answer: Answer) -> AsyncIterator[str]:
    """A whole answer as one chunk (a streamed request whose input the policy blocked)."""
    yield _sse(answer.chunk())
    yield DONE


async def _streamed(gw: ChatService, turn: Turn, answered: Any) -> AsyncIterator[str]:
    """Server-sent events of a streamed answer: the deltas, then a last chunk with the usage, the
    sources and the ``lab`` field (its ``finish_reason`` ``content_filter`` when the output rules
    withdrew the answer), or an error event when the upstream fails mid-way."""
    m = gw.metrics
    first = True

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        return _sse({"id": turn.id, "object": "chat.completion.chunk", "created": turn.created,
                     "model": turn.request.model or "lab",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    def failed(status: int, kind: str, message: str, type: str) -> list[str]:
        m.errors.labels(kind).inc()
        m.requests.labels(CHAT, str(status)).inc()
        return [_sse({"error": {"message": message, "type": type}}), DONE]

    try:
        async for item in gw.stream(turn):
            if isinstance(item, str):
                yield chunk({"role": "assistant", "content": item} if first else {"content": item})
                first = False
            elif isinstance(item, ChatError):
                for event in failed(item.status, item.kind, item.message, item.type):
                    yield event
                return
            else:
                answered(CHAT, turn.t0)
                yield chunk({}, item.finish_reason, usage=item.usage, sources=item.sources, lab=item.lab())
                yield DONE
                gw.judge_later(turn, item, streamed=True)   # resumed after [DONE] was sent
    except Exception as exc:  # noqa: BLE001 (mid-stream the status is sent: end the stream with an error event)
        name = type(exc).__name__
        for event in failed(500, f"internal:{name}", f"internal error ({name})", "internal"):
            yield event
