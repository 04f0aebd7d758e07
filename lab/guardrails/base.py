"""What every guardrail check shares: the decision it returns, the registry, and the text it accepts.

A check looks at one text — a user's input, or a model's output with its retrieved context and
the schema it must follow — and returns a :class:`Decision`: whether it fires, a score in [0, 1]
(higher is more likely a violation), the threshold it was compared with, spans where it found
something, and the reason in words. Checks never raise on strange text: empty strings, megabytes,
lone surrogates and mixed scripts get a decision (see :func:`safe_text`).

Checks are registered in :data:`CHECKS` (plugins through the entry-point group
``lab.guardrail_checks``) and composed with actions into a :class:`lab.guardrails.policy.Policy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from lab.registry import Registry

Stage = Literal["input", "context", "output"]


@dataclass(frozen=True)
class Span:
    """A character range ``text[start:end]`` a check found, with its label (``EMAIL_ADDRESS``...)."""

    start: int
    end: int
    label: str
    score: float = 1.0


@dataclass
class Decision:
    """One check's verdict on one text.

    Attributes
    ----------
    check : str
        The check's registered name.
    fired : bool
        ``score >= threshold``: the check found what it looks for.
    score : float
        In [0, 1]; higher means more likely a violation (a probability for trained classifiers,
        1.0/0.0 for rules).
    threshold : float
        The cut the score was compared with (stored with a trained model, or the rule's).
    reason : str
        Why, in words (the signals that fired, the schema error...); empty when it did not fire.
    spans : list of Span
        Where, for checks that locate things (PII, secrets).
    fixed : str or None
        The text with the problem removed where the check can do that (redacted PII, repaired
        JSON); the policy uses it for ``redact`` and ``repair`` actions.
    """

    check: str
    fired: bool
    score: float
    threshold: float
    reason: str = ""
    spans: list[Span] = field(default_factory=list)
    fixed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Check(Protocol):
    """A guardrail check: ``name``, the ``stages`` it applies to, and :meth:`check`; a check that
    loads something on first use may also have ``warm()`` (:meth:`lab.guardrails.policy.Policy.warm`)."""

    name: str
    stages: frozenset[str]

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision: ...


def check_all(check: Check, texts: Sequence[str]) -> list[Decision]:
    """``check.check`` on each text, through the check's batched ``check_many`` where it has one
    (the trained classifiers: one ``predict_proba`` over all texts instead of one per text, about
    a hundred times less scikit-learn overhead on a few thousand texts)."""
    many = getattr(check, "check_many", None)
    return list(many(texts)) if many is not None else [check.check(t) for t in texts]


class _CheckRegistry(Registry[type]):
    """The check registry; a check added in this process is also a valid rule name of the typed
    policy (:data:`lab.config.guardrails.REGISTERED_CHECKS`), which the config floor cannot import."""

    def add(self, name: str, obj: type) -> None:
        from lab.config.guardrails import REGISTERED_CHECKS, RULE_MODELS

        super().add(name, obj)
        if name not in RULE_MODELS:
            REGISTERED_CHECKS.add(name)


#: Check classes by name; ``make_check(name, **options)`` builds one.
CHECKS: Registry[type] = _CheckRegistry("guardrail_checks", item="guardrail check")


def make_check(name: str, **options: Any) -> Check:
    """Build the check registered as ``name`` with its options (unknown names list what exists;
    unknown options name the accepted ones). A built-in check's options are validated by its model
    in :mod:`lab.config.guardrails` (names, types, bounds); a plugin's against its constructor."""
    import inspect

    from pydantic import ValidationError

    from lab.config.base import format_validation
    from lab.config.guardrails import CHECK_OPTIONS
    from lab.errors import ConfigError

    cls = CHECKS.get(name)
    model = CHECK_OPTIONS.get(name)
    if model is not None:
        try:
            options = model.model_validate(options).kwargs()
        except ValidationError as exc:
            raise ConfigError(format_validation(exc, "", model, f"guardrail check {name!r}: options")) from None
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"guardrail check {name!r}: unknown option(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(accepted) or '(none)'}")
    return cls(**options)


def safe_text(text: Any) -> str:
    """``text`` as a str every library can take: lone surrogates (which UTF-8 cannot encode) become
    U+FFFD, one for one, so character offsets stay those of the original. Non-strings are a
    ``TypeError`` naming the type."""
    if not isinstance(text, str):
        raise TypeError(f"guardrails check text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
