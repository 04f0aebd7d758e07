"""Model side of fine-tuning: device choice, building the trainable model, checkpointed weights, loading results.

``full`` trains every weight of the float32 model; ``lora`` adds peft LoRA adapters to a frozen
float32 base; ``qlora`` adds them to a base quantised to 4-bit NF4 by bitsandbytes (CUDA only).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, LabError
from lab.finetune.config import FinetuneConfig

META_FILE = "lab_finetune.json"
QLORA_ON_CPU = (
    "method 'qlora' needs a CUDA GPU. bitsandbytes' CPU 4-bit backward warns 'an autograd kernel was not "
    "registered ... silently incorrect behavior', and in lab's measurements (SmolLM2-135M, 12 steps) the QLoRA "
    "loss did not fall where LoRA's did, so lab refuses to train QLoRA on CPU. Use method: lora on CPU (the same "
    "adapters on the float32 model), or run on a machine with a GPU (device: cuda / auto).")


def resolve_device(cfg: FinetuneConfig) -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; refuses QLoRA off CUDA (see ``QLORA_ON_CPU``)."""
    import torch

    from lab.models import torch_device

    dev = torch_device(cfg.device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise LabError(f"device={cfg.device!r} but torch sees no CUDA GPU (torch {torch.__version__}); "
                       "use device: auto or cpu")
    if cfg.method == "qlora" and not dev.startswith("cuda"):
        raise LabError(QLORA_ON_CPU)
    return dev


def _load_4bit(path: Path, device: str) -> tuple[Any, Any]:
    """Base model quantised to 4-bit NF4 for QLoRA (Dettmers et al. 2023: NF4, double quantisation)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise LabError("method 'qlora' needs bitsandbytes: pip install bitsandbytes") from exc
    from peft import prepare_model_for_kbit_training

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=compute)
    index = torch.device(device).index
    model = AutoModelForCausalLM.from_pretrained(
        str(path), quantization_config=bnb, dtype=compute, local_files_only=True,
        device_map={"": torch.cuda.current_device() if index is None else index})
    # Casts norms (and other non-4-bit weights) to float32, enables input grads for checkpointing.
    # Non-reentrant checkpointing is the variant that works under DDP.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def build_model(cfg: FinetuneConfig, path: Path, device: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` ready to train: the whole model, or LoRA adapters on a frozen base."""
    from lab.models import load_causal_lm

    if cfg.method == "qlora":
        model, tok = _load_4bit(path, device)
    else:
        model, tok = load_causal_lm(str(path), dtype="float32", device=device)
    if cfg.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                          lora_dropout=cfg.lora_dropout, target_modules=list(cfg.target_modules))
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
            names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if not list(m.children())})
            raise ConfigError(f"target_modules {list(cfg.target_modules)}: {exc}. Leaf modules of this model: "
                              f"{', '.join(names)}") from exc
    model.train()
    return model, tok


def count_params(model: Any, method: str) -> tuple[int, int]:
    """``(trainable, total)``; peft's count for adapters (it counts a 4-bit weight's real size)."""
    if method == "full":
        return (sum(p.numel() for p in model.parameters() if p.requires_grad),
                sum(p.numel() for p in model.parameters()))
    return tuple(int(x) for x in model.get_nb_trainable_parameters())  # type: ignore[return-value]


def checkpoint_weights(model: Any, method: str) -> dict[str, Any]:
    """What a checkpoint stores of the model: the whole state (full) or the trainable adapter tensors."""
    if method == "full":
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {k: p.detach().cpu() for k, p in model.named_parameters() if p.requires_grad}


def load_checkpoint_weights(model: Any, method: str, weights: Mapping[str, Any], where: Path) -> None:
    """Put :func:`checkpoint_weights` back into a freshly built model of the same config."""
    if method == "full":
        model.load_state_dict(weights)
        return
    wanted = {k for k, p in model.named_parameters() if p.requires_grad}
    if set(weights) != wanted:
        raise LabError(f"{where}: the saved adapter tensors do not match this model's "
                       f"({len(set(weights) ^ wanted)} names differ); was it written by another config?")
    model.load_state_dict(weights, strict=False)


def load_finetuned(final_dir: str | Path, *, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a ``final/`` folder, ready for generation (left padding).

    A full fine-tune loads as it is; an adapter is loaded onto its base model (the spec recorded in
    ``lab_finetune.json``) with peft, unmerged. A QLoRA adapter loads onto the unquantised base.
    """
    from lab.models import load_causal_lm, resolve

    final_dir = Path(final_dir)
    if not final_dir.is_dir():
        raise LabError(f"{final_dir}: no such folder (expected the final/ folder of a fine-tuning run)")
    meta = json.loads((final_dir / META_FILE).read_text(encoding="utf-8")) if (final_dir / META_FILE).is_file() \
        else {}
    if not (final_dir / "adapter_config.json").is_file():
        return load_causal_lm(str(final_dir), dtype=dtype, device=device)
    from peft import PeftModel
    from transformers import AutoTokenizer

    base = meta.get("base_model", {})
    spec = base.get("spec") or json.loads((final_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    ref = resolve(spec)
    if base.get("revision") and ref.revision != base["revision"]:
        warnings.warn(f"{final_dir}: the base model {spec!r} has changed since the adapter was trained "
                      f"(revision {base['revision']} -> {ref.revision})", stacklevel=2)
    model, _ = load_causal_lm(ref, dtype=dtype, device=device)
    model = PeftModel.from_pretrained(model, str(final_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(final_dir), local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok
