"""Recipe: add a guardrail check. `competitors` fires on a competitor's name and can redact it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lab.guardrails import CHECKS, Decision, Policy, Span, safe_text


@CHECKS.register("competitors")   # the name a policy's `check:` key uses
class Competitors:
    """Fires when the text names one of ``names`` (whole words, any case); ``fixed`` has them redacted."""

    name = "competitors"
    stages = frozenset({"input", "output"})   # the policy refuses it on a side not listed here

    def __init__(self, names: Sequence[str] = ("Acme",)) -> None:   # the rule's `options`
        self.names = list(names)
        self._rx = re.compile(r"\b(?:" + "|".join(map(re.escape, self.names)) + r")\b", re.IGNORECASE)

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        text = safe_text(text)   # never raise on strange text: lone surrogates become U+FFFD
        spans = [Span(m.start(), m.end(), "COMPETITOR") for m in self._rx.finditer(text)]
        fired = bool(spans)
        return Decision(self.name, fired, 1.0 if fired else 0.0, 0.5,
                        reason=f"names {', '.join(sorted({text[s.start:s.end] for s in spans}))}" if fired else "",
                        spans=spans, fixed=self._rx.sub("<COMPETITOR>", text) if fired else None)


def main() -> None:
    # the same mapping as a policy in params.yaml (export.guardrails)
    policy = Policy.from_config({
        "input": [{"check": "limits", "action": "block"},
                  {"check": "competitors", "action": "redact", "options": {"names": ["Acme", "Globex"]}}],
        "output": [{"check": "competitors", "action": "fallback", "options": {"names": ["Acme"]}}],
        "fallback_message": "Let me stick to our own products.",
    })
    result = policy.apply("Is Acme cheaper than you?", "input")
    print(result.text, [o.decision.reason for o in result.fired])
    assert result.allowed and result.text == "Is <COMPETITOR> cheaper than you?"
    answer = policy.apply("ACME sells one too.", "output")
    assert answer.text == "Let me stick to our own products."


if __name__ == "__main__":
    main()
