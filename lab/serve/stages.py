"""Where a chat request's time goes inside the gateway: seconds per stage, per request.

Each request (:class:`lab.serve.chat.Turn`) carries a :class:`StageTimes`; the service adds to it as
the turn goes through its stages (:data:`STAGES`), and at the end each stage is observed in
``lab_stage_duration_seconds{stage=...}`` and sent back in the response's ``lab.timings`` (a
stream's last chunk), so a load test reads exact per-request figures (``benchmarks/serve_load.py``).

- ``queue``: waiting for an upstream slot (``Settings.max_concurrency``);
- ``thread_wait``: waiting for a worker thread of the gateway's pool (the CPU-bound work of the
  other stages runs in ``asyncio.to_thread``; the pool is asyncio's default, ``min(32, cpus + 4)``
  threads), summed over the stages;
- ``input_checks``, ``retrieval``, ``context_checks``, ``output_checks``: the work itself, in its
  worker thread (a stream's output checks run between upstream deltas, once per released piece
  and once at the end);
- ``prompt``: building the prompt around the passages (on the event loop);
- ``upstream_ttft``: from the upstream call (after the slot) to its first text; ``decode``: from
  there to its last delta, the time the output checks held the stream back taken out;
- ``other``: the rest of ``total`` (from the request's start to its answer): tracing, the event
  loop's scheduling, the request's own bookkeeping.

So the stages add up to ``total``. The guardrail decisions themselves are timed per check in
``lab_guardrail_check_duration_seconds{check, stage}`` (:meth:`lab.serve.chat.ChatService._count_decision`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The stages of a request, in the order a request meets them (``other`` and ``total`` last).
STAGES = ("queue", "thread_wait", "input_checks", "retrieval", "context_checks", "prompt", "upstream_ttft",
          "decode", "output_checks", "other", "total")


class StageTimes:
    """Seconds per stage of one request (see the module docstring); ``t0`` its start."""

    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.perf_counter() if t0 is None else t0
        self.seconds: dict[str, float] = {}
        self._upstream: float | None = None   # when the upstream call began (after the slot)
        self._threads = 0.0                   # seconds in run(): the worker-thread stages, waits included
        self._threads_at_first = 0.0          # ... at the upstream's first text

    def add(self, stage: str, seconds: float) -> float:
        """Add ``seconds`` to ``stage``; returns them (to observe elsewhere too)."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        return seconds

    async def run(self, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``await asyncio.to_thread(fn, ...)``, its time split into the wait for a worker thread
        (``thread_wait``) and the work (``stage``)."""
        t0 = time.perf_counter()
        began = t0

        def work() -> T:
            nonlocal began
            began = time.perf_counter()
            return fn(*args, **kwargs)

        try:
            return await asyncio.to_thread(work)
        finally:
            end = time.perf_counter()
            self.add("thread_wait", began - t0)
            self.add(stage, end - began)
            self._threads += end - t0

    def queued(self, since: float) -> None:
        """The upstream slot was taken (waiting since ``since``): the upstream call begins now."""
        self._upstream = time.perf_counter()
        self.add("queue", self._upstream - since)

    def first_token(self) -> float:
        """The upstream's first text arrived; returns the time (``time.perf_counter``)."""
        self._threads_at_first = self._threads
        return time.perf_counter()

    def generated(self, first: float | None) -> None:
        """The upstream's last delta arrived (``first``: when its first text did, None: no text)."""
        if self._upstream is None:
            return
        end = time.perf_counter()
        if first is None:
            self.add("upstream_ttft", end - self._upstream)
            return
        self.add("upstream_ttft", first - self._upstream)
        self.add("decode", max(0.0, end - first - (self._threads - self._threads_at_first)))

    def done(self, histogram: Any = None) -> dict[str, float]:
        """The request's answer is ready: ``total`` and ``other`` set, every stage observed in
        ``histogram`` (labelled by ``stage``) when given; the stages as ``lab.timings`` sends them
        (seconds, rounded to microseconds, in :data:`STAGES` order)."""
        total = time.perf_counter() - self.t0
        self.seconds["other"] = max(0.0, total - sum(v for k, v in self.seconds.items() if k not in ("other", "total")))
        self.seconds["total"] = total
        if histogram is not None:
            for stage, s in self.seconds.items():
                histogram.labels(stage).observe(s)
        order = {s: i for i, s in enumerate(STAGES)}
        return {k: round(v, 6) for k, v in sorted(self.seconds.items(), key=lambda kv: order.get(kv[0], len(order)))}
