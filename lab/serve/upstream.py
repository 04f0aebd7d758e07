"""What generates behind the gateway.

:class:`OpenAIUpstream` streams ``/v1/chat/completions`` of an OpenAI-compatible server (vLLM's
server, which ``lab serve`` starts, or any endpoint) over httpx; :class:`BackendUpstream` runs a
lab.generate backend in process (the fallback when vLLM is down, and the transformers baseline).
:class:`MessageUpstream` answers a fixed message. :func:`generate_with_fallback` gives bounded
retries with backoff before the first token, then the fallback, and counts both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class UpstreamError(Exception):
    """The upstream failed (connection, timeout, HTTP 5xx, a broken stream); ``kind`` names which."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass
class Delta:
    """A piece of the answer; the last one of a stream may carry token usage."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Upstream(Protocol):
    name: str

    def stream(self, messages: Sequence[dict], *, max_tokens: int, temperature: float,
               stop: Sequence[str] = ()) -> AsyncIterator[Delta]: ...

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...


class OpenAIUpstream:
    """An OpenAI-compatible chat server, streamed (``stream_options.include_usage`` for token counts)."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0,
                 connect_timeout_s: float = 3.0) -> None:
        import httpx

        self.name = f"openai:{model}"
        self.base_url, self.model = base_url.rstrip("/"), model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                                        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))

    async def stream(self, messages: Sequence[dict], *, max_tokens: int, temperature: float,
                     stop: Sequence[str] = ()) -> AsyncIterator[Delta]:
        import httpx

        body = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "stream": True, "stream_options": {"include_usage": True},
                **({"stop": list(stop)} if stop else {})}
        try:
            async with self.client.stream("POST", "/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    text = (await resp.aread()).decode("utf-8", "replace")[:300]
                    raise UpstreamError("http_5xx" if resp.status_code >= 500 else "http_4xx",
                                        f"{resp.status_code} {text}")
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                    except json.JSONDecodeError:
                        raise UpstreamError("bad_stream", f"not JSON: {data[:100]!r}") from None
                    usage = chunk.get("usage") or {}
                    text = "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or [])
                    if text or usage:
                        yield Delta(text, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", str(exc) or type(exc).__name__) from None
        except httpx.HTTPError as exc:
            raise UpstreamError("connection", str(exc) or type(exc).__name__) from None

    async def ready(self) -> bool:
        import httpx

        try:
            resp = await self.client.get("/models", timeout=2.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def aclose(self) -> None:
        await self.client.aclose()


class BackendUpstream:
    """A lab.generate backend in process (one answer, one delta), run in a worker thread; one
    generation at a time (the backends are not thread-safe)."""

    def __init__(self, backend: Any, name: str | None = None) -> None:
        self.backend = backend
        self.name = name or f"backend:{getattr(backend, 'name', type(backend).__name__)}"
        self._lock = asyncio.Lock()

    async def stream(self, messages: Sequence[dict], *, max_tokens: int, temperature: float,
                     stop: Sequence[str] = ()) -> AsyncIterator[Delta]:
        from lab.generate.base import GenParams

        params = GenParams(max_new_tokens=max_tokens, temperature=temperature, seed=0, stop=tuple(stop))
        async with self._lock:
            try:
                gen = (await asyncio.to_thread(self.backend.generate, [list(messages)], params))[0]
            except Exception as exc:  # noqa: BLE001 (any backend failure is an upstream failure)
                raise UpstreamError("backend", f"{type(exc).__name__}: {exc}") from None
        yield Delta(gen.text, gen.tokens_in, gen.tokens_out)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


class MessageUpstream:
    """A fixed reply (the configured fallback message)."""

    def __init__(self, message: str) -> None:
        self.name, self.message = "message", message

    async def stream(self, messages: Sequence[dict], *, max_tokens: int, temperature: float,
                     stop: Sequence[str] = ()) -> AsyncIterator[Delta]:
        yield Delta(self.message, 0, 0)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


async def generate_with_fallback(primary: Upstream, fallback: Upstream | None, messages: Sequence[dict], *,
                                 max_tokens: int, temperature: float, stop: Sequence[str] = (),
                                 retries: int = 2, backoff_s: float = 0.2,
                                 on_retry: Callable[[str], None] | None = None,
                                 on_fallback: Callable[[str], None] | None = None
                                 ) -> AsyncIterator[tuple[str, Delta]]:
    """``(source, delta)`` pairs: from ``primary``, retried up to ``retries`` times while nothing has
    been sent yet; then from ``fallback``. A failure after the first token cannot be retried
    invisibly (the client has part of an answer): it is raised. Without a fallback the last error is
    raised. ``stop``: the bundle's stop strings (``generation.stop``: the answers were evaluated cut
    there), passed to both."""
    last: UpstreamError | None = None
    for attempt in range(retries + 1):
        sent = False
        try:
            async for d in primary.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop):
                sent = True
                yield primary.name, d
            return
        except UpstreamError as exc:
            if sent:
                raise
            last = exc
            if attempt < retries:
                if on_retry:
                    on_retry(exc.kind)
                await asyncio.sleep(backoff_s * 2 ** attempt)
    assert last is not None
    if fallback is None:
        raise last
    if on_fallback:
        on_fallback(last.kind)
    async for d in fallback.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop):
        yield fallback.name, d
