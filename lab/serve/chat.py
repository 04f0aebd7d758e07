"""The chat service: guard the input -> retrieve -> guard the passages -> generate -> guard the output, with sources.

Plain Python (no HTTP): :class:`ChatService` takes a :class:`ChatRequest` and returns an
:class:`Answer` (or, streamed, text deltas then the :class:`Answer`); what cannot be answered is a
:class:`ChatError` with the HTTP status the routes (:mod:`lab.serve.gateway`) send. The service
counts what happens inside a turn (retrieval time, queue, tokens, time to first token, retries,
fallbacks, guardrail decisions, feedback); the routes count requests, errors and durations.

With a policy whose ``context`` side has rules, every retrieved passage is checked before the prompt
is built (:meth:`lab.guardrails.policy.Policy.apply_context`): a dropped passage is left out of the
prompt, a neutralised one goes in fenced, and the response's ``sources`` say so — the prompted
passages first, in the prompt's order (source ``i`` is ``[i + 1]``), then the dropped ones; each
passage the policy acted on carries ``guardrail: {action, checks, exceptions, policy}``. Every
decision is counted (``lab_guardrail_decisions_total``; passages by action in
``lab_guardrail_passages_total``; exemptions in ``lab_guardrail_exceptions_total``) and, when
tracing is on, is an ``apply_guardrail`` span (:func:`lab.serve.tracing.guardrail_attributes`).

A streamed answer goes through the output rules as it is generated (:mod:`lab.serve.streamguard`):
the rules that can judge a piece run on the stream behind a held-back window, the ones that need the
whole answer after it, and their late verdicts come with the last chunk (``lab.verdicts``).

With online judges (``Settings.judge_sample``), each answered response, once sent, goes to
:meth:`ChatService.judge_later`; :class:`lab.serve.online_eval.OnlineEvaluator` judges a sample.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.serve.answer import Answer, ChatError, _total  # (what a turn gives: lab.serve.answer)
from lab.serve.feedback import append_line, log_feedback_mlflow
from lab.serve.metrics import GatewayMetrics
from lab.serve.online_eval import OnlineEvaluator, Served
from lab.serve.rag import RAG
from lab.serve.requests import ChatRequest, FeedbackRequest, Message  # noqa: F401  (the request models live there)
from lab.serve.settings import Settings
from lab.serve.stages import StageTimes
from lab.serve.streamguard import GuardedStream
from lab.serve.upstream import Delta, MessageUpstream, Upstream, UpstreamError, generate_with_fallback


@dataclass
class Turn:
    """A question on its way through the service."""

    request: ChatRequest
    question: str
    history: list[dict[str, Any]]
    t0: float
    span: Any = None                     # the trace's root span
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")   # the response id
    created: int = field(default_factory=lambda: int(time.time()))
    sources: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int = 0
    route: str | None = None             # the gateway route it came by (route exceptions match it)
    times: StageTimes = field(default_factory=StageTimes)   # seconds per stage (lab.serve.stages)

    @property
    def contexts(self) -> list[str]:
        """The texts of the passages the prompt holds (a dropped passage is a source, not a context)."""
        return [x["text"] for x in self.sources if x.get("guardrail", {}).get("action") != "drop"]


@dataclass
class _Remembered:
    question: str
    answer: str
    contexts: list[str]
    sources: list[dict[str, Any]]
    trace_id: str | None = None
    created: float = field(default_factory=time.time)


# --------------------------------------------------------------------------- the service
class ChatService:
    """The gateway's state and its one job: RAG, upstreams, guardrail policy, metrics, recent responses."""

    def __init__(self, rag: RAG, upstream: Upstream, *, fallback: Upstream | None = None,
                 settings: Settings | None = None, policy: Any = None,
                 metrics: GatewayMetrics | None = None, judges: Sequence[Any] = ()) -> None:
        self.rag, self.upstream, self.fallback = rag, upstream, fallback
        self.settings = settings or Settings()
        self.metrics = metrics or GatewayMetrics()
        self.policy = policy
        if policy is not None:
            policy.on_decision.append(self._count_decision)
        self.metrics.add_gauges("lab_embedding_store_hit_ratio", "Embedding-store hits / lookups of query "
                                "embeddings since start", rag.embedding_hit_rate)
        from lab.serve.tracing import Tracer

        self.tracer = Tracer(self.settings.trace, on_error=lambda: self.metrics.errors.labels("trace").inc())
        self._slots = asyncio.Semaphore(self.settings.max_concurrency)
        self._recent: OrderedDict[str, _Remembered] = OrderedDict()
        self._feedback_lock = asyncio.Lock()
        s = self.settings
        self.online: OnlineEvaluator | None = None   # online evaluation (lab.serve.online_eval): judges given, rate > 0
        if judges and s.judging:
            self.online = OnlineEvaluator(judges, rate=s.judge_sample, routes=s.judge_sample_routes, seed=s.judge_seed,
                                          queue_size=s.judge_queue, metrics=self.metrics,
                                          land=lambda served, v: self.tracer.assess(served.trace_id, v))

    def remember(self, rid: str, item: _Remembered) -> None:
        self._recent[rid] = item
        while len(self._recent) > self.settings.remember:
            self._recent.popitem(last=False)

    # ---------------------------------------------------------------- a turn, step by step
    def _count_decision(self, stage: str, o: Any) -> None:
        self.metrics.guardrails.labels(o.decision.check, o.action).inc()
        self.metrics.guardrail_seconds.labels(o.decision.check, stage).observe(o.latency_ms / 1000)
        if o.exception is not None:
            self.metrics.guardrail_exceptions.labels(o.exception, o.decision.check, stage).inc()

    def _trace_rules(self, parent: Any, stage: str, outcomes: list[Any],
                     extra: list[dict[str, Any]] | None = None) -> None:
        """One ``apply_guardrail`` span per rule applied, under its side's span, timed as it ran
        (``extra``: more attributes per outcome)."""
        if not self.tracer.enabled or parent is None:
            return
        from lab.serve.tracing import guardrail_attributes

        for i, o in enumerate(outcomes):
            start = o.started_ns or None
            attrs = {**guardrail_attributes(stage, o, self.policy.id), **(extra[i] if extra else {})}
            span = self.tracer.start("apply_guardrail", "GUARDRAIL", parent=parent, start_time_ns=start,
                                     attributes=attrs)
            self.tracer.end(span, end_time_ns=start + int(o.latency_ms * 1e6) if start else None)

    def start(self, req: ChatRequest, route: str | None = None) -> Turn:
        """The question (the last message, a user's) and the history before it; the trace begins.
        ``route``: the gateway path it came by (what route exceptions of the policy match).

        Raises
        ------
        ChatError
            422 when the last message is not a non-empty user message.
        """
        t0 = time.perf_counter()
        users = [msg for msg in req.messages if msg.role == "user"]
        if not users or not users[-1].content.strip():
            raise ChatError(422, "messages: the last user message must be non-empty text (the question)",
                            "invalid_request")
        question = users[-1].content
        history = [msg.model_dump() for msg in req.messages[:-1] if msg.role != "system"]
        if req.messages[-1].role != "user":
            raise ChatError(422, "messages: the last message must be the user's question", "invalid_request")
        span = self.tracer.start("chat", "CHAIN", inputs={"question": question, "k": req.k, "stream": req.stream},
                                 attributes={"lab.bundle_id": self.rag.bundle_id})
        return Turn(req, question, history, t0, span, route=route, times=StageTimes(t0))

    async def prepare(self, turn: Turn) -> Answer | None:
        """Guard the input, retrieve, build the prompt; an :class:`Answer` when the input is blocked."""
        tr, req = self.tracer, turn.request
        if self.policy is not None:
            span = tr.start("guardrails.input", "GUARDRAIL", inputs={"text": turn.question}, parent=turn.span)
            checked = await turn.times.run("input_checks", self.policy.apply, turn.question, "input", route=turn.route)
            self._trace_rules(span, "input", checked.outcomes)
            tr.end(span, outputs=checked.to_dict())
            if not checked.allowed:
                return self._finish(turn, checked.text, blocked=True)
            turn.question = checked.text
        t_r = time.perf_counter()
        span = tr.start("retrieval", "RETRIEVER", inputs={"query": turn.question, "k": req.k or self.rag.k},
                        parent=turn.span)
        hits = (await turn.times.run("retrieval", self.rag.search, [turn.question], req.k))[0]
        self.metrics.retrieval.observe(time.perf_counter() - t_r)
        tr.end(span, outputs=[{"id": d, "score": float(sc)} for d, sc in hits])
        texts = None
        if self.policy is not None and self.policy.rules["context"]:
            hits, texts, turn.sources = await self._guard_context(turn, hits)
        else:
            turn.sources = self.rag.sources(hits)
        t_p = time.perf_counter()
        turn.messages = self.rag.messages(turn.question, hits, req.topic, turn.history, texts=texts)
        turn.times.add("prompt", time.perf_counter() - t_p)
        turn.max_tokens = req.max_tokens or self.settings.default_max_tokens or self.rag.max_new_tokens
        return None

    async def _guard_context(self, turn: Turn, hits: list[tuple[str, float]]
                             ) -> tuple[list[tuple[str, float]], list[str], list[dict[str, Any]]]:
        """The policy's context side over the retrieved passages: the hits and texts to prompt with
        (dropped ones left out, neutralised ones fenced), and the sources (prompted first, then dropped)."""
        tr = self.tracer
        span = tr.start("guardrails.context", "GUARDRAIL", inputs={"passages": [d for d, _ in hits]}, parent=turn.span)
        checked = await turn.times.run("context_checks", self.policy.apply_context,
                                       [self.rag.passages[d]["text"] for d, _ in hits], route=turn.route)
        for p in checked.passages:
            self._trace_rules(span, "context", p.outcomes)
            self.metrics.guardrail_passages.labels(p.action).inc()
        tr.end(span, outputs=checked.to_dict())
        sources = self.rag.sources(hits)
        for src, p in zip(sources, checked.passages, strict=True):
            exempt = [o.exception for o in p.outcomes if o.exception is not None]
            if p.action != "keep" or exempt:
                src["guardrail"] = {"action": p.action, "checks": p.checks, "exceptions": exempt,
                                    "policy": self.policy.id}
        kept = [i for i, p in enumerate(checked.passages) if p.kept]
        dropped = [i for i, p in enumerate(checked.passages) if not p.kept]
        return ([hits[i] for i in kept], [checked.passages[i].text for i in kept],
                [sources[i] for i in kept + dropped])

    def streams(self, turn: Turn) -> bool:
        """Whether the answer is streamed as it is generated (:meth:`stream`; with output rules, through
        :class:`lab.serve.streamguard.GuardedStream`)."""
        return turn.request.stream

    async def generate(self, turn: Turn) -> Answer:
        """The whole answer, its output checked.

        Raises
        ------
        ChatError
            502 when the upstream failed and no fallback answered; 504 past ``request_timeout_s``.
        """
        tr = self.tracer
        span = tr.start("generation", "LLM", inputs={"messages": turn.messages, "max_tokens": turn.max_tokens},
                        parent=turn.span)
        fell: dict[str, str] = {}   # lab.fallback: the upstream failure the fallback answered
        try:
            text, usage, source = await self._generate(turn, fell)
        except UpstreamError as exc:
            tr.end(span, error=str(exc))
            tr.end(turn.span, error=str(exc))
            raise ChatError(502, f"upstream failed and no fallback is configured ({exc.kind})",
                            f"upstream:{exc.kind}") from None
        except TimeoutError:
            tr.end(span, error="timeout")
            tr.end(turn.span, error="timeout")
            raise ChatError(504, f"no answer within {self.settings.request_timeout_s:.0f} s", "timeout") from None
        tr.end(span, outputs=text, attributes={"generated_by": source, **usage, **fell})
        if self.policy is not None:
            span = tr.start("guardrails.output", "GUARDRAIL", inputs={"text": text}, parent=turn.span)
            out = await turn.times.run("output_checks", self.policy.apply, text, "output", context=turn.contexts,
                                       route=turn.route)
            self._trace_rules(span, "output", out.outcomes)
            tr.end(span, outputs=out.to_dict())
            text = out.text
            warnings = [{"check": o.decision.check, "reason": o.decision.reason, "score": o.decision.score,
                         "spans": [asdict(x) for x in o.decision.spans]} for o in out.outcomes if o.action == "warn"]
            answer = self._finish(turn, text, usage=usage, source=source)
            answer.warnings = warnings
            return answer
        return self._finish(turn, text, usage=usage, source=source)

    async def stream(self, turn: Turn) -> AsyncIterator[str | Answer | ChatError]:
        """The answer as it is generated: text deltas, then the :class:`Answer` (with the usage and
        sources), or a :class:`ChatError` (502) when the upstream fails or times out mid-way. With
        output rules the deltas are what :class:`~lab.serve.streamguard.GuardedStream` released: a
        rule that stops the answer ends the stream early, with the policy's fallback message."""
        from lab.serve.tracing import trace_id

        tr = self.tracer
        span = tr.start("generation", "LLM", inputs={"messages": turn.messages, "max_tokens": turn.max_tokens},
                        parent=turn.span)
        guard, gspan = self._guard(turn)
        parts: list[str] = []
        sent: list[str] = []
        source, usage = "", {"prompt_tokens": 0, "completion_tokens": 0}
        first: float | None = None
        deadline, fell = time.perf_counter() + self.settings.request_timeout_s, {}
        try:
            gen = self._deltas(turn, fell)
            while True:
                try:
                    src, d = await asyncio.wait_for(gen.__anext__(), max(0.01, deadline - time.perf_counter()))
                except StopAsyncIteration:
                    break
                source = src
                _add_usage(usage, d)
                if d.text:
                    if first is None:
                        first = turn.times.first_token()
                    parts.append(d.text)
                    out = d.text if guard is None else await guard.feed(d.text)
                    if out:
                        sent.append(out)
                        yield out
                    if guard is not None and guard.stopped:
                        await gen.aclose()   # the answer was withdrawn: stop generating it
                        break
        except (UpstreamError, TimeoutError) as exc:
            kind = exc.kind if isinstance(exc, UpstreamError) else "timeout"
            for s in (gspan, span, turn.span):
                tr.end(s, error=str(exc) or kind)
            yield ChatError(502, f"upstream failed ({kind})", f"upstream:{kind}", type=kind)
            return
        turn.times.generated(first)
        self._observe_tokens(turn.t0, first, usage)
        tr.end(span, outputs="".join(parts), attributes={"generated_by": source, **usage, **fell})
        if guard is not None:
            rest = await guard.finish()
            if rest:
                sent.append(rest)
                yield rest
            self._end_guard(gspan, guard)
        text = "".join(sent)
        blocked = guard is not None and guard.blocked
        tr.end(turn.span, outputs={"answer": text, "sources": [x["id"] for x in turn.sources]},
               attributes={"response_id": turn.id, "blocked": blocked})
        tid = trace_id(turn.span)
        self.remember(turn.id, _Remembered(turn.question, text, turn.contexts, turn.sources, tid))
        answer = Answer(turn.id, turn.request.model or "lab", text, turn.sources, _total(usage), source, blocked,
                        tid, created=turn.created, timings=turn.times.done(self.metrics.stages))
        if guard is not None:
            answer.warnings, answer.correction = guard.warnings, guard.correction
            answer.verdicts = [v.public() for v in guard.verdicts]
        yield answer

    def judge_later(self, turn: Turn, answer: Answer, *, streamed: bool) -> None:
        """Hand an answered response in the sample to the online judges (never waits). Not drawn: a
        response the policy blocked (input, or output withdrawn) and the fallback's canned message
        (not a model's answer). The routes call it once the response is sent (:mod:`lab.serve.gateway`)."""
        if self.online is None or answer.blocked or self._canned(answer) or not self.online.wants(turn.id, turn.route):
            return
        kept = [x for x in turn.sources if x.get("guardrail", {}).get("action") != "drop"]
        self.online.submit(Served(turn.id, answer.trace_id, turn.route, turn.question, answer.text,
                                  tuple(turn.contexts), tuple(float(x["score"]) for x in kept), streamed,
                                  answer.generated_by, tuple(str(x["id"]) for x in kept)))

    def _canned(self, answer: Answer) -> bool:
        """Whether the fallback's fixed message answered (:class:`lab.serve.upstream.MessageUpstream`)."""
        return isinstance(self.fallback, MessageUpstream) and answer.generated_by == self.fallback.name

    def _guard(self, turn: Turn) -> tuple[GuardedStream | None, Any]:
        """The stream's output guard and its ``guardrails.output`` span (None, None without output rules)."""
        s = self.settings
        guard = GuardedStream.of(self.policy, window=s.stream_window, chunk=s.stream_chunk, context=turn.contexts,
                                 route=turn.route, response_id=turn.id, run=turn.times.run)
        if guard is None:
            return None, None
        return guard, self.tracer.start("guardrails.output", "GUARDRAIL", parent=turn.span,
                                        inputs={"stream": True, "window": guard.window, "chunk": guard.chunk})

    def _end_guard(self, span: Any, guard: GuardedStream) -> None:
        """A stream's ``guardrails.output`` span: each rule applied, the text sent, the late verdicts."""
        self._trace_rules(span, "output", [o for o, _ in guard.outcomes], [a for _, a in guard.outcomes])
        outputs, attributes = guard.span_record()
        self.tracer.end(span, outputs=outputs, attributes=attributes)

    async def feedback(self, req: FeedbackRequest) -> None:
        """Store a rating of a recent answer (file, MLflow, its trace).

        Raises
        ------
        ChatError
            404 when ``response_id`` is unknown or too old.
        """
        s = self.settings
        item = self._recent.get(req.response_id)
        if item is None:
            raise ChatError(404, f"response_id {req.response_id!r} is unknown (or too old: the gateway keeps the "
                            f"last {s.remember} responses)", "unknown_response")
        rec = {"question": item.question, "answer": item.answer, "rating": req.rating, "contexts": item.contexts,
               "response_id": req.response_id, "comment": req.comment, "ts": time.time(), "trace_id": item.trace_id,
               "bundle": self.rag.bundle_id or None}
        async with self._feedback_lock:
            await asyncio.to_thread(append_line, s.feedback_path, rec)
            if s.mlflow_feedback:
                await asyncio.to_thread(log_feedback_mlflow, rec)
        await asyncio.to_thread(self.tracer.feedback, item.trace_id, req.rating, req.comment)
        self.metrics.feedback.labels(req.rating).inc()

    async def ready(self) -> tuple[dict[str, Any], bool]:
        """What ``/readyz`` reports, and whether the upstream answers."""
        up = await self.upstream.ready()
        body = {"index": self.rag.retriever.count if hasattr(self.rag.retriever, "count") else None,
                "upstream": self.upstream.name, "upstream_ready": up, "fallback": getattr(self.fallback, "name", None)}
        return body, up

    # ---------------------------------------------------------------- internals
    def _finish(self, turn: Turn, text: str, *, usage: dict[str, int] | None = None, source: str = "",
                blocked: bool = False) -> Answer:
        from lab.serve.tracing import trace_id

        tid = trace_id(turn.span)
        self.tracer.end(turn.span, outputs={"answer": text, "sources": [x["id"] for x in turn.sources]},
                        attributes={"response_id": turn.id, "blocked": blocked})
        self.remember(turn.id, _Remembered(turn.question, text, turn.contexts, turn.sources, tid))
        return Answer(turn.id, turn.request.model or "lab", text, turn.sources,
                      _total(usage or {"prompt_tokens": 0, "completion_tokens": 0}), source, blocked, tid,
                      timings=turn.times.done(self.metrics.stages))

    async def _generate(self, turn: Turn, fell: dict[str, str]) -> tuple[str, dict[str, int], str]:
        parts: list[str] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        source, t0 = "", time.perf_counter()
        first: float | None = None

        async def run() -> None:
            nonlocal source, first
            async for src, d in self._deltas(turn, fell):
                source = src
                if d.text and first is None:
                    first = turn.times.first_token()
                parts.append(d.text)
                _add_usage(usage, d)

        await asyncio.wait_for(run(), self.settings.request_timeout_s)
        turn.times.generated(first)
        self._observe_tokens(t0, first, usage)
        return "".join(parts), usage, source

    async def _deltas(self, turn: Turn, fell: dict[str, str]) -> AsyncIterator[tuple[str, Delta]]:
        m, t_q = self.metrics, time.perf_counter()
        m.queue_depth.inc()
        async with self._slots:
            m.queue_depth.dec()
            turn.times.queued(t_q)
            m.in_flight.inc()
            try:
                async for pair in generate_with_fallback(
                        self.upstream, self.fallback, turn.messages, max_tokens=turn.max_tokens,
                        temperature=turn.request.temperature, stop=self.rag.stop,
                        retries=self.settings.retries, backoff_s=self.settings.backoff_s,
                        on_retry=lambda kind: m.retries.inc(),
                        on_fallback=lambda kind: (m.fallbacks.labels(kind).inc(), fell.setdefault("lab.fallback", kind))):
                    yield pair
            finally:
                m.in_flight.dec()

    def _observe_tokens(self, t0: float, first: float | None, usage: dict[str, int]) -> None:
        m = self.metrics
        end = time.perf_counter()
        if first is not None:
            m.ttft.observe(first - t0)
            if usage["completion_tokens"] > 1:
                m.tpot.observe((end - first) / (usage["completion_tokens"] - 1))
        m.tokens.labels("input").observe(usage["prompt_tokens"])
        m.tokens.labels("output").observe(usage["completion_tokens"])


def _add_usage(usage: dict[str, int], d: Delta) -> None:
    if d.prompt_tokens is not None:
        usage["prompt_tokens"] = d.prompt_tokens
    if d.completion_tokens is not None:
        usage["completion_tokens"] = d.completion_tokens
