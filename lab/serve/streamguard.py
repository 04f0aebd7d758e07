"""Output guardrails on a streamed answer: checked piece by piece, released as it passes.

A policy's output rules split in two (:func:`split_output`, derived from what each check is):

- **piece rules** judge any text they are given, so a piece of an answer too: a check that also
  guards inputs or retrieved passages (``pii``, ``secrets``, ``toxicity``, ``limits``). They run on
  the stream (:class:`GuardedStream`).
- **whole-answer rules** judge an answer as a whole: a check that guards the output side only
  (``grounding`` judges the answer against its context, ``refusal`` its opening, ``json_schema``
  the document). They run once the stream has ended, on the text the client was sent.

A check class may say which it is with a boolean ``streamable`` attribute (a plugin's, or one that
knows better than the derivation); :func:`streamable` reads it first.

**The window.** The stream holds back its last ``window`` characters. Once ``window + chunk``
characters are pending, the piece rules run on the pending text with the last ``window`` characters
already sent in front of it (the context: an e-mail address or key split across upstream deltas,
or across a release boundary, is seen whole); what precedes the held-back tail is released, redacted
where a rule redacted. A redaction that reaches into the held-back tail holds the release until the
tail has moved past it, so a value no longer than ``window`` is never released in part. When the
upstream ends, the rest is checked and released.

**Verdicts.** A rule on a piece whose action replaces the text (``block``, ``fallback``, ``repair``)
stops the stream: nothing more of the answer is sent, the policy's fallback message follows what
was shown, and the answer is ``blocked`` (``finish_reason: content_filter``). A whole-answer rule
that fires comes after the text was shown: ``warn`` adds a warning; a rule that replaces or changes
the answer gives the ``correction`` (the text the unstreamed answer would have had), and a ``block``
or ``fallback`` also appends the fallback message. Each is a :class:`StreamVerdict` that records
how many characters (and which text) the client had been sent before it; so is a redaction that
reached text already sent (a value longer than the window).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

log = logging.getLogger("lab.serve")

#: Characters held back (and shown to the checks as the context of the next piece).
WINDOW = 64
#: New characters beyond the held-back tail before the piece rules run again.
CHUNK = 32
#: Actions that replace the whole text: on a piece they stop the stream.
REPLACING = frozenset({"block", "fallback", "repair"})
#: Actions that leave the answer as it is.
PASSING = frozenset({"none", "exempt", "warn"})


def streamable(check: Any) -> bool:
    """Whether ``check`` can judge a piece of an answer: its ``streamable`` attribute when it has a
    boolean one, else whether it guards more than the output side (a check that judges inputs and
    passages judges any text; an output-only check judges an answer as a whole)."""
    declared = getattr(check, "streamable", None)
    if isinstance(declared, bool):
        return declared
    return bool(set(check.stages) - {"output"})


@dataclass
class OutputRules:
    """A policy's output rules split for a stream: each part a copy of the policy with only those
    output rules (same exceptions, fallback message, id and decision callbacks); None when empty."""

    pieces: Any
    whole: Any

    @property
    def any(self) -> bool:
        return self.pieces is not None or self.whole is not None


def _only(policy: Any, rules: list[Any]) -> Any:
    if not rules:
        return None
    part = copy.copy(policy)
    part.rules = {**policy.rules, "output": rules}
    return part


def split_output(policy: Any) -> OutputRules:
    """The piece rules and the whole-answer rules of ``policy``'s output side (module docstring)."""
    if policy is None:
        return OutputRules(None, None)
    rules = policy.rules["output"]
    return OutputRules(_only(policy, [r for r in rules if streamable(r.check)]),
                       _only(policy, [r for r in rules if not streamable(r.check)]))


@dataclass
class StreamVerdict:
    """A rule's verdict on a streamed answer, with what the client had been sent before it.

    ``phase``: ``stream`` (on a piece: the stream stopped, or a redaction reached text already
    sent) or ``end`` (a whole-answer rule after the stream). ``shown_chars``/``shown_text``: the
    answer's characters sent before the verdict. ``replacement``: what the policy put in the
    answer's place (the fallback message, the repaired or redacted answer); None for a warning."""

    check: str
    action: str
    reason: str
    score: float
    phase: Literal["stream", "end"]
    shown_chars: int
    shown_text: str = field(default="", repr=False)
    replacement: str | None = None

    def public(self) -> dict[str, Any]:
        """The verdict as the response's ``lab.verdicts`` carries it (the client has the text)."""
        out = asdict(self)
        del out["shown_text"]
        return out

    def record(self) -> dict[str, Any]:
        """The verdict as logged and traced, with the text that had been shown."""
        return asdict(self)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _common_suffix(a: str, b: str, limit: int) -> int:
    i = 0
    while i < limit and a[-1 - i] == b[-1 - i]:
        i += 1
    return i


def _warning(o: Any, offset: int) -> dict[str, Any]:
    d = o.decision
    return {"check": d.check, "reason": d.reason, "score": d.score,
            "spans": [{**asdict(s), "start": s.start + offset, "end": s.end + offset} for s in d.spans]}


class GuardedStream:
    """One answer streamed through a policy's output rules (see the module docstring).

    Feed it the upstream's text (:meth:`feed`), then :meth:`finish`; each returns the text to send
    now. Checks run in a worker thread (they are CPU-bound): ``run(stage, fn, *args)`` awaits one
    (default ``asyncio.to_thread``; the gateway's :meth:`lab.serve.stages.StageTimes.run` also times
    it as ``output_checks``). Afterwards: :attr:`shown` (the text
    sent), :attr:`blocked`, :attr:`stopped`, :attr:`verdicts`, :attr:`warnings`, :attr:`correction`,
    and :attr:`outcomes` (every rule applied, each with its trace attributes)."""

    def __init__(self, rules: OutputRules, *, window: int = WINDOW, chunk: int = CHUNK,
                 context: Sequence[str] | None = None, route: str | None = None, response_id: str = "",
                 run: Callable[..., Awaitable[Any]] | None = None) -> None:
        if window < 0 or chunk < 1:
            raise ValueError(f"stream window must be >= 0 and chunk >= 1 characters, got {window} and {chunk}")
        self.rules, self.window, self.chunk = rules, window, chunk
        self.context, self.route, self.response_id = context, route, response_id
        self._run = run or (lambda stage, fn, *args: asyncio.to_thread(fn, *args))
        self.shown = ""                  # sent to the client (redacted)
        self.pending = ""                # received, not sent yet
        self.pieces = 0                  # piece checks run
        self._due = window + chunk       # pending characters at which the piece rules run next
        self.stopped = False             # a piece rule stopped the stream
        self.blocked = False
        self.verdicts: list[StreamVerdict] = []
        self.warnings: list[dict[str, Any]] = []
        self.correction: str | None = None
        self.outcomes: list[tuple[Any, dict[str, Any]]] = []
        first = rules.pieces or rules.whole
        self.fallback_message: str = first.fallback_message if first is not None else ""
        self.policy_id: str | None = first.id if first is not None else None

    @classmethod
    def of(cls, policy: Any, **kwargs: Any) -> GuardedStream | None:
        """The guard of ``policy``'s output rules (keyword arguments as the constructor's); None
        without a policy or without output rules."""
        rules = split_output(policy)
        return cls(rules, **kwargs) if rules.any else None

    def span_record(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The outputs and attributes of the stream's ``guardrails.output`` span: the text sent, the
        pieces checked, and every verdict with the characters (and text) sent before it."""
        records = [v.record() for v in self.verdicts]
        return ({"shown": self.shown, "verdicts": records},
                {"lab.stream.window": self.window, "lab.stream.chunk": self.chunk, "lab.stream.pieces": self.pieces,
                 "lab.stream.shown_chars": len(self.shown), "lab.stream.blocked": self.blocked,
                 "lab.stream.verdicts": records})

    # ---------------------------------------------------------------- the stream
    async def feed(self, text: str) -> str:
        """Take upstream text; the text that may be sent now ("" while it is held back or checked later)."""
        if self.stopped:
            return ""
        self.pending += text
        if self.rules.pieces is None:
            out, self.pending = self.pending, ""
            self.shown += out
            return out
        if len(self.pending) < self._due:
            return ""
        return await self._run("output_checks", self._release, False)

    async def finish(self) -> str:
        """The upstream ended: the rest of the answer (checked), then what a late verdict appends."""
        if self.stopped:
            return ""
        out = ""
        if self.rules.pieces is None:
            out, self.pending = self.pending, ""
            self.shown += out
        elif self.pending or not self.shown:   # an empty answer is checked too, as unstreamed
            out = await self._run("output_checks", self._release, True)
        if self.stopped:
            return out
        if self.rules.whole is not None:
            out += await self._run("output_checks", self._judge_whole)
        return out

    def stop_text(self) -> str:
        """What follows the shown text when the answer is withdrawn: the policy's fallback message."""
        return ("\n\n" if self.shown else "") + self.fallback_message

    # ---------------------------------------------------------------- internals (worker thread)
    def _apply(self, policy: Any, text: str, phase: str) -> Any:
        res = policy.apply(text, "output", context=self.context, route=self.route)
        attrs = {"lab.guardrail.phase": phase, "lab.guardrail.shown_chars": len(self.shown)}
        self.outcomes.extend((o, attrs) for o in res.outcomes)
        return res

    def _verdict(self, o: Any, phase: Literal["stream", "end"], replacement: str | None,
                 reason: str | None = None) -> StreamVerdict:
        d = o.decision
        v = StreamVerdict(d.check, o.action, reason or d.reason, float(d.score), phase, len(self.shown),
                          self.shown, replacement)
        self.verdicts.append(v)
        log.info(json.dumps({"event": "stream_verdict", "response_id": self.response_id, "policy": self.policy_id,
                             **v.record()}, ensure_ascii=False))
        return v

    def _release(self, final: bool) -> str:
        """Check the pending text behind the last ``window`` characters sent; release what may go."""
        ctx = self.shown[-self.window:] if self.window else ""
        probe = ctx + self.pending
        self.pieces += 1
        res = self._apply(self.rules.pieces, probe, "piece")
        stop = next((o for o in res.outcomes if o.action in REPLACING), None)
        if stop is not None or not res.allowed:
            self._verdict(stop or res.outcomes[-1], "stream", self.fallback_message)
            self.stopped = self.blocked = True
            self.pending = ""
            return self.stop_text()
        offset = len(self.shown) - len(ctx)
        for o in res.outcomes:
            if o.action == "warn":
                self._add_warning(_warning(o, offset))
        fixed = res.text
        if fixed == probe:
            pre = suf = len(probe)
        else:
            pre = _common_prefix(probe, fixed)
            suf = _common_suffix(probe, fixed, min(len(probe), len(fixed)) - pre)
        if not final and suf < self.window:   # a change inside the held-back tail: wait until it has
            self._due = len(self.pending) + self.chunk   # moved past the window (another chunk, then look again)
            return ""
        self._due = self.window + self.chunk
        if pre >= len(ctx):
            start = len(ctx)
        else:   # the rules changed text already sent (a value longer than the window): record it
            changed = [o for o in res.outcomes if o.action not in PASSING]
            reason = (f"changed {len(ctx) - pre} character(s) the client had already been sent "
                      f"(a value longer than the stream window of {self.window})")
            for o in changed:
                self._verdict(o, "stream", fixed[pre:len(fixed) - suf], reason)
            start = len(fixed) - len(self.pending) if suf >= len(self.pending) else pre
        end = len(fixed) if final else len(fixed) - self.window
        out = fixed[start:end]
        self.pending = "" if final else self.pending[len(self.pending) - self.window:]
        self.shown += out
        return out

    def _add_warning(self, w: dict[str, Any]) -> None:
        """One warning per check; a piece warned about again (the context overlaps) adds its new spans."""
        have = next((x for x in self.warnings if x["check"] == w["check"]), None)
        if have is None:
            self.warnings.append(w)
            return
        have["score"] = max(have["score"], w["score"])
        seen = {(s["start"], s["end"], s["label"]) for s in have["spans"]}
        have["spans"] += [s for s in w["spans"] if (s["start"], s["end"], s["label"]) not in seen]

    def _judge_whole(self) -> str:
        """The whole-answer rules on the text sent; what their verdict appends to it."""
        res = self._apply(self.rules.whole, self.shown, "end")
        changed = res.text != self.shown or not res.allowed
        for o in res.outcomes:
            if o.action == "warn":
                self._add_warning(_warning(o, 0))
            if o.action not in ("none", "exempt"):
                self._verdict(o, "end", res.text if o.action not in PASSING else None)
        if changed:
            self.correction = res.text
        if not res.allowed or any(o.action in ("block", "fallback") for o in res.outcomes):
            self.blocked = not res.allowed
            return self.stop_text()
        return ""
