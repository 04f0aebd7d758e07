"""Per-request traces of the gateway in MLflow (retrieval, generation, guardrails as spans of one
``chat`` trace), so a slow or wrong answer can be followed in the MLflow UI's Traces tab; user
feedback is attached to its trace as a human assessment (``mlflow.log_feedback``). Each guardrail
rule applied is an ``apply_guardrail`` span under its side's span (``guardrails.input``,
``guardrails.context``, ``guardrails.output``), with the attributes of :func:`guardrail_attributes`.

Spans are opened without context (``mlflow.start_span_no_context``) because a streamed answer
outlives the request handler's frame. A tracing failure never fails a request: it is counted
(``lab_errors_total{type="trace"}``) and the answer goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Tracer:
    """MLflow tracing when ``enabled``; otherwise every call is a cheap no-op returning None."""

    def __init__(self, enabled: bool = False, root: Path | None = None,
                 on_error: Callable[[], None] | None = None) -> None:
        self.enabled = enabled
        self.on_error = on_error or (lambda: None)
        if enabled:
            from lab import tracking

            tracking.setup(root=root)

    def _safe(self, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 (tracing is observability, never a request failure)
            log.warning("tracing failed: %s: %s", type(exc).__name__, exc)
            self.on_error()
            return None

    def start(self, name: str, span_type: str, inputs: Any = None, parent: Any = None,
              attributes: dict[str, Any] | None = None, start_time_ns: int | None = None) -> Any:
        import mlflow

        return self._safe(lambda: mlflow.start_span_no_context(
            name, span_type=span_type, parent_span=parent, inputs=inputs, attributes=attributes,
            start_time_ns=start_time_ns))

    def end(self, span: Any, outputs: Any = None, attributes: dict[str, Any] | None = None,
            error: str | None = None, end_time_ns: int | None = None) -> None:
        if span is None:
            return

        def close() -> None:
            if attributes:
                span.set_attributes(attributes)
            if error:
                span.set_status("ERROR")
                span.set_attribute("error", error)
            span.end(outputs=outputs, end_time_ns=end_time_ns)

        self._safe(close)

    def feedback(self, trace_id: str | None, rating: str, comment: str | None) -> None:
        if trace_id is None:
            return
        import mlflow
        from mlflow.entities import AssessmentSource

        self._safe(lambda: mlflow.log_feedback(
            trace_id=trace_id, name="user_rating", value=rating == "up", rationale=comment,
            source=AssessmentSource(source_type="HUMAN", source_id="lab-gateway")))


#: ``gen_ai.guardrail.result`` of each policy action. The OpenTelemetry GenAI semantic conventions
#: have no stable guardrail span yet: open-telemetry/semantic-conventions PR #3233 (closed) proposed
#: the ``apply_guardrail`` operation (``gen_ai.operation.name``) with a decision of ``allow``,
#: ``deny`` or ``modify`` and targets ``llm_input`` / ``llm_output``; its successor,
#: open-telemetry/semantic-conventions-genai PR #427 (open), splits the guardrail's verdict from the
#: action the caller enforced. We keep the span name and the decision values (plus ``warn``) under
#: ``gen_ai.guardrail.*``: the result is the verdict (a ``block`` of a request and a ``drop`` of a
#: passage are both ``deny``), the action taken is ``lab.guardrail.action``; ``exempt`` (an allow-list
#: exception let a fired check pass) is an ``allow`` that names the exception.
GUARDRAIL_RESULT = {"none": "allow", "exempt": "allow", "block": "deny", "drop": "deny", "redact": "modify",
                    "repair": "modify", "fallback": "modify", "neutralise": "modify", "warn": "warn"}
#: What each side of a policy guards, as ``gen_ai.guardrail.target``.
GUARDRAIL_TARGET = {"input": "llm_input", "context": "retrieved_context", "output": "llm_output"}


def guardrail_attributes(stage: str, outcome: Any, policy_id: str | None) -> dict[str, Any]:
    """The attributes of one ``apply_guardrail`` span (one rule's decision on one text), after the
    OpenTelemetry GenAI guardrail drafts (see :data:`GUARDRAIL_RESULT`; not a stable convention yet):

    - ``gen_ai.operation.name``: ``apply_guardrail``;
    - ``gen_ai.guardrail.name``: the check; ``gen_ai.guardrail.result``: :data:`GUARDRAIL_RESULT`;
      ``gen_ai.guardrail.target``: :data:`GUARDRAIL_TARGET`; ``gen_ai.guardrail.policy.id``: the
      policy's version (``sha256:...``); ``gen_ai.guardrail.reason`` and ``gen_ai.guardrail.score``:
      the check's reason and score;
    - ``lab.guardrail.*`` for what the drafts have no name for: ``action`` (the policy's action,
      ``none`` when the check did not fire), ``threshold``, ``stage``, ``exception`` (the allow-list
      exception that exempted it) and ``passage`` (its position among the retrieved passages)."""
    d = outcome.decision
    out: dict[str, Any] = {
        "gen_ai.operation.name": "apply_guardrail", "gen_ai.guardrail.name": d.check,
        "gen_ai.guardrail.result": GUARDRAIL_RESULT.get(outcome.action, outcome.action),
        "gen_ai.guardrail.target": GUARDRAIL_TARGET.get(stage, stage), "gen_ai.guardrail.reason": d.reason,
        "gen_ai.guardrail.score": float(d.score), "lab.guardrail.action": outcome.action,
        "lab.guardrail.threshold": float(d.threshold), "lab.guardrail.stage": stage}
    if policy_id is not None:
        out["gen_ai.guardrail.policy.id"] = policy_id
    if outcome.exception is not None:
        out["lab.guardrail.exception"] = outcome.exception
    if outcome.passage is not None:
        out["lab.guardrail.passage"] = outcome.passage
    return out


def trace_id(span: Any) -> str | None:
    return getattr(span, "trace_id", None) if span is not None else None
