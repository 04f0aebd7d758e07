"""The ``llama-cpp`` backend: GGUF-native generation with llama.cpp (``llama-cpp-python``) on CPU.

Optional: ``llama-cpp-python`` compiles from source here (about 16 minutes on 2 cores), so the
default install does not build it; ``bash scripts/setup.sh --with llama-cpp`` (or
``pip install 'lab[llama-cpp]'`` with ``CMAKE_ARGS=-DLLAMA_CURL=OFF``) does. It is imported when a
backend is built, never at ``import lab``.

The model is a GGUF file: a built-in GGUF model of the store (``smollm2-135m-instruct``,
``qwen2.5-coder-0.5b-instruct``, ``qwen2.5-coder-1.5b-instruct``, through
:func:`lab.models.gguf_file`) or a path to a ``.gguf``. llama.cpp runs the quantised weights as they
are (Q4_K_M / Q4_1), where the ``transformers`` backend runs them dequantised to float32: answers can
differ in places, so compare arms on one backend.

- Chat messages are rendered with the chat template stored in the GGUF (the one transformers uses),
  raw strings are completed as they are.
- Decoding: ``temperature`` 0 is greedy; above 0 samples with ``top_p`` only (no top-k, min-p,
  repeat or typical-p cut, as in the other backends), seeded per request with ``GenParams.seed``.
- ``json_schema``: a GBNF grammar built from the schema by llama.cpp (``LlamaGrammar.from_json_schema``).
- ``choices``: scored, not generated, as in the ``transformers`` backend: each choice's summed
  token log-probability after the prompt; the best one is the answer.
- Prompts run one at a time (llama.cpp's high-level API has one sequence); ``ttft_s`` is the prompt
  evaluation time plus the first decoding step, timed by streaming the answer.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
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

LLAMA_CPP_MISSING = (
    "llama-cpp-python is not installed, so the 'llama-cpp' backend is unavailable. Install it with "
    "`bash scripts/setup.sh --with llama-cpp` (compiles llama.cpp: about 16 minutes on 2 cores), or "
    "`CMAKE_ARGS=-DLLAMA_CURL=OFF pip install 'lab[llama-cpp]'`. Without it, use the 'transformers' "
    "backend (same models, dequantised).")


def import_llama_cpp() -> Any:
    """``import llama_cpp``, or a :class:`LabError` that says how to install it."""
    try:
        import llama_cpp
    except ImportError as e:
        raise LabError(LLAMA_CPP_MISSING) from e
    return llama_cpp


def gguf_path(model: str | Path) -> Path:
    """The GGUF file a model spec names: a ``.gguf`` path, or a built-in GGUF model of the store."""
    from lab.models import ModelNotAvailableError, gguf_file

    p = Path(model).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise LabError(f"llama-cpp backend: GGUF file {p} does not exist")
        return p
    try:
        return gguf_file(str(model))
    except ModelNotAvailableError as e:
        raise LabError(f"llama-cpp backend: {model!r} is not a GGUF model. It takes a path to a .gguf "
                       f"file or a built-in GGUF model ({e}). A fine-tuned or Hugging Face directory runs "
                       f"on the 'transformers' or 'vllm' backend (or convert it with llama.cpp's "
                       f"convert_hf_to_gguf.py).") from e


def choice_grammar_text(choices: Sequence[str]) -> str:
    """A GBNF grammar whose only sentences are ``choices`` (JSON string escaping is valid GBNF)."""
    return "root ::= " + " | ".join(json.dumps(c, ensure_ascii=False) for c in choices) + "\n"


@BACKENDS.register("llama-cpp")
class LlamaCppBackend:
    """Generate with llama.cpp from a GGUF file.

    Parameters
    ----------
    model : str or Path
        A built-in GGUF model name or a path to a ``.gguf`` file.
    n_ctx : int
        Context window (prompt + answer) in tokens; a longer prompt is an error naming it.
    threads : int or None
        CPU threads for decoding and prompt evaluation (llama.cpp's default when None).
    n_batch : int
        Prompt tokens evaluated per step.
    seed : int
        Context seed (each request also sets its own, ``GenParams.seed``).
    n_gpu_layers : int
        Layers offloaded to a GPU (builds with CUDA/Metal only; 0 here).
    """

    name = "llama-cpp"
    supports = frozenset({"json_schema", "choice", "choice_scores", "seed"})

    def __init__(self, model: str, *, n_ctx: int = 4096, threads: int | None = None, n_batch: int = 512,
                 seed: int = 0, n_gpu_layers: int = 0) -> None:
        self._llama_cpp = import_llama_cpp()  # a missing package is the first thing to say
        path = gguf_path(model)
        kw: dict[str, Any] = {"model_path": str(path), "n_ctx": n_ctx, "n_batch": n_batch, "seed": seed,
                              "n_gpu_layers": n_gpu_layers, "verbose": False}
        if threads is not None:
            kw["n_threads"] = kw["n_threads_batch"] = int(threads)
        self.model_name = str(model)
        self.path = path
        self.n_ctx = n_ctx
        self.llm = self._llama_cpp.Llama(**kw)
        self._lock = threading.Lock()  # one sequence: calls from several threads take turns

    # ------------------------------------------------------------------ prompts
    def render(self, prompt: Prompt) -> str:
        """The prompt text: chat messages through the GGUF's chat template, raw strings as they are."""
        if not is_chat(prompt):
            return str(prompt)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise LabError(f"llama-cpp backend: {self.path.name} carries no chat template; pass raw prompt "
                           f"strings instead of chat messages")
        vocab = self.llm._model  # token texts for the template's bos/eos names
        bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        eos = vocab.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
        formatter = Jinja2ChatFormatter(template=template, bos_token=bos, eos_token=eos)
        return formatter(messages=list(prompt)).prompt

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (special tokens in the rendered chat template are parsed as such)."""
        text = self.render(prompt)
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=not is_chat(prompt) and self._adds_bos(),
                                special=True)
        if not ids:
            raise LabError(f"llama-cpp backend: prompt {prompt!r} encodes to no tokens")
        if len(ids) >= self.n_ctx:
            raise LabError(f"llama-cpp backend: a prompt of {len(ids)} tokens does not fit n_ctx={self.n_ctx}; "
                           f"raise n_ctx or shorten the prompt")
        return list(ids)

    def _adds_bos(self) -> bool:
        v = self.llm.metadata.get("tokenizer.ggml.add_bos_token")
        return str(v).lower() in ("true", "1") if v is not None else self.llm.token_bos() >= 0

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Generation]:
        """One :class:`Generation` per prompt, in order (``latency_s``: that prompt's wall time)."""
        check_supported(self, params)
        encoded = [self.encode(p) for p in prompts]
        from lab.progress import bar

        out = []
        with self._lock, bar(total=len(encoded), desc="generating", unit="prompt", leave=False) as shown:
            for ids in encoded:
                out.append(self._choose(ids, params) if params.choices is not None else self._one(ids, params))
                shown.update(1)
        return out

    def _sampling(self, params: GenParams) -> dict[str, Any]:
        greedy = params.temperature == 0
        return {"temperature": 0.0 if greedy else float(params.temperature),
                "top_p": 1.0 if greedy else float(params.top_p), "top_k": 0, "min_p": 0.0,
                "typical_p": 1.0, "repeat_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
                "seed": params.seed}

    def _one(self, ids: list[int], params: GenParams) -> Generation:
        grammar = None
        if params.json_schema is not None:
            grammar = self._llama_cpp.LlamaGrammar.from_json_schema(json.dumps(params.json_schema), verbose=False)
        max_new = min(params.max_new_tokens, self.n_ctx - len(ids))
        t0 = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        finish = "length"
        stream = self.llm.create_completion(ids, max_tokens=max_new, stop=list(params.stop) or None,
                                            grammar=grammar, stream=True, **self._sampling(params))
        for chunk in stream:
            choice = chunk["choices"][0]
            if first is None:
                first = time.perf_counter()
            pieces.append(choice.get("text") or "")
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        latency = time.perf_counter() - t0
        text, cut = truncate_at_stop("".join(pieces), params.stop)
        # tokens generated: what the context holds beyond the prompt, plus the last sampled token,
        # which llama.cpp never evaluates (the end-of-sequence token, the token that reached
        # max_tokens or completed a stop string); the end-of-sequence token counts, as in transformers
        n_out = max(self.llm.n_tokens - len(ids), 0) + (1 if first is not None else 0)
        return Generation(text, len(ids), n_out, latency, (first - t0) if first is not None else None,
                          "stop" if cut else finish, self.name)

    # ------------------------------------------------------------------ constrained choice
    def _choose(self, ids: list[int], params: GenParams) -> Generation:
        choices = list(params.choices or ())
        choice_ids = [self.llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) for c in choices]
        if any(not c for c in choice_ids):
            raise LabError(f"llama-cpp backend: a choice encodes to no tokens: {choices!r}")
        if len(ids) + max(len(c) for c in choice_ids) > self.n_ctx:
            raise LabError(f"llama-cpp backend: prompt and choice do not fit n_ctx={self.n_ctx}")
        t0 = time.perf_counter()
        self.llm.reset()
        self.llm.eval(ids)  # the prompt once; each choice continues from its KV cache
        after_prompt = self._last_logprobs()
        scores = []
        for c in choice_ids:
            self.llm.n_tokens = len(ids)  # drop the previous choice's tokens (eval clears their cache)
            total, logprobs = 0.0, after_prompt
            for j, tok in enumerate(c):
                total += float(logprobs[tok])
                if j + 1 < len(c):
                    self.llm.eval([tok])
                    logprobs = self._last_logprobs()
            scores.append(total)
        best = max(range(len(choices)), key=lambda i: scores[i])
        return Generation(choices[best], len(ids), len(choice_ids[best]), time.perf_counter() - t0, None,
                          "stop", self.name, choice_logprobs=dict(zip(choices, scores, strict=True)))

    def _last_logprobs(self) -> Any:
        """Log-softmax of the logits after the last evaluated token. Read from the context directly:
        the high-level ``Llama`` keeps logits only with ``logits_all=True``, which holds n_ctx x vocab
        floats (2.5 GB for Qwen's 151,936-token vocabulary at n_ctx 4096)."""
        import numpy as np

        n_vocab = self.llm.n_vocab()
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float64)
        m = logits.max()
        return logits - m - math.log(float(np.exp(logits - m).sum()))

    def close(self) -> None:
        """Free the model and its context."""
        if getattr(self, "llm", None) is not None:
            self.llm.close()
        self.llm = None
