"""One interface over generation backends, chosen by config.

>>> from lab.generate import GenParams, make_backend
>>> backend = make_backend({"backend": "transformers", "model": "smollm2-135m-instruct",
...                         "batch_size": 8, "threads": 1})                         # doctest: +SKIP
>>> [g.text for g in backend.generate([[{"role": "user", "content": "Capital of France?"}]],
...                                   GenParams(max_new_tokens=16))]             # doctest: +SKIP
['The capital of France is Paris.']

Backends (:data:`BACKENDS`; plugins through the entry-point group ``lab.generation_backends``):

``transformers``  a causal LM from the model store (or a loaded ``(model, tokenizer)`` pair), batched
``vllm``          offline ``vllm.LLM`` (optional extra ``lab[serve-cpu]`` / ``lab[serve-cuda]``)
``vllm-server``   a vLLM OpenAI-compatible server, with its ``structured_outputs`` and ``/metrics``
``llama-cpp``     GGUF-native llama.cpp (optional: ``scripts/setup.sh --with llama-cpp`` builds it)
``openai``        any OpenAI-compatible endpoint; a model spec ``http://host/v1#model`` selects it

Each declares ``supports`` (a subset of :data:`FEATURES`); asking a backend for a feature it lacks
raises :class:`UnsupportedFeatureError` naming the backends that have it. Importing this package is
cheap: torch, transformers, openai, vllm and llama_cpp load when a backend is built.
"""

from __future__ import annotations

from lab.generate import hf, llamacpp, openai_api, vllm_offline  # noqa: F401  (register the backends)
from lab.generate.base import (
    BACKENDS,
    FEATURES,
    Backend,
    Generation,
    GenerationError,
    GenParams,
    Prompt,
    UnsupportedFeatureError,
    make_backend,
    truncate_at_stop,
)
from lab.generate.hf import TransformersBackend
from lab.generate.llamacpp import LlamaCppBackend
from lab.generate.openai_api import OpenAIBackend, VLLMServerBackend
from lab.generate.vllm_metrics import parse_prometheus, server_metrics
from lab.generate.vllm_offline import VLLMBackend

__all__ = [
    "BACKENDS",
    "FEATURES",
    "Backend",
    "GenParams",
    "Generation",
    "GenerationError",
    "LlamaCppBackend",
    "OpenAIBackend",
    "Prompt",
    "TransformersBackend",
    "UnsupportedFeatureError",
    "VLLMBackend",
    "VLLMServerBackend",
    "make_backend",
    "parse_prometheus",
    "server_metrics",
    "truncate_at_stop",
]
