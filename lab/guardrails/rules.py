"""Rule checks: input limits, refusal detection, JSON/schema validation with a repair attempt.

Rules are the floor under the trained classifiers: microseconds, no model, and each says exactly
which rule fired.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from lab.generate.refusal import WINDOW, compile_patterns, refusal_reason
from lab.guardrails.base import CHECKS, Decision, safe_text


@CHECKS.register("limits")
class Limits:
    """Input size and encoding limits (treat it like input validation in a REST API).

    Fires on: more than ``max_chars`` characters or ``max_bytes`` UTF-8 bytes, lone surrogates
    (text that is not valid Unicode), NUL and other C0/C1 control characters beyond tab and line
    breaks, and (when ``allow_empty`` is false) empty or whitespace-only text.
    """

    name = "limits"
    stages = frozenset({"input", "context", "output"})

    def __init__(self, max_chars: int = 32_000, max_bytes: int = 128_000, allow_empty: bool = False,
                 max_control_chars: int = 0) -> None:
        self.max_chars, self.max_bytes = max_chars, max_bytes
        self.allow_empty, self.max_control_chars = allow_empty, max_control_chars

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        reasons = []
        surrogates = sum(1 for c in text if 0xD800 <= ord(c) <= 0xDFFF)
        if surrogates:
            reasons.append(f"{surrogates} lone surrogate(s): not valid Unicode")
        clean = safe_text(text)
        if len(clean) > self.max_chars:
            reasons.append(f"{len(clean):,} characters > max_chars {self.max_chars:,}")
        n_bytes = len(clean.encode("utf-8"))
        if n_bytes > self.max_bytes:
            reasons.append(f"{n_bytes:,} UTF-8 bytes > max_bytes {self.max_bytes:,}")
        controls = sum(1 for c in clean if unicodedata.category(c) == "Cc" and c not in "\t\n\r")
        if controls > self.max_control_chars:
            reasons.append(f"{controls} control character(s) (NUL, escape...) > {self.max_control_chars}")
        if not self.allow_empty and not clean.strip():
            reasons.append("empty text")
        return Decision(self.name, bool(reasons), 1.0 if reasons else 0.0, 0.5, "; ".join(reasons))


@CHECKS.register("refusal")
class Refusal:
    """The model declined (or said it does not know): fires when a refusal phrase appears within the
    first ``window`` characters; the policy's action (usually ``fallback``) decides what the user
    sees. The phrase that fired is the reason."""

    name = "refusal"
    stages = frozenset({"output"})

    def __init__(self, window: int = WINDOW, patterns: list[str] | None = None) -> None:
        self.window = window
        self.patterns = compile_patterns(patterns)

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        reason = refusal_reason(safe_text(text), window=self.window, patterns=self.patterns)
        if reason is not None:
            return Decision(self.name, True, 1.0, 0.5, reason)
        return Decision(self.name, False, 0.0, 0.5)


def _extract_json(text: str) -> str:
    """The JSON part of a model answer: inside a ```json fence if there is one, else from the first
    ``{`` or ``[`` on."""
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL | re.IGNORECASE)
    if fence:
        return fence.group(1).strip()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    return text[min(starts):].strip() if starts else text.strip()


@CHECKS.register("json_schema")
class JSONSchema:
    """The output must be JSON valid under the request's schema (``schema=`` at check time, or
    ``schema`` given here). On failure one repair is attempted: the JSON part is cut out of the
    answer and mended with the ``json-repair`` library (unbalanced brackets, single quotes,
    trailing commas, prose around it); the repaired text is offered as ``fixed`` only when it then
    validates. The validator is ``jsonschema`` (Draft 2020-12)."""

    name = "json_schema"
    stages = frozenset({"output"})

    def __init__(self, schema: dict | None = None, repair: bool = True) -> None:
        self.schema, self.repair = schema, repair

    def _errors(self, obj: Any, schema: Mapping[str, Any] | None) -> list[str]:
        if schema is None:
            return []
        from jsonschema import Draft202012Validator

        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in sorted(Draft202012Validator(dict(schema)).iter_errors(obj), key=lambda e: list(e.path))]

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        schema = schema if schema is not None else self.schema
        text = safe_text(text)
        try:
            obj = json.loads(text)
            problems = self._errors(obj, schema)
            if not problems:
                return Decision(self.name, False, 0.0, 0.5)
            reason = "schema: " + "; ".join(problems[:5])
        except ValueError as exc:
            reason = f"not JSON: {exc}"
        fixed = None
        if self.repair:
            import json_repair

            try:
                obj = json_repair.loads(_extract_json(text))
            except Exception:  # noqa: BLE001 (whatever the repair raises means "no repair")
                obj = None
            if obj is None or obj == "":
                reason += "; no JSON to repair"
            elif errors := self._errors(obj, schema):
                reason += "; the repaired JSON still fails the schema: " + "; ".join(errors[:3])
            else:
                fixed = json.dumps(obj, ensure_ascii=False)
                reason += "; repaired"
        return Decision(self.name, True, 1.0, 0.5, reason, fixed=fixed)
