"""The guardrail policy as config: one typed rule per built-in check, so ``lab params check``
rejects a misspelt check, action or option (with the file, the key and the allowed values) before
``dvc repro export`` packs the policy into a bundle and ``lab serve`` builds it.

A policy has an ``input``, a ``context`` (the retrieved passages, before they are put in the
prompt) and an ``output`` side, each an ordered list of rules, and ``exceptions`` (allow-lists)::

    input:
      - {check: pii, action: redact, options: {entities: [EMAIL_ADDRESS]}}
    context:
      - {check: injection, action: drop, options: {model_dir: ..., window_words: 64}}
    output:
      - {check: toxicity, action: fallback, options: {model_dir: results/guardrails_eval/models/toxicity}}
    exceptions:
      - {name: git-ignore, checks: [injection], sides: [input], phrases: [git ignore]}

The actions a rule may take depend on its side (:data:`ACTIONS` for input and output,
:data:`CONTEXT_ACTIONS` for passages): a passage is dropped, neutralised or flagged, never
"blocked" or "redacted", and the error of a misspelt one lists the side's values.

Each built-in check has an options model below (``extra="forbid"``). The options models name each
option, its type and its bounds; an option left out takes the check's own default (the check's
constructor in :mod:`lab.guardrails`, whose parameters ``tests/test_config.py`` keeps equal to these
fields). A plugin check, registered in the entry-point group :data:`CHECK_PLUGIN_GROUP`, is a valid
``check`` too; its ``options`` are checked against its constructor when the policy is built.

The models of the injection and jailbreak classifiers' training that decide their thresholds, and so
what a policy's ``operating_point: intent`` means, live here too: :class:`GeneratedPart` (generated
training prompts) and :class:`IntentThreshold` (the intent rule's caps).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from lab.config.base import TAG_PREFIX, StrictModel
from lab.config.generation import plugin_names

#: What a policy may do when a check fires (see :mod:`lab.guardrails.policy`).
Action = Literal["block", "redact", "repair", "fallback", "warn"]
ACTIONS: tuple[str, ...] = ("block", "redact", "repair", "fallback", "warn")
#: What a policy may do with a retrieved passage when a check fires on it (the ``context`` side).
ContextAction = Literal["drop", "neutralise", "warn"]
CONTEXT_ACTIONS: tuple[str, ...] = ("drop", "neutralise", "warn")
#: The sides of a policy, in the order a turn meets them.
Side = Literal["input", "context", "output"]
SIDES: tuple[str, ...] = ("input", "context", "output")
#: Entry-point group of plugin checks (the registry :data:`lab.guardrails.base.CHECKS` loads it).
CHECK_PLUGIN_GROUP = "lab.guardrail_checks"
DEFAULT_FALLBACK = "Sorry, I can't help with that request."


class CheckOptions(StrictModel):
    """Options of one check; ``None`` (or leaving an option out) means the check's own default."""

    #: the sides of a policy the check applies to
    STAGES: ClassVar[frozenset[str]] = frozenset({"input", "context", "output"})

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
    # "lab": Presidio's recognisers plus lab.guardrails.pii_types (addresses, ZIP/post codes, ages; places,
    # nationalities and ages only when tied to a person); "presidio": Presidio's alone (the check before them)
    recognizers: Literal["lab", "presidio"] | None = None


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


class WindowOptions(CheckOptions):
    """Windows over a long text for a trained classifier (:func:`lab.guardrails.classifier.word_windows`):
    unset (the default), the check derives the window from its classifier's training lengths
    (:func:`lab.guardrails.classifier.default_window_words`); ``window_words: null`` scores every
    text whole (the behaviour before windows were the default)."""

    window_words: int | None = Field(None, ge=8)   # words per window; a text this long or shorter is one window
    stride_words: int | None = Field(None, ge=1)   # words between window starts (default: half a window)
    # a long text scored by the window model beside the classifier (<model_dir>/windows) at its
    # length-aware cut, when there is one; false: by the classifier at its threshold
    window_model: bool = True

    @model_validator(mode="after")
    def _window(self) -> WindowOptions:
        if self.stride_words is not None and self.window_words is None:
            raise ValueError("stride_words needs window_words")
        if self.stride_words is not None and self.window_words is not None and self.stride_words > self.window_words:
            raise ValueError(f"stride_words {self.stride_words} > window_words {self.window_words}: "
                             "words between windows would never be scored")
        return self


class InjectionOptions(WindowOptions):
    STAGES: ClassVar[frozenset[str]] = frozenset({"input", "context"})
    model_dir: str | None = None               # the trained classifier's folder
    rules: bool | None = None
    classifier: bool | None = None
    max_fpr: float | None = Field(None, gt=0, lt=1)
    operating_point: str | None = None         # a stored operating point by name: intent, best_f1, fpr<=0.01...

    @model_validator(mode="after")
    def _one_cut(self) -> InjectionOptions:
        if self.max_fpr is not None and self.operating_point is not None:
            raise ValueError("give max_fpr or operating_point, not both")
        return self


class JailbreakOptions(InjectionOptions):
    pass


class ToxicityOptions(WindowOptions):
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


def _rule_model(name: str, options: type[CheckOptions], action: Any = Action, prefix: str = "") -> type[RuleBase]:
    return type(f"{prefix}{options.__name__.removesuffix('Options')}Rule", (RuleBase,), {
        "__annotations__": {"check": Literal[name], "options": options, "action": action},   # type: ignore[valid-type]
        "options": options(),
        "__doc__": f"A rule of the ``{name}`` check."})


class PluginRule(RuleBase):
    """A rule of a check registered through :data:`CHECK_PLUGIN_GROUP` (options checked when built)."""

    options: dict[str, Any] = Field(default_factory=dict)


class PluginContextRule(PluginRule):
    """A plugin check's rule on the ``context`` side (its stages are checked when built)."""

    action: ContextAction


RULE_MODELS: dict[str, type[RuleBase]] = {n: _rule_model(n, o) for n, o in CHECK_OPTIONS.items()}
#: Rule models of the checks that apply to retrieved passages, with the passage actions.
CONTEXT_RULE_MODELS: dict[str, type[RuleBase]] = {
    n: _rule_model(n, o, ContextAction, "Context") for n, o in CHECK_OPTIONS.items() if "context" in o.STAGES}
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
_CONTEXT_MEMBERS = (*(Annotated[m, Tag(TAG_PREFIX + n)] for n, m in CONTEXT_RULE_MODELS.items()),
                    Annotated[PluginContextRule, Tag(PLUGIN_TAG)])
#: One rule of the context side: only checks that apply to passages, only passage actions.
ContextRule = Annotated[Union[_CONTEXT_MEMBERS], Discriminator(_tag)]  # noqa: UP007


class PolicyException(StrictModel):
    """An allow-list entry: exempts texts or requests from some checks (or all) on some sides,
    without retraining anything. At least one of ``phrases``, ``patterns`` and ``routes``:

    - ``routes`` (globs of the gateway's path, ``fnmatch``): only requests to a matching route;
      an exception with routes and no phrases or patterns exempts every text of those requests;
    - ``phrases`` (case-insensitive) and ``patterns`` (Python regular expressions): the matches are
      blanked and the check runs again; the text is exempt only when the check no longer fires
      there, so an allowed phrase cannot carry an attack written beside it.

    Every exemption is logged and counted with the exception's ``name``.
    """

    name: str = Field(min_length=1)
    checks: list[str] = Field(default_factory=list)   # empty: every check
    sides: list[Side] = Field(default_factory=lambda: list(SIDES))
    phrases: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list)

    @field_validator("phrases", "routes")
    @classmethod
    def _non_empty(cls, values: list[str]) -> list[str]:
        if any(not v.strip() for v in values):
            raise ValueError("an empty phrase or route would match everything")
        return values

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, values: list[str]) -> list[str]:
        for v in values:
            try:
                rx = re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern {v!r} is not a regular expression: {exc}") from None
            if rx.search("") is not None:
                raise ValueError(f"pattern {v!r} matches the empty text, so it would exempt everything")
        return values

    @model_validator(mode="after")
    def _something(self) -> PolicyException:
        if not (self.phrases or self.patterns or self.routes):
            raise ValueError(f"exception {self.name!r}: give phrases, patterns or routes")
        return self


class GuardrailPolicySpec(StrictModel):
    """A guardrail policy: ordered rules for the input, the context (retrieved passages) and the
    output side, allow-list exceptions, and the message a blocked request or a fallen-back answer
    becomes. A policy without ``context`` and ``exceptions`` behaves as one written before they existed."""

    input: list[Rule] = Field(default_factory=list)
    context: list[ContextRule] = Field(default_factory=list)
    output: list[Rule] = Field(default_factory=list)
    exceptions: list[PolicyException] = Field(default_factory=list)
    fallback_message: str = Field(DEFAULT_FALLBACK, min_length=1)

    @model_validator(mode="after")
    def _sides(self) -> GuardrailPolicySpec:
        for side in SIDES:
            for i, rule in enumerate(getattr(self, side)):
                stages = type(rule.options).STAGES if isinstance(rule.options, CheckOptions) else None
                if stages is not None and side not in stages:
                    raise ValueError(f"{side}[{i}]: check {rule.check!r} does not apply to {side} "
                                     f"(it applies to: {', '.join(sorted(stages))})")
        names = [e.name for e in self.exceptions]
        for i, e in enumerate(self.exceptions):
            if names.index(e.name) < i:
                raise ValueError(f"exceptions[{i}].name: {e.name!r} already names exceptions[{names.index(e.name)}]; "
                                 "names are what the logs and counters report, so each must be unique")
            used = sorted({r.check for side in e.sides for r in getattr(self, side)})
            for c in e.checks:
                if c not in used:
                    raise ValueError(f"exceptions[{i}].checks: {c!r} is no check of this policy on its sides "
                                     f"{', '.join(e.sides)} (allowed values: {', '.join(used) or '(none)'})")
        return self

    def policy_id(self) -> str:
        """``sha256:`` and 12 hex digits of the policy as written, with each model folder left out
        (``<model>``): the version every decision, log line and trace span of the policy names. It
        is the same in ``params.yaml``, in the bundle (which renames the folders it copies) and
        wherever the bundle is moved; the models' weights are pinned by the bundle's id."""
        cfg = self.to_config()
        for side in SIDES:
            for rule in cfg.get(side) or []:
                opts = rule.get("options") or {}
                for key in MODEL_OPTIONS:
                    if isinstance(opts.get(key), str):
                        opts[key] = "<model>"
        blob = json.dumps(cfg, sort_keys=True, ensure_ascii=False).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()[:12]

    def model_folders(self) -> dict[str, str]:
        """Dotted key -> folder of every :data:`MODEL_OPTIONS` value that is a path (has a ``/``)."""
        out = {}
        for side in SIDES:
            for i, rule in enumerate(getattr(self, side)):
                for key, value in rule.option_kwargs().items():
                    if key in MODEL_OPTIONS and isinstance(value, str) and "/" in value:
                        out[f"{side}[{i}].options.{key}"] = value
        return out

    def to_config(self) -> dict[str, Any]:
        """The policy as plain data, as it was written (the keys the config set): what a bundle carries."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


# --------------------------------------------------------------------------- classifier training
class GeneratedPart(StrictModel):
    """Training prompts made by :mod:`lab.guardrails.intent_data` from its templates and ``seed``
    (how many of each part), and the questions of training ``questions`` files: added to the
    classifier's TRAINING part only (never held out, never evaluated)."""

    seed: int = 0
    everyday: int = Field(0, ge=0)     # everyday instructions and questions (benign)
    trigger: int = Field(0, ge=0)      # benign prompts using trigger words innocently
    roleplay: int = Field(0, ge=0)     # benign personas, scenarios, operator rules, long prompts
    attack: int = Field(0, ge=0)       # override/exfiltration intent around the same tasks (label 1)
    questions: list[str] = []          # training files of benign questions (a `question` field per record)
    # benign stretches of training documents (part `document`): prose of the kind the windows of long
    # inputs and retrieved passages hold, which the labelled prompts and the templates do not cover
    documents: int = Field(0, ge=0)
    passages: list[str] = []           # training files of passages (a `knowledge` or `text` field per record)
    weight: float = Field(1.0, gt=0)   # sample weight of each generated record (a labelled file's record: 1)

    @model_validator(mode="after")
    def _passages(self) -> GeneratedPart:
        if self.documents and not self.passages:
            raise ValueError("generated.documents needs `passages`: training files to cut the documents from")
        return self

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump()


class IntentThreshold(StrictModel):
    """The intent threshold rule (:func:`lab.guardrails.classifier.capped_cut`): on out-of-fold
    training scores, the lowest cut whose false-positive rate on each named benign training part
    stays within its cap (``all``: every benign record; ``file``: the labelled file's; a generated
    part), maximising recall on the labelled file's attacks. Stored as the model's threshold and as
    its operating point ``intent``."""

    max_fpr: dict[Literal["all", "file", "everyday", "trigger", "roleplay", "document"], float] = Field(min_length=1)
    group_folds: bool = True   # cross-validate with each template family in one fold

    @field_validator("max_fpr")
    @classmethod
    def _caps(cls, caps: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in caps.items() if not 0 <= v < 1}
        if bad:
            raise ValueError(f"each cap must be in [0, 1): {bad}")
        return caps


class WindowModelSpec(StrictModel):
    """The window model of a classifier check (:mod:`lab.guardrails.window_model`): trained on
    windows of benign ``prose`` (training documents: ``.jsonl`` passages, ``.txt``/``.md`` files or
    folders of them), alone and with the check's training texts planted inside; long texts are then
    scored window by window with it, at the length-aware cut that holds the share of benign texts
    that fire near ``max_text_fpr`` (chosen on out-of-fold training windows)."""

    prose: list[str] = Field(min_length=1)
    prose_windows: int = Field(8000, ge=100)   # pure prose windows (benign)
    inserts: int = Field(2000, ge=10)          # windows with a planted benign text, and as many with a positive
    max_text_fpr: float = Field(0.02, gt=0.0, lt=1.0)


class LabelledPart(StrictModel):
    """Records of another labelled file added to a classifier's data (only those of ``only_label``)."""

    data: str
    only_label: int | None = Field(None, ge=0, le=1)


class GuardrailClassifierSpec(StrictModel):
    """A trained guardrail classifier: its check and its labelled training file (a held-out
    fraction of it, by the hash of each text, is never trained on and is evaluated)."""

    check: Literal["injection", "jailbreak", "toxicity"]
    data: str
    heldout_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    extra: list[LabelledPart] = []   # more records merged in before the split (e.g. another file's benign ones)
    # feature blocks before the logistic regression: word and character TF-IDF, a sentence embedding
    features: list[Literal["word", "char", "embedding"]] = Field(["word", "char"], min_length=1)
    embedding_model: str = "all-minilm-l6-v2"
    generated: GeneratedPart | None = None       # template prompts added to the training part only
    threshold_rule: IntentThreshold | None = None   # None: the best out-of-fold F1 cut
    windows: WindowModelSpec | None = None        # the window model for long texts (None: none)

    @model_validator(mode="after")
    def _rule(self) -> GuardrailClassifierSpec:
        if self.threshold_rule is not None and self.generated is None:
            parts = set(self.threshold_rule.max_fpr) - {"all", "file"}
            if parts:
                raise ValueError(f"threshold_rule caps generated part(s) {sorted(parts)} but `generated` is not set")
        return self

    def train_kwargs(self, resolve: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """The generated-data, window-model and threshold-rule arguments of
        :func:`lab.guardrails.training.train_check`; ``resolve`` maps each ``questions``, ``passages``
        and ``prose`` file to the path to read (None: as written)."""
        rule = self.threshold_rule
        generated = self.generated.kwargs() if self.generated else None
        for key in ("questions", "passages") if generated and resolve is not None else ():
            generated[key] = [str(resolve(f)) for f in generated[key]]
        windows = self.windows.model_dump() if self.windows else None
        if windows and resolve is not None:
            windows["prose"] = [str(resolve(f)) for f in windows["prose"]]
        return {"generated": generated, "windows": windows,
                "caps": dict(rule.max_fpr) if rule else None, "group_folds": rule.group_folds if rule else True}
