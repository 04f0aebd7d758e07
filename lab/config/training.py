"""Training settings: the fine-tune comparison's ``training`` section, the config of one fine-tuning
run (:class:`FinetuneConfig`, what :func:`lab.finetune.finetune` takes) and the trained judge's
settings. One model family: the knobs a study sets and a run uses are the same fields, with one
default each."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from lab.config.base import StrictModel, format_validation
from lab.errors import ConfigError

Method = Literal["full", "lora", "qlora"]
METHODS: tuple[str, ...] = ("full", "lora", "qlora")
# Fields that change how a run is driven, not what it trains: a checkpoint written under other
# values resumes. max_steps is handled apart (it moves the LR schedule's horizon).
DRIVE_ONLY = frozenset({"eval_every", "save_every", "threads", "device", "max_steps"})


class TrainingKnobs(StrictModel):
    """The knobs a study's ``training`` section and one fine-tuning run share.

    ``batch_size`` is the number of examples per micro-batch (split across workers by
    :func:`~lab.finetune.finetune_ray`); one optimizer step sees ``batch_size * grad_accum``
    examples. ``eval_every``/``save_every`` of 0 switch evaluation/checkpoints off.
    """

    max_steps: int = Field(40, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora_r: int = Field(8, ge=1)
    eval_every: int = Field(20, ge=0)
    save_every: int = Field(10, ge=0)
    threads: int | None = Field(None, ge=1)


#: Defaults of the learning rates and prompt lengths (the study's section and one run share them).
LORA_LEARNING_RATE = 3e-4
FULL_LEARNING_RATE = 5e-5
MAX_LENGTH = 384


class FinetuneConfig(TrainingKnobs):
    """What to fine-tune and how (one run of :func:`lab.finetune.finetune`).

    ``device="auto"`` picks CUDA when available, else CPU. Invalid values raise
    :class:`~lab.errors.ConfigError` listing every problem.
    """

    method: Method = "lora"
    model: str = Field("smollm2-135m-instruct", min_length=1)
    learning_rate: float = Field(LORA_LEARNING_RATE, gt=0)
    max_length: int = Field(MAX_LENGTH, ge=2)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(("q_proj", "v_proj"), min_length=1)
    seed: int = Field(0, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:   # a LabError, which the CLI and the runner report
            raise ConfigError(format_validation(exc, "", type(self), "finetune config")) from None

    @field_validator("target_modules", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value   # YAML and JSON give lists

    @field_validator("target_modules")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(value):
            raise ValueError("target_modules must be non-empty module names")
        return value

    @classmethod
    def from_dict(cls, data: Any) -> FinetuneConfig:
        """Build from a mapping (a config section, :meth:`to_dict`'s output); unknown keys are a :class:`ConfigError`."""
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``target_modules`` as a list)."""
        return self.model_dump(mode="json")

    def training_dict(self) -> dict[str, Any]:
        """The fields that change what is trained (see :data:`DRIVE_ONLY`)."""
        d = self.to_dict()
        if self.method == "full":  # LoRA settings do not touch a full fine-tune
            for k in ("lora_r", "lora_alpha", "lora_dropout", "target_modules"):
                d.pop(k)
        return {k: v for k, v in d.items() if k not in DRIVE_ONLY}


class TrainingSpec(TrainingKnobs):
    """Section ``finetune_comparison.training``: the knobs of every trained arm, which
    :meth:`finetune_config` turns into each arm's :class:`FinetuneConfig`."""

    lora_learning_rate: float = Field(LORA_LEARNING_RATE, gt=0)
    full_learning_rate: float = Field(FULL_LEARNING_RATE, gt=0)
    max_length: int = Field(MAX_LENGTH, ge=16)
    rag_max_length: int = Field(1024, ge=16)   # LoRA + RAG prompts carry retrieved passages

    def finetune_config(self, *, method: Method, model: str, seed: int, rag: bool = False) -> FinetuneConfig:
        """The run of one trained arm: the shared knobs, the learning rate of ``method``, the prompt
        length of a RAG arm when ``rag``, and LoRA's alpha at twice its rank."""
        shared = self.model_dump(include=set(TrainingKnobs.model_fields))
        return FinetuneConfig(**shared, method=method, model=model, seed=seed, lora_alpha=2 * self.lora_r,
                              max_length=self.rag_max_length if rag else self.max_length,
                              learning_rate=self.full_learning_rate if method == "full" else self.lora_learning_rate)


Augmentation = Literal["swapped", "in_context", "support"]


class TrainedJudgeSpec(StrictModel):
    """Section ``judge_eval.trained``, and what :func:`lab.judge.trained.train_cross_encoder` takes:
    the local judge, a cross-encoder fine-tuned from an embedding model on labelled judgments."""

    model: str = "all-minilm-l6-v2"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    max_length: int = Field(256, ge=16)
    threads: int | None = Field(None, ge=1)
    # grounded: counterfactual training answers (lab.judge.counterfactual) that give each label both
    # lengths: swapped (another question's answer: 1), in_context (a wrong answer from the context's own
    # words: 1), support (the context sentence holding the right answer: 0)
    augment: list[Augmentation] = []
    lexical_hints: bool = False     # grounded: show the model the answer's content words missing from the context
                                    # and from the context sentence holding most of them (lab.judge.trained.pair_text)


class ClaimSupportSpec(StrictModel):
    """Section ``judge_eval.claims``: the claim-support model (:mod:`lab.judge.claim_training`), the pair
    scorer of claim-level judging, trained on labelled answers of ``lab judge make-data`` (faithful
    long-form answers, paraphrases, planted errors; never a hallucination benchmark's items) and
    judged as ``claims:claim-support-cross-encoder``."""

    data: list[str] = Field(min_length=1)     # labelled-answers files (make-data output)
    more_errors: int = Field(2, ge=0)         # rule-planted errors added per faithful answer (other claims)
    short_answers: int = Field(0, ge=0)       # SQuAD training questions made into short-answer twins
                                              # (lab.judge.short_answers; SQuAD's part and data_seed)
    source: str = "squad"                     # make-data's --source of those files (for the planted errors)
    part: Literal["train", "heldout"] = "train"
    data_seed: int = 0                        # make-data's --seed
    validation_fraction: float = Field(0.2, gt=0, lt=1)   # of the sources: the answer-level threshold
    model: TrainedJudgeSpec = TrainedJudgeSpec(epochs=2, max_length=256)
