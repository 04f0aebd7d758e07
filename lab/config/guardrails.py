"""The guardrail policy as config: one typed rule per built-in check, so ``lab params check``
rejects a misspelt check, action or option (with the file, the key and the allowed values) before
``dvc repro export`` packs the policy into a bundle and ``lab serve`` builds it.

A policy has an ``input`` and an ``output`` side, each an ordered list of rules::

    input:
      - {check: pii, action: redact, options: {entities: [EMAIL_ADDRESS]}}
    output:
      - {check: toxicity, action: fallback, options: {model_dir: results/guardrails_eval/models/toxicity}}

Each built-in check has an options model below (``extra="forbid"``). The options models name each
option, its type and its bounds; an option left out takes the check's own default (the check's
constructor in :mod:`lab.guardrails`, whose parameters ``tests/test_config.py`` keeps equal to these
fields). A plugin check, registered in the entry-point group :data:`CHECK_PLUGIN_GROUP`, is a valid
``check`` too; its ``options`` are checked against its constructor when the policy is built.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

from lab.config.base import TAG_PREFIX, StrictModel
from lab.config.generation import plugin_names

#: What a policy may do when a check fires (see :mod:`lab.guardrails.policy`).
Action = Literal["block", "redact", "repair", "fallback", "warn"]
ACTIONS: tuple[str, ...] = ("block", "redact", "repair", "fallback", "warn")
#: Entry-point group of plugin checks (the registry :data:`lab.guardrails.base.CHECKS` loads it).
CHECK_PLUGIN_GROUP = "lab.guardrail_checks"
DEFAULT_FALLBACK = "Sorry, I can't help with that request."


class CheckOptions(StrictModel):
    """Options of one check; ``None`` (or leaving an option out) means the check's own default."""

    #: the sides of a policy the check applies to
    STAGES: ClassVar[frozenset[str]] = frozenset({"input", "output"})

    def kwargs(self) -> dict[str, Any]:
        """The options the config sets, as the check's constructor arguments."""
        return {k: getattr(self, k) for k in self.model_fields_set}


class LimitsOptions(CheckOptions):
    max_chars: int | None = Field(None, ge=1)
    max_bytes: int | None = Field(None, ge=1)
    allow_empty: bool | None = None
    max_control_chars: int | None = Field(None, ge=0)


class SecretsOptions(CheckOptions):
    entropy: bool | None = None


class PiiOptions(CheckOptions):
    entities: list[str] | None = None          # Presidio entity types; None: all
    threshold: float | None = Field(None, ge=0, le=1)
    nlp_model: str | None = None               # a spaCy pipeline: model-store name or folder
    max_chars: int | None = Field(None, ge=1)


class JsonSchemaOptions(CheckOptions):
    STAGES: ClassVar[frozenset[str]] = frozenset({"output"})
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    repair: bool | None = None

    def kwargs(self) -> dict[str, Any]:
        return {("schema" if k == "schema_" else k): getattr(self, k) for k in self.model_fields_set}


class RefusalOptions(CheckOptions):
    STAGES: ClassVar[frozenset[str]] = frozenset({"output"})
    window: int | None = Field(None, ge=1)
    patterns: list[str] | None = None


class InjectionOptions(CheckOptions):
    STAGES: ClassVar[frozenset[str]] = frozenset({"input"})
    model_dir: str | None = None               # the trained classifier's folder
    rules: bool | None = None
    classifier: bool | None = None
    max_fpr: float | None = Field(None, gt=0, lt=1)


class JailbreakOptions(InjectionOptions):
    pass


class ToxicityOptions(CheckOptions):
    model_dir: str | None = None
    max_fpr: float | None = Field(None, gt=0, lt=1)


class GroundingOptions(CheckOptions):
    STAGES: ClassVar[frozenset[str]] = frozenset({"output"})
    judge: str | None = None                   # "lexical", a judge folder, or the default cross-encoder
    model_dir: str | None = None
    question: str | None = None


#: The options model of each built-in check (its registered name in :mod:`lab.guardrails`).
CHECK_OPTIONS: dict[str, type[CheckOptions]] = {
    "limits": LimitsOptions, "secrets": SecretsOptions, "pii": PiiOptions, "json_schema": JsonSchemaOptions,
    "refusal": RefusalOptions, "injection": InjectionOptions, "jailbreak": JailbreakOptions,
    "toxicity": ToxicityOptions, "grounding": GroundingOptions,
}
#: Options that name a folder a check loads (a trained classifier, an NER pipeline): the export
#: stage depends on them and copies them into the bundle.
MODEL_OPTIONS: tuple[str, ...] = ("model_dir", "nlp_model")


class RuleBase(StrictModel):
    """One rule: a check, the action when it fires, and an optional threshold over its score."""

    check: str
    action: Action
    threshold: float | None = Field(None, ge=0, le=1)   # None: the check's own (stored with a trained model)
    options: Any = None

    def option_kwargs(self) -> dict[str, Any]:
        """The check's constructor arguments."""
        opts = self.options
        return opts.kwargs() if isinstance(opts, CheckOptions) else dict(opts or {})


def _rule_model(name: str, options: type[CheckOptions]) -> type[RuleBase]:
    return type(f"{options.__name__.removesuffix('Options')}Rule", (RuleBase,), {
        "__annotations__": {"check": Literal[name], "options": options},   # type: ignore[valid-type]
        "options": options(),
        "__doc__": f"A rule of the ``{name}`` check."})


class PluginRule(RuleBase):
    """A rule of a check registered through :data:`CHECK_PLUGIN_GROUP` (options checked when built)."""

    options: dict[str, Any] = {}


RULE_MODELS: dict[str, type[RuleBase]] = {n: _rule_model(n, o) for n, o in CHECK_OPTIONS.items()}
PLUGIN_TAG = TAG_PREFIX + f"(a plugin check of the entry-point group {CHECK_PLUGIN_GROUP})"
#: Checks registered in this process (``CHECKS.register`` of :mod:`lab.guardrails.base` adds them):
#: valid rule names with free options, like entry-point plugins. A fresh process (``lab params
#: check``) knows a check only through the entry-point group.
REGISTERED_CHECKS: set[str] = set()


def _tag(value: Any) -> str | None:
    """The union tag of a rule: its built-in check, a plugin check, or the unknown name (an error
    that lists the allowed names)."""
    check = value.get("check") if isinstance(value, dict) else getattr(value, "check", None)
    if check is None:
        return None
    if check in RULE_MODELS:
        return TAG_PREFIX + str(check)
    if isinstance(check, str) and (check in REGISTERED_CHECKS or check in plugin_names(CHECK_PLUGIN_GROUP)):
        return PLUGIN_TAG
    return TAG_PREFIX + str(check)


_tag.__name__ = "check"   # pydantic names the discriminator by its function in errors: the key's name

_MEMBERS = (*(Annotated[m, Tag(TAG_PREFIX + n)] for n, m in RULE_MODELS.items()),
            Annotated[PluginRule, Tag(PLUGIN_TAG)])
#: One rule of a policy: the model of its check, picked by ``check`` (a tagged union).
Rule = Annotated[Union[_MEMBERS], Discriminator(_tag)]  # noqa: UP007 - a union built from a tuple


class GuardrailPolicySpec(StrictModel):
    """A guardrail policy: ordered rules for the input and the output side, and the message a
    blocked request or a fallen-back answer becomes."""

    input: list[Rule] = []
    output: list[Rule] = []
    fallback_message: str = Field(DEFAULT_FALLBACK, min_length=1)

    @model_validator(mode="after")
    def _sides(self) -> GuardrailPolicySpec:
        for side in ("input", "output"):
            for i, rule in enumerate(getattr(self, side)):
                stages = type(rule.options).STAGES if isinstance(rule.options, CheckOptions) else None
                if stages is not None and side not in stages:
                    raise ValueError(f"{side}[{i}]: check {rule.check!r} does not apply to {side} "
                                     f"(it applies to: {', '.join(sorted(stages))})")
        return self

    def model_folders(self) -> dict[str, str]:
        """Dotted key -> folder of every :data:`MODEL_OPTIONS` value that is a path (has a ``/``)."""
        out = {}
        for side in ("input", "output"):
            for i, rule in enumerate(getattr(self, side)):
                for key, value in rule.option_kwargs().items():
                    if key in MODEL_OPTIONS and isinstance(value, str) and "/" in value:
                        out[f"{side}[{i}].options.{key}"] = value
        return out

    def to_config(self) -> dict[str, Any]:
        """The policy as plain data, as it was written (the keys the config set): what a bundle carries."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)
