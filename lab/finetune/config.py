"""The typed config of a fine-tuning run, its result, and the identity that decides what may be resumed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from lab.errors import ConfigError

METHODS = ("full", "lora", "qlora")
# Fields that change how a run is driven, not what it trains: a checkpoint written under other
# values resumes. max_steps is handled apart (it moves the LR schedule's horizon).
_DRIVE_ONLY = frozenset({"eval_every", "save_every", "threads", "device", "max_steps"})


@dataclass(frozen=True)
class FinetuneConfig:
    """What to fine-tune and how.

    ``batch_size`` is the number of examples per micro-batch (split across workers by
    :func:`~lab.finetune.finetune_ray`); one optimizer step sees ``batch_size * grad_accum``
    examples. ``eval_every``/``save_every`` of 0 switch evaluation/checkpoints off.
    ``device="auto"`` picks CUDA when available, else CPU.
    """

    method: Literal["full", "lora", "qlora"] = "lora"
    model: str = "smollm2-135m-instruct"
    max_steps: int = 30
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 256
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    eval_every: int = 10
    save_every: int = 10
    seed: int = 0
    threads: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, list | tuple):  # YAML gives lists; keep the frozen value hashable
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.model, str) or not self.model:
            problems.append(f"model must be a non-empty model spec, got {self.model!r}")
        for name, low in (("max_steps", 1), ("batch_size", 1), ("grad_accum", 1), ("max_length", 2),
                          ("lora_r", 1), ("lora_alpha", 1), ("eval_every", 0), ("save_every", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, int | float) \
                or not self.learning_rate > 0:
            problems.append(f"learning_rate must be a number > 0, got {self.learning_rate!r}")
        if isinstance(self.lora_dropout, bool) or not isinstance(self.lora_dropout, int | float) \
                or not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout must be a number in [0, 1), got {self.lora_dropout!r}")
        if not isinstance(self.target_modules, tuple) or not self.target_modules or \
                not all(isinstance(m, str) and m for m in self.target_modules):
            problems.append(f"target_modules must be a non-empty list of module names, got {self.target_modules!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            problems.append(f"threads must be null or an integer >= 1, got {self.threads!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda")
                                                    or self.device.startswith("cuda:")):
            problems.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if problems:
            raise ConfigError("finetune config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneConfig:
        """Build from a mapping (a ``params.yaml`` section); unknown keys are a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"finetune config: unknown key(s) {unknown}. Known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    def training_dict(self) -> dict[str, Any]:
        """The fields that change what is trained (see ``_DRIVE_ONLY``)."""
        d = self.to_dict()
        if self.method == "full":  # LoRA settings do not touch a full fine-tune
            for k in ("lora_r", "lora_alpha", "lora_dropout", "target_modules"):
                d.pop(k)
        return {k: v for k, v in d.items() if k not in _DRIVE_ONLY}


@dataclass
class FinetuneResult:
    """What a run produced and cost.

    ``final_dir`` holds the whole model (``full``) or the adapter (``lora``/``qlora``), with the
    tokenizer and ``lab_finetune.json``. Loss lists are ``(optimizer step, loss)``; eval loss is
    also taken at step 0 (before any update). ``wall_s`` is this call's wall time plus
    ``resumed_s``, the training time of the earlier runs it resumed (as of their last checkpoint), so
    a run killed and resumed reports what the whole training cost; ``peak_rss_mb`` is this call's
    (``ru_maxrss`` of the process: it includes what the process held before; the maximum over
    workers under Ray). ``tokens_seen`` counts non-padding training tokens over all steps, earlier
    runs that were resumed included. ``reused`` is True when ``final/`` already held this config's
    result and nothing was trained (the other figures are then those of the run that made it).
    """

    out_dir: Path
    final_dir: Path
    method: str
    steps: int
    resumed_from_step: int | None
    train_loss: list[tuple[int, float]]
    eval_loss: list[tuple[int, float]]
    wall_s: float
    peak_rss_mb: float
    trainable_params: int
    total_params: int
    tokens_seen: int
    reused: bool = False
    resumed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"], d["final_dir"] = str(self.out_dir), str(self.final_dir)
        d["train_loss"] = [list(p) for p in self.train_loss]
        d["eval_loss"] = [list(p) for p in self.eval_loss]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **override: Any) -> FinetuneResult:
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw.update(override)
        kw["out_dir"], kw["final_dir"] = Path(kw["out_dir"]), Path(kw["final_dir"])
        kw["train_loss"] = [(int(s), float(v)) for s, v in kw["train_loss"]]
        kw["eval_loss"] = [(int(s), float(v)) for s, v in kw["eval_loss"]]
        return cls(**kw)


def data_hash(examples: Sequence[Mapping[str, Any]]) -> str:
    """16 hex digits of sha256 over the canonical JSON of the examples (order counts: it sets the data order)."""
    blob = json.dumps(list(examples), sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def run_identity(cfg: FinetuneConfig, model_revision: str | None, train: Sequence[Mapping[str, Any]],
                 eval: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Everything that must match for a checkpoint to be continued: config, model, data."""
    return {"config": cfg.training_dict(), "model_revision": model_revision,
            "train_hash": data_hash(train), "eval_hash": data_hash(eval)}


def identity_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Human-readable keys where two identities differ (``config.learning_rate: 0.001 != 0.0002``)."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += [f"{key}.{d}" for d in identity_diff(va, vb)]
        elif va != vb:
            out.append(f"{key}: {va!r} != {vb!r}")
    return out

