"""Checks composed into a policy: per check an action and (optionally) a threshold, from config.

Actions (after Guardrails AI's on-fail actions and NeMo Guardrails' rails as configuration):

``block``     stop: the request is refused with the fallback message; later checks do not run
``redact``    replace what the check located (PII, secrets) with ``<LABEL>`` and go on; when the
              check fired without locating (a text too long to analyse), fall back
``repair``    use the check's fixed text (repaired JSON); when it has none, fall back
``fallback``  replace the text with the fallback message (a declined or broken answer) and go on
``warn``      only record the decision

Every decision is recorded on the :class:`PolicyResult` and passed to each ``on_decision``
callback (the gateway counts them in its metrics); the ``lab.guardrails`` logger gets one line per
decision that fired.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lab.config.base import format_validation
from lab.config.guardrails import ACTIONS, DEFAULT_FALLBACK, Action, GuardrailPolicySpec
from lab.errors import ConfigError
from lab.guardrails.base import Check, Decision, Stage, make_check, safe_text

log = logging.getLogger("lab.guardrails")



def policy_spec(config: Mapping[str, Any] | GuardrailPolicySpec) -> GuardrailPolicySpec:
    """``config`` as the typed policy; a plain mapping is validated (errors: :class:`ConfigError`)."""
    if isinstance(config, GuardrailPolicySpec):
        return config
    if not isinstance(config, Mapping):
        raise ConfigError(f"guardrails policy must be a mapping, got {type(config).__name__}")
    try:
        return GuardrailPolicySpec.model_validate(dict(config))
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, "", GuardrailPolicySpec, "guardrails policy")) from None


@dataclass
class Rule:
    """One check of a policy, with what to do when it fires."""

    check: Check
    action: Action
    threshold: float | None = None  # None: the check's own (stored with a trained model)


@dataclass
class Outcome:
    """One rule's decision and what the policy did with it."""

    decision: Decision
    action: str          # the action taken ("none" when the check did not fire)
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.decision.to_dict(), "action": self.action, "latency_ms": self.latency_ms}


@dataclass
class PolicyResult:
    """What a policy made of one text."""

    text: str                      # the text to pass on (redacted, repaired, or the fallback message)
    allowed: bool                  # False when a ``block`` rule fired
    stage: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def fired(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.decision.fired]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "allowed": self.allowed, "stage": self.stage,
                "outcomes": [o.to_dict() for o in self.outcomes]}


class Policy:
    """Ordered rules for the input and the output side.

    Parameters
    ----------
    input, output : sequence of Rule
        Applied in order; a ``block`` stops the rest.
    fallback_message : str
        What a blocked request or a fallen-back answer becomes.
    on_decision : callables
        Each gets ``(stage, Outcome)`` for every rule applied.
    """

    def __init__(self, input: Sequence[Rule] = (), output: Sequence[Rule] = (), *,
                 fallback_message: str = DEFAULT_FALLBACK,
                 on_decision: Sequence[Callable[[str, Outcome], None]] = ()) -> None:
        self.rules: dict[str, list[Rule]] = {"input": list(input), "output": list(output)}
        for stage, rules in self.rules.items():
            for r in rules:
                if stage not in r.check.stages:
                    raise ConfigError(f"guardrails policy: check {r.check.name!r} does not apply to {stage} "
                                      f"(it applies to: {', '.join(sorted(r.check.stages))})")
        self.fallback_message = fallback_message
        self.on_decision = list(on_decision)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | GuardrailPolicySpec, **kwargs: Any) -> Policy:
        """Build from the typed policy (:class:`lab.config.GuardrailPolicySpec`) or its plain form
        ``{"input": [{"check": "pii", "action": "redact", "threshold": 0.5, "options": {...}}, ...],
        "output": [...], "fallback_message": "..."}``; every mistake is a :class:`ConfigError` naming
        the side, the rule's position, the key and the allowed values."""
        spec = policy_spec(config)
        sides: dict[str, list[Rule]] = {}
        for stage in ("input", "output"):
            rules = []
            for i, r in enumerate(getattr(spec, stage)):
                try:
                    check = make_check(r.check, **r.option_kwargs())
                except ConfigError as exc:
                    raise ConfigError(f"guardrails policy.{stage}[{i}]: {exc}") from None
                rules.append(Rule(check, r.action, r.threshold))
            sides[stage] = rules
        return cls(sides["input"], sides["output"], fallback_message=spec.fallback_message, **kwargs)

    def apply(self, text: str, stage: Stage = "input", *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> PolicyResult:
        """Run the ``stage`` rules over ``text`` in order; returns the text to pass on and every decision."""
        if stage not in self.rules:
            raise ConfigError(f"guardrails: stage must be 'input' or 'output', got {stage!r}")
        if not isinstance(text, str):
            raise TypeError(f"guardrails: text must be a str, got {type(text).__name__}")
        current = text  # as received: the limits check sees lone surrogates; the others clean them
        result = PolicyResult(current, True, stage)
        for rule in self.rules[stage]:
            t0 = time.perf_counter()
            d = rule.check.check(current, context=context, schema=schema)
            if rule.threshold is not None:
                d.threshold, d.fired = rule.threshold, d.score >= rule.threshold
            action = "none"
            if d.fired:
                action = rule.action
                if rule.action == "block":
                    current, result.allowed = self.fallback_message, False
                elif rule.action == "redact":
                    if d.fixed is not None:
                        current = d.fixed
                    else:  # nothing to redact with (the check could not locate): fail closed
                        current, action = self.fallback_message, "fallback"
                elif rule.action == "repair":
                    if d.fixed is not None:
                        current = d.fixed
                    else:
                        current, action = self.fallback_message, "fallback"
                elif rule.action == "fallback":
                    current = self.fallback_message
            outcome = Outcome(d, action, (time.perf_counter() - t0) * 1000)
            result.outcomes.append(outcome)
            if d.fired:
                log.info(json.dumps({"stage": stage, "check": d.check, "action": action, "score": round(d.score, 4),
                                     "reason": d.reason[:200]}))
            for cb in self.on_decision:
                cb(stage, outcome)
            if not result.allowed:
                break
        result.text = safe_text(current)
        return result
