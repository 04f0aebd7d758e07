"""The period's requests, read from the gateway's MLflow traces into typed rows (:class:`Request`).

What one ``chat`` trace gives (:mod:`lab.serve.tracing`, :mod:`lab.serve.chat`): its time, duration
and state (``ERROR`` when the upstream failed with no fallback or timed out); the root span's
``question``, ``stream``, ``blocked`` and ``lab.bundle_id``; the ``retrieval`` span's query (the
question as the retriever saw it, after the input rules) and its ``(id, score)`` hits; the
``generation`` span's ``generated_by`` and ``lab.fallback`` (the upstream failure the fallback
answered); one ``apply_guardrail`` span per rule applied (``lab.guardrail.stage``,
``gen_ai.guardrail.name``, ``lab.guardrail.action``, ``gen_ai.guardrail.result``); and the trace's
assessments: ``user_rating`` (a person's thumbs, ``HUMAN``) and any judge's verdict (source
``LLM_JUDGE`` or ``CODE``, a boolean value where False fails the judge, or an error), whatever
wrote them. Thumbs also come from the gateway's feedback file (:func:`thumbs_from_file`), which is
appended with fsync and so holds a rating whose trace assessment could not be written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.errors import DataError

#: The spans whose durations the report gives percentiles of, besides the whole request.
STAGE_SPANS = ("guardrails.input", "retrieval", "guardrails.context", "generation", "guardrails.output")
JUDGE_SOURCES = ("LLM_JUDGE", "CODE")
THUMBS = "user_rating"


@dataclass(frozen=True)
class Guardrail:
    """One rule applied to one text: its side, check, the policy's action and the verdict."""

    stage: str
    check: str
    action: str          # none when the check did not fire; exempt when an exception let it pass
    result: str          # gen_ai.guardrail.result: allow, deny, modify, warn

    @property
    def fired(self) -> bool:
        return self.action not in ("none", "exempt")


@dataclass
class Request:
    """One traced chat request."""

    trace_id: str
    time_ms: int
    duration_ms: float | None
    ok: bool
    error: str | None = None
    bundle_id: str | None = None
    question: str | None = None          # what the retriever searched, else what was asked
    retrieved: bool = False              # a retrieval span (a request blocked at its input has none)
    scores: tuple[float, ...] = ()       # retrieval scores, best first
    blocked: bool = False
    streamed: bool = False
    generated: bool = False              # a generation span (the upstream was asked)
    generated_by: str | None = None
    fallback: str | None = None          # the upstream failure the fallback answered
    guardrails: tuple[Guardrail, ...] = ()
    judges: dict[str, bool | None] = field(default_factory=dict)   # judge -> flagged (None: the judge failed)
    thumbs: bool | None = None           # True: up
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def top_score(self) -> float | None:
        return self.scores[0] if self.scores else None


def _attr(span: Any, key: str) -> Any:
    return (span.attributes or {}).get(key)


def request_of(trace: Any) -> Request | None:
    """The :class:`Request` of one MLflow trace (None: not a gateway ``chat`` trace)."""
    spans = list(trace.data.spans) if trace.data is not None else []
    root = next((s for s in spans if s.parent_id is None), None)
    if root is None or root.name != "chat":
        return None
    info = trace.info
    state = getattr(info.state, "value", str(info.state))
    inputs = root.inputs if isinstance(root.inputs, Mapping) else {}
    req = Request(trace_id=info.trace_id, time_ms=int(info.request_time),
                  duration_ms=float(info.execution_duration) if info.execution_duration is not None else None,
                  ok=state == "OK", error=_attr(root, "error") if state != "OK" else None,
                  bundle_id=_attr(root, "lab.bundle_id") or None, question=inputs.get("question"),
                  blocked=bool(_attr(root, "blocked")), streamed=bool(inputs.get("stream")))
    rules = []
    for s in spans:
        if s.end_time_ns and s.start_time_ns and s.name in STAGE_SPANS and s.name not in req.stage_ms:
            req.stage_ms[s.name] = (s.end_time_ns - s.start_time_ns) / 1e6
        if s.name == "retrieval":
            req.retrieved = True
            if isinstance(s.inputs, Mapping) and isinstance(s.inputs.get("query"), str):
                req.question = s.inputs["query"]
            hits = s.outputs if isinstance(s.outputs, list) else []
            req.scores = tuple(float(h["score"]) for h in hits if isinstance(h, Mapping) and "score" in h)
        elif s.name == "generation":
            req.generated = True
            req.generated_by = _attr(s, "generated_by")
            req.fallback = _attr(s, "lab.fallback")
        elif s.name == "apply_guardrail":
            rules.append(Guardrail(str(_attr(s, "lab.guardrail.stage")), str(_attr(s, "gen_ai.guardrail.name")),
                                   str(_attr(s, "lab.guardrail.action")), str(_attr(s, "gen_ai.guardrail.result"))))
    req.guardrails = tuple(rules)
    _assessments(req, getattr(info, "assessments", None) or [])
    return req


def _assessments(req: Request, assessments: Iterable[Any]) -> None:
    """Thumbs and judges' verdicts from the trace's assessments (the latest of each name wins)."""
    for a in sorted(assessments, key=lambda a: a.create_time_ms or 0):
        if not getattr(a, "valid", True) or getattr(a, "feedback", None) is None:
            continue   # an overridden assessment, or an expectation
        source = getattr(getattr(a, "source", None), "source_type", None)
        source = getattr(source, "value", source)
        value, failed = a.feedback.value, a.feedback.error is not None
        if a.name == THUMBS and source == "HUMAN" and isinstance(value, bool):
            req.thumbs = value
        elif source in JUDGE_SOURCES:
            req.judges[a.name] = None if failed or not isinstance(value, bool) else not value


def read_requests(start: datetime, end: datetime, *, experiment: str = "lab", max_traces: int = 20000,
                  root: Path | None = None) -> tuple[list[Request], bool]:
    """The gateway's requests traced in ``[start, end)`` in ``experiment`` of the project's tracking
    store (``MLFLOW_TRACKING_URI`` or ``.mlflow/``), newest first, at most ``max_traces``; and
    whether the cap cut the period short.

    Raises
    ------
    DataError
        The store has no such experiment (nothing was traced there).
    """
    import mlflow

    from lab.tracking import tracking_uri

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise DataError(f"MLflow store {uri}: no experiment {experiment!r}, so no gateway traces; serve with "
                        "`lab serve` (tracing on) or point MLFLOW_TRACKING_URI at the gateway's store")
    where = (f"trace.timestamp_ms >= {int(start.timestamp() * 1000)} AND "
             f"trace.timestamp_ms < {int(end.timestamp() * 1000)}")
    out: list[Request] = []
    token = None
    while len(out) < max_traces:
        page = client.search_traces(locations=[exp.experiment_id], filter_string=where, max_results=500,
                                    order_by=["timestamp_ms DESC"], page_token=token)
        out.extend(r for r in map(request_of, page) if r is not None)
        token = page.token
        if not token:
            return out[:max_traces], False
    return out[:max_traces], True


def thumbs_from_file(path: Path) -> dict[str, bool]:
    """trace id -> thumbs up, from the gateway's feedback file (``lab serve --feedback``; the last
    rating of a trace wins; lines without a trace id, written with tracing off, are left out).

    Raises
    ------
    DataError
        A line that is not a JSON object with a ``rating`` of ``up`` or ``down`` (named by line).
    """
    out: dict[str, bool] = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i}: not JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or rec.get("rating") not in ("up", "down"):
                raise DataError(f"{path}:{i}: expected a feedback record with rating 'up' or 'down'")
            if rec.get("trace_id"):
                out[str(rec["trace_id"])] = rec["rating"] == "up"
    return out
