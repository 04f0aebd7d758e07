"""OpenAI-compatible endpoints: ``openai`` (any such API) and ``vllm-server`` (vLLM's extra fields).

Chat messages go to ``/chat/completions``, raw strings to ``/completions``; ``concurrency``
requests run at once on a thread pool. With ``stream`` (default) each answer is streamed so that
time to first token (the first non-empty content delta) is measured; token counts come from the
server's ``usage`` (``stream_options.include_usage``), and are 0 when a server sends none.

Structured output:

- ``json_schema``: ``response_format={"type": "json_schema", ..., "strict": True}`` on chat for both;
  on ``/completions`` ``vllm-server`` sends ``structured_outputs.json``, ``openai`` the same
  ``response_format`` in the body (servers that know it honour it).
- ``choices``: ``vllm-server`` sends ``structured_outputs.choice`` (exact); ``openai`` emulates it
  with a JSON schema ``{"answer": {"enum": [...]}}`` and parses the reply. A reply that is none of
  the choices is a :class:`GenerationError` carrying the raw text.

vLLM 0.32 silently ignores the old ``guided_json``/``guided_choice`` fields, so they are never sent.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab.errors import ConfigError
from lab.generate.base import (
    BACKENDS,
    Generation,
    GenerationError,
    GenParams,
    Prompt,
    check_supported,
    is_chat,
    truncate_at_stop,
)

log = logging.getLogger(__name__)

VLLM_START = "python -m vllm.entrypoints.openai.api_server --model DIR --host 127.0.0.1 --port 8000"


def choice_schema(choices: Sequence[str]) -> dict[str, Any]:
    """The JSON schema that emulates a choice (strict mode wants an object at the root)."""
    return {"type": "object", "properties": {"answer": {"type": "string", "enum": list(choices)}},
            "required": ["answer"], "additionalProperties": False}


def _response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


@BACKENDS.register("openai")
class OpenAIBackend:
    """Any OpenAI-compatible endpoint through the ``openai`` client.

    Parameters
    ----------
    model : str
        The served model name, or a spec ``"http://host:port/v1#name"`` that also gives the URL.
    base_url : str or None
        ``http://host:port/v1``; required unless ``model`` carries it.
    api_key_env : str or None
        Environment variable holding the API key (keys never go in configs). Default
        ``OPENAI_API_KEY`` (``vllm-server``: ``VLLM_API_KEY``, then ``OPENAI_API_KEY``); when unset
        the key ``"EMPTY"`` is sent, which local servers accept.
    concurrency : int
        Requests in flight at once.
    stream : bool
        Stream answers to measure time to first token.
    timeout_s : float
        Per-request timeout.
    max_retries : int
        The client's retries (with backoff) on connection errors, 429 and 5xx.
    """

    name = "openai"
    supports = frozenset({"json_schema", "choice", "stream", "seed"})
    _key_envs: tuple[str, ...] = ("OPENAI_API_KEY",)

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 4, stream: bool = True, timeout_s: float = 600.0,
                 max_retries: int = 2) -> None:
        from openai import OpenAI

        if model.startswith(("http://", "https://")):
            from lab.models import resolve

            ref = resolve(model)
            if base_url is not None and base_url.rstrip("/") != ref.base_url:
                raise ConfigError(f"{self.name} backend: base_url {base_url!r} contradicts the model "
                                  f"spec {model!r}")
            base_url, model = ref.base_url, str(ref.model)
        if not base_url:
            raise ConfigError(f"{self.name} backend needs base_url (e.g. http://127.0.0.1:8000/v1) or "
                              f"a model spec 'http://host:port/v1#served-model', got model {model!r}")
        if concurrency < 1:
            raise ConfigError(f"{self.name} backend: concurrency must be >= 1, got {concurrency}")
        envs = (api_key_env,) if api_key_env else self._key_envs
        api_key = next((os.environ[e] for e in envs if os.environ.get(e)), "EMPTY")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.concurrency, self.stream = concurrency, stream
        if not stream:
            self.supports = self.supports - {"stream"}
        self.client = OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout_s,
                             max_retries=max_retries)

    # ------------------------------------------------------------------ requests
    def structured(self, params: GenParams, chat: bool) -> dict[str, Any]:
        """Request fields for ``json_schema`` / ``choices`` (plain OpenAI API: JSON schema only)."""
        schema = params.json_schema if params.json_schema is not None else (
            choice_schema(params.choices) if params.choices is not None else None)
        if schema is None:
            return {}
        # The client's completions.create has no response_format; servers that know it read it from the body.
        return {"response_format": _response_format(schema)} if chat else \
            {"extra_body": {"response_format": _response_format(schema)}}

    def parse_choice(self, text: str, params: GenParams) -> str:
        """The choice inside an emulated-choice reply; GenerationError with the raw text when absent."""
        try:
            answer = json.loads(text)["answer"]
        except (ValueError, TypeError, KeyError):
            answer = text.strip()  # a server that ignored the schema may still have answered plainly
        if answer not in (params.choices or ()):
            raise GenerationError(f"{self.name} backend ({self.base_url}, model {self.model!r}): the "
                                  f"reply is not one of the choices {list(params.choices or ())}: {text[:200]!r}")
        return answer

    def _request(self, prompt: Prompt, params: GenParams) -> tuple[bool, dict[str, Any]]:
        chat = is_chat(prompt)
        kw: dict[str, Any] = {"model": self.model, "max_tokens": params.max_new_tokens,
                              "temperature": float(params.temperature), "top_p": float(params.top_p),
                              "seed": params.seed}
        if params.stop:
            kw["stop"] = list(params.stop)
        if chat:
            kw["messages"] = [dict(m) for m in prompt]
        else:
            kw["prompt"] = prompt
        kw.update(self.structured(params, chat))
        return chat, kw

    def _one(self, prompt: Prompt, params: GenParams) -> Generation:
        import openai

        chat, kw = self._request(prompt, params)
        create = self.client.chat.completions.create if chat else self.client.completions.create
        url = f"{self.base_url}/{'chat/completions' if chat else 'completions'}"
        where = f"{url} (model {self.model!r})"
        t0 = time.perf_counter()
        ttft = None
        try:
            if self.stream:
                parts, finish, usage = [], None, None
                for chunk in create(**kw, stream=True, stream_options={"include_usage": True}):
                    usage = chunk.usage or usage
                    for c in chunk.choices:
                        piece = (c.delta.content if chat else c.text) or ""
                        if piece and ttft is None:
                            ttft = time.perf_counter() - t0
                        parts.append(piece)
                        finish = c.finish_reason or finish
                text = "".join(parts)
            else:
                resp = create(**kw)
                c = resp.choices[0]
                text = (c.message.content if chat else c.text) or ""
                finish, usage = c.finish_reason, resp.usage
        except openai.APITimeoutError as e:
            raise GenerationError(f"{where} timed out: {e}") from e
        except openai.APIConnectionError as e:
            raise GenerationError(
                f"The OpenAI-compatible server at {self.base_url} is not reachable ({where}): {e}. Is it "
                f"running? Start vLLM with: {VLLM_START}") from e
        except openai.APIStatusError as e:
            raise GenerationError(f"{where} answered HTTP {e.status_code}: {e.message}") from e
        except openai.OpenAIError as e:
            raise GenerationError(f"{where} failed: {type(e).__name__}: {e}") from e
        latency = time.perf_counter() - t0
        text, cut = truncate_at_stop(text, params.stop)
        if params.choices is not None:
            text = self.parse_choice(text, params)
        if usage is None:
            log.warning("%s sent no token usage; tokens_in/tokens_out are 0", where)
        return Generation(text=text, tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
                          tokens_out=getattr(usage, "completion_tokens", 0) or 0, latency_s=latency,
                          ttft_s=ttft, finish_reason=finish or ("stop" if cut else "unknown"),
                          backend=self.name)

    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Generation]:
        """One :class:`Generation` per prompt, in order; the first failure raises (pending ones are cancelled)."""
        check_supported(self, params)
        for p in prompts:
            is_chat(p)  # fail on a malformed prompt before sending anything
        if len(prompts) <= 1 or self.concurrency == 1:
            return [self._one(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            futures = [pool.submit(self._one, p, params) for p in prompts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def close(self) -> None:
        self.client.close()


@BACKENDS.register("vllm-server")
class VLLMServerBackend(OpenAIBackend):
    """A vLLM OpenAI-compatible server: exact choices and JSON through vLLM's ``structured_outputs``.

    Same parameters as :class:`OpenAIBackend`. :meth:`metrics` scrapes the server's ``/metrics``.
    """

    name = "vllm-server"
    supports = frozenset({"json_schema", "choice", "stream", "seed"})
    _key_envs = ("VLLM_API_KEY", "OPENAI_API_KEY")

    def structured(self, params: GenParams, chat: bool) -> dict[str, Any]:
        if params.choices is not None:
            return {"extra_body": {"structured_outputs": {"choice": list(params.choices)}}}
        if params.json_schema is not None:
            if chat:
                return {"response_format": _response_format(params.json_schema)}
            return {"extra_body": {"structured_outputs": {"json": params.json_schema}}}
        return {}

    def parse_choice(self, text: str, params: GenParams) -> str:
        # vLLM constrains the tokens to a choice; anything else means the server ignored the field.
        if text not in (params.choices or ()):
            raise GenerationError(f"{self.name} backend ({self.base_url}, model {self.model!r}): reply "
                                  f"{text[:200]!r} is none of the choices {list(params.choices or ())}; does "
                                  f"the server support structured_outputs (vLLM >= 0.12)?")
        return text

    def metrics(self) -> dict[str, Any]:
        """This server's Prometheus metrics, summarised by :func:`lab.generate.vllm_metrics.server_metrics`."""
        from lab.generate.vllm_metrics import server_metrics

        return server_metrics(self.base_url)
