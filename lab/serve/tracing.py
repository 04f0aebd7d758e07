"""Per-request traces of the gateway in MLflow (retrieval, generation, guardrails as spans of one
``chat`` trace), so a slow or wrong answer can be followed in the MLflow UI's Traces tab; user
feedback is attached to its trace as a human assessment (``mlflow.log_feedback``).

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
              attributes: dict[str, Any] | None = None) -> Any:
        import mlflow

        return self._safe(lambda: mlflow.start_span_no_context(
            name, span_type=span_type, parent_span=parent, inputs=inputs, attributes=attributes))

    def end(self, span: Any, outputs: Any = None, attributes: dict[str, Any] | None = None,
            error: str | None = None) -> None:
        if span is None:
            return

        def close() -> None:
            if attributes:
                span.set_attributes(attributes)
            if error:
                span.set_status("ERROR")
                span.set_attribute("error", error)
            span.end(outputs=outputs)

        self._safe(close)

    def feedback(self, trace_id: str | None, rating: str, comment: str | None) -> None:
        if trace_id is None:
            return
        import mlflow
        from mlflow.entities import AssessmentSource

        self._safe(lambda: mlflow.log_feedback(
            trace_id=trace_id, name="user_rating", value=rating == "up", rationale=comment,
            source=AssessmentSource(source_type="HUMAN", source_id="lab-gateway")))


def trace_id(span: Any) -> str | None:
    return getattr(span, "trace_id", None) if span is not None else None
