"""A deterministic fake of an OpenAI-compatible (vLLM-like) server, for network-free tests.

Standard library only: ``http.server`` on 127.0.0.1, port 0, in a daemon thread.

- ``POST /v1/chat/completions`` and ``/v1/completions``, with and without ``stream`` (SSE
  ``data: {...}`` lines, a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``).
- Output: words drawn from a fixed vocabulary by a RNG seeded from the prompt (plus ``seed`` and
  ``temperature`` when sampling); one word = one token. ``max_tokens`` and ``stop`` are honoured.
- Structured output: ``structured_outputs.choice`` / ``.json`` (vLLM) and ``response_format``
  ``json_schema`` / ``json_object``; ``guided_json`` is ignored, as vLLM 0.32 does.
- ``fail_status = 500`` makes every POST fail; ``ignore_structured = True`` makes it answer free
  text whatever was asked; an unknown model is a 404; ``delay_s`` sleeps per streamed chunk.
- ``GET /metrics`` (Prometheus text with vLLM's names, counting what was served), ``/v1/models``,
  ``/health``. ``requests`` records every (path, body); ``max_in_flight`` the peak concurrency.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

VOCAB = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
         "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
         "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "one", "two", "three", "four", "five", "six")


def schema_instance(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value valid under a (simple) JSON schema."""
    if "enum" in schema:
        return schema["enum"][rng.randrange(len(schema["enum"]))]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return schema_instance(schema[key][0], rng)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {k: schema_instance(v, rng) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [schema_instance(schema.get("items", {"type": "string"}), rng)
                for _ in range(max(1, schema.get("minItems", 1)))]
    return {"string": lambda: rng.choice(VOCAB), "integer": lambda: rng.randint(0, 100),
            "number": lambda: round(rng.random() * 100, 3), "boolean": lambda: rng.random() < 0.5,
            "null": lambda: None}[kind]()


def _count_tokens(text: str) -> int:
    return len(text.split())


class FakeOpenAIServer:
    """Context manager: ``with FakeOpenAIServer() as srv: OpenAI(base_url=srv.base_url, ...)``."""

    def __init__(self, model: str = "fake-model", *, delay_s: float = 0.0) -> None:
        self.model, self.delay_s = model, delay_s
        self.fail_status: int | None = None
        self.ignore_structured = False
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self.served = {"requests": 0, "prompt_tokens": 0, "generation_tokens": 0}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the model
    def answer(self, path: str, body: dict[str, Any]) -> tuple[str, int, int, str]:
        """(text, prompt_tokens, completion_tokens, finish_reason) for a request body."""
        chat = path.endswith("/chat/completions")
        if chat:
            prompt_text = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in body["messages"])
            prompt_tokens = sum(_count_tokens(str(m.get("content", ""))) + 3 for m in body["messages"])
        else:
            prompt_text = body["prompt"]
            prompt_tokens = max(1, _count_tokens(prompt_text))
        temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
        key = prompt_text if temperature == 0 else f"{prompt_text}|{body.get('seed')}|{temperature}"
        rng = random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)

        structured = body.get("structured_outputs") or {}
        fmt = body.get("response_format") or {}
        if not self.ignore_structured and structured.get("choice"):
            text = structured["choice"][rng.randrange(len(structured["choice"]))]
            return text, prompt_tokens, max(1, _count_tokens(text)), "stop"
        schema = None
        if not self.ignore_structured:
            if structured.get("json") is not None:
                schema = structured["json"]
                schema = json.loads(schema) if isinstance(schema, str) else schema
            elif fmt.get("type") == "json_schema":
                schema = fmt["json_schema"]["schema"]
            elif fmt.get("type") == "json_object":
                schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
        if schema is not None:
            text = json.dumps(schema_instance(schema, rng))
            return text, prompt_tokens, max(1, _count_tokens(text)), "stop"

        words = [rng.choice(VOCAB) for _ in range(rng.randint(8, 24))]
        finish = "stop"
        if len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        text = " ".join(words)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
        if cuts:
            cut = min(cuts)
            # tokens generated: the words up to and including the one where the stop string begins
            n = min(len(words), _count_tokens(text[:cut + 1]))
            return text[:cut], prompt_tokens, max(1, n), "stop"
        return text, prompt_tokens, len(words), finish

    def metrics_text(self) -> str:
        with self._lock:
            n, p, g = self.served["requests"], self.served["prompt_tokens"], self.served["generation_tokens"]
        lab = f'model_name="{self.model}",engine="0"'
        return "\n".join([
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{lab}}} 0.0",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{lab}}} 0.0",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{lab}}} 0.25",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{lab}}} {float(p)}",
            f"vllm:prompt_tokens_created{{{lab}}} 1.7e9",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{lab}}} {float(g)}",
            "# TYPE vllm:time_to_first_token_seconds histogram",
            f'vllm:time_to_first_token_seconds_bucket{{{lab},le="0.1"}} {float(n)}',
            f'vllm:time_to_first_token_seconds_bucket{{{lab},le="+Inf"}} {float(n)}',
            f"vllm:time_to_first_token_seconds_count{{{lab}}} {float(n)}",
            f"vllm:time_to_first_token_seconds_sum{{{lab}}} {0.01 * n}",
            "",
        ])

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str) -> None:
                self._json(status, {"error": {"message": message, "type": "fake_error", "code": status}})

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    data = server.metrics_text().encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif self.path == "/health":
                    self._json(200, {})
                elif self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._error(404, f"no route {self.path}")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.requests.append((self.path, body))
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    self._post(body)
                finally:
                    with server._lock:
                        server._in_flight -= 1

            def _post(self, body: dict[str, Any]) -> None:
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    return self._error(404, f"no route {self.path}")
                if server.fail_status:
                    return self._error(server.fail_status, "fake server told to fail")
                if body.get("model") != server.model:
                    return self._error(404, f"The model `{body.get('model')}` does not exist.")
                chat = self.path == "/v1/chat/completions"
                text, n_in, n_out, finish = server.answer(self.path, body)
                with server._lock:
                    server.served["requests"] += 1
                    server.served["prompt_tokens"] += n_in
                    server.served["generation_tokens"] += n_out
                usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
                head = {"id": "fake-1", "created": int(time.time()), "model": server.model,
                        "object": "chat.completion" if chat else "text_completion"}
                if not body.get("stream"):
                    choice = ({"index": 0, "message": {"role": "assistant", "content": text}} if chat
                              else {"index": 0, "text": text, "logprobs": None})
                    return self._json(200, {**head, "choices": [{**choice, "finish_reason": finish}],
                                            "usage": usage})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                head["object"] = "chat.completion.chunk" if chat else "text_completion"

                def send(obj: Any) -> None:
                    self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
                                     + b"\n\n")
                    self.wfile.flush()

                def choice(piece: str | None, fin: str | None) -> dict[str, Any]:
                    if chat:
                        delta = {} if piece is None else {"content": piece}
                        return {"index": 0, "delta": delta, "finish_reason": fin}
                    return {"index": 0, "text": piece or "", "finish_reason": fin, "logprobs": None}

                if chat:
                    send({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]})
                words = text.split(" ")
                for i, w in enumerate(words):
                    time.sleep(server.delay_s)
                    send({**head, "choices": [choice(w if i == 0 else " " + w, None)]})
                send({**head, "choices": [choice(None, finish)]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    send({**head, "choices": [], "usage": usage})
                send(b"[DONE]")
                return None

        return Handler
