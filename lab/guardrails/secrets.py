"""Secrets in a text (API keys, tokens, private keys, passwords in assignments), with Yelp's
``detect-secrets`` detectors: AWS, GitHub, GitLab, Slack, Stripe, OpenAI, JWT, private keys,
basic-auth URLs, keyword assignments (``password = ...``) and more. Its two high-entropy string
detectors are off by default (they fire on hashes and ids in ordinary text); ``entropy=True`` turns
them on. detect-secrets reports a secret per line without offsets: its value is located in the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lab.guardrails.base import CHECKS, Decision, Span, safe_text

_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.]*")
ENTROPY_TYPES = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})


def find_secrets(text: str, *, entropy: bool = False) -> list[Span]:
    """Spans of the secrets detect-secrets finds in ``text`` (label: its detector's type)."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    spans: list[Span] = []
    offset = 0
    with default_settings():
        for line in safe_text(text).splitlines(keepends=True):
            for found in scan_line(line.rstrip("\r\n")):
                if not entropy and found.type in ENTROPY_TYPES:
                    continue
                value = found.secret_value or ""
                at = line.find(value) if value else -1
                if at >= 0:
                    # some detectors report only a captured prefix ("ghp"): take the whole token
                    m = _TOKEN.match(line, at + len(value))
                    start, end = at, (m.end() if m else at + len(value))
                else:  # value not verbatim in the line (a decoded form): the whole line
                    start, end = 0, len(line.rstrip("\r\n"))
                spans.append(Span(offset + start, offset + end, f"SECRET:{found.type}", 1.0))
            offset += len(line)
    return sorted(set(spans), key=lambda s: (s.start, s.end))


@CHECKS.register("secrets")
class Secrets:
    """Fires on any secret detect-secrets finds; ``fixed`` is the text with each one replaced by
    ``<SECRET>``."""

    name = "secrets"
    stages = frozenset({"input", "context", "output"})

    def __init__(self, entropy: bool = False) -> None:
        self.entropy = entropy

    def warm(self) -> None:
        """Build Presidio's anonymizer now (what the first redaction would)."""
        from lab.guardrails.pii import anonymizer

        anonymizer()

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        from lab.guardrails.pii import redact

        text = safe_text(text)
        spans = find_secrets(text, entropy=self.entropy)
        if not spans:
            return Decision(self.name, False, 0.0, 0.5)
        kinds = sorted({s.label.split(":", 1)[1] for s in spans})
        generic = [Span(s.start, s.end, "SECRET", s.score) for s in spans]
        return Decision(self.name, True, 1.0, 0.5, f"{len(spans)} secret(s): {', '.join(kinds)}", spans,
                        redact(text, generic))
