"""Fine-tuning of causal LMs on chat examples: full, LoRA and QLoRA; atomic checkpoints; exact resume; Ray Train.

Public API::

    from lab.finetune import FinetuneConfig, finetune, finetune_ray, load_finetuned

    result = finetune(train, eval, FinetuneConfig(method="lora", model="smollm2-135m-instruct"), "runs/ft")
    model, tok = load_finetuned(result.final_dir)

Modules: :mod:`~lab.finetune.config` (config, result, run identity), :mod:`~lab.finetune.data`
(answer-only labels, the seeded example stream, padding), :mod:`~lab.finetune.checkpoint` (atomic
checkpoint folders), :mod:`~lab.finetune.model` (building the trainable model, ``load_finetuned``),
:mod:`~lab.finetune.train` (the loop, ``finetune``),
:mod:`~lab.finetune.distributed` (``finetune_ray``). torch, transformers, peft and ray are
imported inside functions: importing this package is cheap.
"""

from lab.finetune.config import FinetuneConfig, FinetuneResult
from lab.finetune.distributed import finetune_ray
from lab.finetune.model import load_finetuned
from lab.finetune.train import finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "finetune_ray", "load_finetuned"]
