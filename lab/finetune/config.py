"""A fine-tuning run's config (:class:`lab.config.FinetuneConfig`, re-exported), its result, and the identity
that decides what may be resumed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

# One definition: the run's config is the params model family of lab.config (its training section
# turns into one of these per trained arm, TrainingSpec.finetune_config).
from lab.config.training import FinetuneConfig


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

