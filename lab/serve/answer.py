"""What the chat service answers: :class:`Answer` (a turn's text, sources and how it was made; its
``chat.completion`` body and chunk) and :class:`ChatError` (a request it cannot answer, with the
HTTP status the routes send). :mod:`lab.serve.chat` makes them; :mod:`lab.serve.gateway` sends them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lab.errors import LabError


class ChatError(LabError):
    """A request the service cannot answer: ``status`` (the HTTP code), ``kind`` (the error type
    counted in ``lab_errors_total``) and a message naming the field or the cause."""

    def __init__(self, status: int, message: str, kind: str, type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.type = type or kind   # the body's error type (a stream's names the upstream failure only)


@dataclass
class Answer:
    """One answered turn: the text, its sources and how it was made."""

    id: str
    model: str
    text: str
    sources: list[dict[str, Any]]
    usage: dict[str, int]
    generated_by: str = ""
    blocked: bool = False
    trace_id: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    warnings: list[dict[str, Any]] = field(default_factory=list)   # output rules whose action is warn
    verdicts: list[dict[str, Any]] = field(default_factory=list)   # a stream's (StreamVerdict.public)
    correction: str | None = None        # a stream's answer as the late verdicts made it
    timings: dict[str, float] | None = None   # seconds per stage (lab.serve.stages.StageTimes.done)

    @property
    def finish_reason(self) -> str:
        return "content_filter" if self.blocked else "stop"

    def lab(self) -> dict[str, Any]:
        """The ``lab`` field of a response; ``warnings`` (when an output rule with action ``warn`` fired):
        each ``{check, reason, score, spans}``, spans as ``{start, end, label, score}`` offsets into the
        answer (a claim-level grounding check's unsupported claims). A stream's last chunk adds
        ``verdicts`` (:class:`lab.serve.streamguard.StreamVerdict`: the rules that stopped or judged
        the answer after text was sent, each with ``shown_chars``) and ``correction``. ``timings``:
        the seconds the request spent in each stage of the gateway (:mod:`lab.serve.stages`)."""
        out: dict[str, Any] = {"generated_by": self.generated_by, "blocked": self.blocked, "trace_id": self.trace_id}
        if self.warnings:
            out["warnings"] = self.warnings
        if self.verdicts:
            out["verdicts"] = self.verdicts
        if self.correction is not None:
            out["correction"] = self.correction
        if self.timings is not None:
            out["timings"] = self.timings
        return out

    def body(self) -> dict[str, Any]:
        """The ``chat.completion`` response."""
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.text},
                             "finish_reason": self.finish_reason}],
                "usage": self.usage, "sources": self.sources, "lab": self.lab()}

    def chunk(self) -> dict[str, Any]:
        """The whole answer as one ``chat.completion.chunk`` (a streamed request whose input was blocked)."""
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": self.text},
                             "finish_reason": self.finish_reason}],
                "usage": self.usage, "sources": self.sources, "lab": self.lab()}


def _total(usage: dict[str, int]) -> dict[str, int]:
    return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
