"""Online evaluation: a sample of served responses judged after they went out, off the request path.

**What is judged.** An answered response (not one whose input the policy blocked), streamed or not,
once its text is complete: the question, the answer as sent, the passages the prompt held and their
retrieval scores (:class:`Served`). Which responses: :func:`sampled`, a hash of the response id
(seeded), below the route's rate (``Settings.judge_sample``, per route ``judge_sample_routes``), so
the sample is a fixed function of the ids: a test or an audit recomputes it exactly.

**When.** The service hands the response to :meth:`OnlineEvaluator.submit` after the answer is
final (a stream's last text is sent); ``submit`` never waits: it puts the response on a bounded
queue (``judge_queue``) and returns, and a full queue drops the response and counts it
(``lab_online_eval_dropped_total``). One background thread takes the queue in order and runs every
judge on each response (judges are CPU-bound and synchronous: a model forward pass, a rule).

**Where verdicts land.** Each judge's verdict (:class:`Verdict`: the judge's name, version,
assessment name, pass or fail, score, rationale and its calibrated agreement) is an assessment on
the request's MLflow trace (``mlflow.log_feedback``, source ``LLM_JUDGE`` for a model, ``CODE`` for
a rule; :meth:`lab.serve.tracing.Tracer.assess`) and in Prometheus: responses sampled, judged and
dropped, the queue's depth, and by judge its latency, its verdicts, the flagged ones, its errors. A judge that
raises (or gives no verdict) is an error verdict: counted (``lab_online_eval_errors_total``) and
logged on the trace as an assessment error, never a missing or NaN value. A judge with nothing to
judge (grounding without passages) says so (None) and is counted as skipped.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from lab.handoff.judges import Agreement

log = logging.getLogger("lab.serve")

SourceType = Literal["LLM_JUDGE", "CODE"]


def sampled(response_id: str, rate: float, seed: int = 0) -> bool:
    """Whether ``response_id`` is in the sample of ``rate``: the first 8 bytes of
    ``sha256("<seed>:<response_id>")`` as a fraction of 2**64, below ``rate`` (0 never, 1 always)."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    digest = hashlib.sha256(f"{seed}:{response_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < rate


@dataclass(frozen=True)
class Served:
    """One served response as the judges see it."""

    response_id: str
    trace_id: str | None
    route: str | None
    question: str
    answer: str
    contexts: tuple[str, ...] = ()       # the passages the prompt held, in its order
    scores: tuple[float, ...] = ()       # their retrieval scores
    streamed: bool = False
    generated_by: str = ""
    source_ids: tuple[str, ...] = ()     # the ids of the passages the prompt held (``contexts``' order)


@dataclass(frozen=True)
class Finding:
    """What a judge found on one response: ``flagged`` (the response fails the judge's aspect),
    ``score`` (the judge's P(fail) where it has one), ``rationale`` and ``details`` (JSON-ready
    values the judge adds to the verdict's metadata)."""

    flagged: bool
    score: float | None = None
    rationale: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class OnlineJudge(Protocol):
    """A judge the gateway runs online: ``name`` (its identity), ``aspect`` (the assessment's name),
    ``version`` (rubric id, model hash), ``source_type``, ``agreement`` (its calibrated agreement,
    None when uncalibrated) and ``assess`` (a :class:`Finding`, or None: nothing to judge)."""

    name: str
    aspect: str
    version: str
    source_type: SourceType
    agreement: Agreement | None

    def assess(self, served: Served) -> Finding | None: ...


@dataclass(frozen=True)
class Verdict:
    """One judge's verdict on one response, as it lands on the trace (:meth:`metadata`) and in the
    counters. ``passed`` is the assessment's value (True: the response passes the aspect; None when
    the judge failed, then ``error`` says why)."""

    response_id: str
    aspect: str
    judge: str
    version: str
    source_type: SourceType
    passed: bool | None
    score: float | None
    rationale: str
    agreement: Agreement | None
    latency_s: float
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.passed is False

    @property
    def source_id(self) -> str:
        """The assessment source's id: ``judge@version``."""
        return f"{self.judge}@{self.version}"

    def metadata(self) -> dict[str, str]:
        """The assessment's metadata (MLflow keeps strings): judge, version, response id, score,
        latency, the agreement (kappa, its split, CI, n, bar) and the judge's details."""
        out: dict[str, Any] = {"judge": self.judge, "judge_version": self.version, "response_id": self.response_id,
                               "score": self.score, "latency_s": round(self.latency_s, 6)}
        a = self.agreement
        if a is None:
            out["agreement"] = "uncalibrated"
        else:
            out.update({"agreement_kappa": a.kappa, "agreement_split": a.split, "agreement_judge": a.judge,
                        "agreement_n": a.n, "agreement_kappa_ci": list(a.kappa_ci) if a.kappa_ci else None,
                        "agreement_bar": a.bar, "agreement_below_bar": a.below_bar})
        out.update({f"detail.{k}": v for k, v in self.details.items()})
        return {k: str(v) for k, v in out.items() if v is not None}


_STOP = object()


class OnlineEvaluator:
    """The bounded queue and the one worker thread that judges the sample (module docstring).

    Parameters
    ----------
    judges : the judges run on every sampled response, in order.
    rate, routes, seed : the sampling rule (:func:`sampled`): ``routes`` maps a route to its rate,
        ``rate`` is the rest's.
    queue_size : responses waiting at most; one more is dropped and counted.
    metrics : the gateway's :class:`lab.serve.metrics.GatewayMetrics`.
    land : called with each :class:`Verdict` on the worker thread (the service logs it on the trace).
    """

    def __init__(self, judges: Sequence[OnlineJudge], *, rate: float, queue_size: int, metrics: Any,
                 routes: Mapping[str, float] | None = None, seed: int = 0,
                 land: Callable[[Served, Verdict], None] | None = None) -> None:
        self.judges, self.rate, self.routes, self.seed = list(judges), rate, dict(routes or {}), seed
        self.metrics = metrics
        self.land = land or (lambda served, verdict: None)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        metrics.online_queue_depth.set_function(self._queue.qsize)
        for judge in self.judges:   # every judge's series from the start, at 0 (a rate needs them)
            for counter in (metrics.online_verdicts, metrics.online_flagged, metrics.online_errors,
                            metrics.online_skipped):
                counter.labels(judge.name)

    def rate_for(self, route: str | None) -> float:
        """The sampling rate of ``route`` (its own, else the default)."""
        return self.routes.get(route, self.rate) if route is not None else self.rate

    def wants(self, response_id: str, route: str | None) -> bool:
        """Whether the response is in the sample (:func:`sampled` at the route's rate)."""
        return bool(self.judges) and sampled(response_id, self.rate_for(route), self.seed)

    def submit(self, served: Served) -> bool:
        """Queue a sampled response for judging; never waits. False when the queue was full (or the
        evaluator closed): the response is dropped and counted."""
        self.metrics.online_sampled.inc()
        if self._closed:
            self.metrics.online_dropped.inc()
            return False
        self._start()
        try:
            self._queue.put_nowait(served)
        except queue.Full:
            self.metrics.online_dropped.inc()
            log.debug("online evaluation: queue full, %s dropped", served.response_id)
            return False
        return True

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="lab-online-eval", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self.judge(item)
            except Exception as exc:  # noqa: BLE001 (landing failed: counted, the worker lives on)
                log.warning("online evaluation of %s failed: %s: %s", getattr(item, "response_id", "?"),
                            type(exc).__name__, exc)
                self.metrics.errors.labels("online_eval").inc()
            finally:
                self._queue.task_done()

    def judge(self, served: Served) -> list[Verdict]:
        """Every judge on ``served`` (on the calling thread): the verdicts, counted and landed."""
        m = self.metrics
        verdicts = []
        for judge in self.judges:
            t0 = time.perf_counter()
            try:
                found = judge.assess(served)
                error = None
            except Exception as exc:  # noqa: BLE001 (a judge's failure is a counted error verdict)
                found, error = None, f"{type(exc).__name__}: {exc}"
            latency = time.perf_counter() - t0
            m.online_latency.labels(judge.name).observe(latency)
            if error is None and found is None:
                m.online_skipped.labels(judge.name).inc()
                continue
            if error is not None:
                m.online_errors.labels(judge.name).inc()
                v = Verdict(served.response_id, judge.aspect, judge.name, judge.version, judge.source_type, None,
                            None, "", judge.agreement, latency, error=error)
            else:
                assert found is not None
                m.online_verdicts.labels(judge.name).inc()
                if found.flagged:
                    m.online_flagged.labels(judge.name).inc()
                v = Verdict(served.response_id, judge.aspect, judge.name, judge.version, judge.source_type,
                            not found.flagged, found.score, found.rationale, judge.agreement, latency,
                            details=dict(found.details))
            self.land(served, v)
            verdicts.append(v)
        m.online_judged.inc()
        return verdicts

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued response is judged (or ``timeout_s`` passed): whether it was."""
        q = self._queue
        end = time.monotonic() + timeout_s
        with q.all_tasks_done:
            while q.unfinished_tasks:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                q.all_tasks_done.wait(left)
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop taking responses, judge what is queued (up to ``timeout_s``), stop the worker:
        whether everything queued was judged (what was not is counted as dropped)."""
        self._closed = True
        done = self.drain(timeout_s)
        if not done:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                self._queue.task_done()
                self.metrics.online_dropped.inc()
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=1.0)
            except queue.Full:
                pass
            self._thread.join(timeout=max(1.0, timeout_s))
        return done
