"""The ``transformers`` backend: a causal LM from the model store, batched ``generate`` on CPU or GPU.

Batches of ``batch_size`` prompts, grouped by length to save padding, are LEFT-padded by hand (the
attention mask and the position ids that ``generate`` derives from it hide the padding), so a
greedy answer is the same alone or in any batch. Sampling seeds torch's RNG with
``GenParams.seed`` at the start of every batch inside ``torch.random.fork_rng`` (the caller's RNG
state is left as it was): the same prompts, seed and ``batch_size`` give the same texts, but a
sampled answer may change when the other prompts of its batch change.

``choices`` are scored, not generated: each choice's summed token log-probability after the prompt
(choice tokenised on its own, as lm-evaluation-harness does); the best one is the answer. A sum
favours short choices; that is what "most likely continuation" means. A choice is scored whole
(``max_new_tokens`` does not cut it) and ``latency_s`` is then the wall time of the whole call.

``ttft_s`` is the time from the start of a batch to the end of its first decoding step (prefill
plus one token), the same for every prompt of the batch.
"""

from __future__ import annotations

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


@BACKENDS.register("transformers")
class TransformersBackend:
    """Generate with a Hugging Face causal LM.

    Parameters
    ----------
    model : str, ModelRef, Path or (model, tokenizer)
        A model spec for :func:`lab.models.resolve` (built-in name, local or fine-tuned directory,
        hub id), or an already loaded pair (used as is: ``dtype`` and ``device`` are ignored).
    batch_size : int
        Prompts per forward pass.
    dtype : str
        ``float32`` (fastest on this CPU), ``bfloat16``, ``float16`` or ``auto``.
    device : str
        ``cpu``, ``cuda``, ``cuda:1``...
    threads : int or None
        ``torch.set_num_threads(threads)`` (process-wide) when given; 1 when other work shares the cores.
    """

    name = "transformers"
    supports = frozenset({"choice", "choice_scores", "batch", "seed"})

    def __init__(self, model: Any, *, batch_size: int = 8, dtype: str = "float32", device: str = "cpu",
                 threads: int | None = None) -> None:
        import torch

        if batch_size < 1:
            raise LabError(f"transformers backend: batch_size must be >= 1, got {batch_size}")
        if threads is not None:
            torch.set_num_threads(int(threads))
        if isinstance(model, tuple | list) and len(model) == 2:
            self.model, self.tokenizer = model
            self.model_name = getattr(self.model, "name_or_path", None) or type(self.model).__name__
        else:
            from lab.models import load_causal_lm

            spec = str(model) if isinstance(model, Path) else model
            self.model, self.tokenizer = load_causal_lm(spec, dtype=dtype, device=device)
            self.model_name = getattr(spec, "name", spec)
        self.model.eval()
        self.batch_size = batch_size
        self.device = self.model.device
        gc = self.model.generation_config
        eos = gc.eos_token_id if gc.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self._keeps_logits = True  # forward() takes logits_to_keep (cleared on the first TypeError)

    # ------------------------------------------------------------------ prompts
    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt: chat messages through the chat template, raw strings as they are."""
        tok = self.tokenizer
        if is_chat(prompt):
            if not getattr(tok, "chat_template", None):
                raise LabError(f"transformers backend: the tokenizer of {self.model_name!r} has no chat "
                               f"template; pass raw prompt strings instead of chat messages")
            # tokenize=False gives a str in every transformers version (tokenize=True returns a
            # BatchEncoding in 5.x); the rendered text already holds the special tokens it needs.
            text = tok.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(prompt)["input_ids"]
        if not ids:
            raise LabError(f"transformers backend: prompt {prompt!r} encodes to no tokens")
        return list(ids)

    def _pad_left(self, rows: Sequence[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Generation]:
        """One :class:`Generation` per prompt, in order (``latency_s`` is the wall time of its batch)."""
        check_supported(self, params)
        encoded = [self.encode(p) for p in prompts]
        if params.choices is not None:
            return self._choose(encoded, params)
        from lab.progress import bar

        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths: less padding
        out: list[Generation | None] = [None] * len(encoded)
        with bar(total=len(order), desc="generating", unit="prompt", leave=False) as shown:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                for i, g in zip(idx, self._generate_batch([encoded[i] for i in idx], params), strict=True):
                    out[i] = g
                shown.update(len(idx))
        return out  # type: ignore[return-value]

    def _generate_batch(self, rows: list[list[int]], params: GenParams) -> list[Generation]:
        import torch
        from transformers import StoppingCriteriaList

        ids, mask = self._pad_left(rows)
        width = ids.shape[1]
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": sampling,
                                  "pad_token_id": self.pad_id}
        if sampling:  # top_k=0: no top-k cut, as in vLLM and the OpenAI API
            kwargs.update(temperature=float(params.temperature), top_p=float(params.top_p), top_k=0)
        t0 = time.perf_counter()
        stopper = _make_stopper(self.tokenizer, width, params.stop)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(params.seed)
            seqs = self.model.generate(input_ids=ids, attention_mask=mask,
                                       stopping_criteria=StoppingCriteriaList([stopper]), **kwargs)
        latency = time.perf_counter() - t0
        ttft = stopper.first_call - t0 if stopper.first_call is not None else None
        gens = []
        for row, prompt in zip(seqs[:, width:].tolist(), rows, strict=True):
            new, finish = self._finish(row, params)
            text, _ = truncate_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), params.stop)
            gens.append(Generation(text, len(prompt), len(new), latency, ttft, finish, self.name))
        return gens

    def _finish(self, row: list[int], params: GenParams) -> tuple[list[int], str]:
        """The tokens this row really generated (to its end-of-sequence or stop string) and why it ended."""
        end = next((j + 1 for j, t in enumerate(row) if t in self.eos_ids), None)
        new, finish = (row[:end], "stop") if end is not None else (row, "length")
        if params.stop:
            # The first prefix whose text holds a stop string is where the stopper halted this row;
            # what follows is padding.
            for j in range(1, len(new) + 1):
                text = self.tokenizer.decode(new[:j], skip_special_tokens=True)
                if any(s in text for s in params.stop):
                    return new[:j], "stop"
        return new, finish

    # ------------------------------------------------------------------ constrained choice
    def _choose(self, encoded: list[list[int]], params: GenParams) -> list[Generation]:
        import torch

        choices = list(params.choices or ())
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        if any(not c for c in choice_ids):
            raise LabError(f"transformers backend: a choice encodes to no tokens: {choices!r}")
        # Batches of similar lengths (less padding), scored in that order, returned in the caller's.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        pairs = [(p, c) for p in order for c in range(len(choices))]
        scores = torch.empty(len(encoded), len(choices), dtype=torch.float64)
        t0 = time.perf_counter()
        if all(len(c) == 1 for c in choice_ids):
            # Every choice one token (yes/no verdicts): one forward pass per prompt, the choices read
            # from the next-token distribution (the same numbers as scoring prompt + choice).
            first = torch.tensor([c[0] for c in choice_ids])
            pairs = []
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                logits = self._logits([encoded[i] for i in rows], keep=1)[:, -1]
                scores[rows] = torch.log_softmax(logits.float(), dim=-1)[:, first].double()
        width = 1 + max(len(c) for c in choice_ids)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            seqs = [encoded[p] + choice_ids[c] for p, c in chunk]
            logprobs = torch.log_softmax(self._logits(seqs, keep=width).float(), dim=-1)
            for row, (p, c) in enumerate(chunk):
                k = len(choice_ids[c])
                # With left padding the choice is the last k tokens, predicted by positions -k-1..-2.
                target = torch.tensor(choice_ids[c], device=logprobs.device)
                scores[p, c] = logprobs[row, -k - 1:-1].gather(-1, target[:, None]).sum().item()
        latency = time.perf_counter() - t0
        best = scores.argmax(dim=1).tolist()
        return [Generation(choices[b], len(encoded[p]), len(choice_ids[b]), latency, None, "stop", self.name,
                           choice_logprobs=dict(zip(choices, scores[p].tolist(), strict=True)))
                for p, b in enumerate(best)]

    def _logits(self, rows: Sequence[list[int]], keep: int) -> Any:
        """Logits of the last ``keep`` positions of left-padded ``rows``: the vocabulary projection of
        the other positions is skipped (``logits_to_keep``; a model without it computes them all)."""
        import torch

        ids, mask = self._pad_left(rows)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # forward() does not derive them from the mask
        with torch.inference_mode():
            if self._keeps_logits:
                try:
                    return self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                                      logits_to_keep=keep).logits[:, -keep:]
                except TypeError:  # an architecture whose forward() has no logits_to_keep
                    self._keeps_logits = False
            return self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[:, -keep:]

    def close(self) -> None:
        """Drop the model (memory is freed once no one else holds it)."""
        self.model = None
        self.tokenizer = None


def _make_stopper(tokenizer: Any, prompt_width: int, stop: Sequence[str]) -> Any:
    """A stopping criterion: ends rows whose new text holds a stop string; notes when the first token came."""
    import torch
    from transformers import StoppingCriteria

    class _Stopper(StoppingCriteria):
        first_call: float | None = None

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            if self.first_call is None:  # called after each decoding step: the first call is the first token
                self.first_call = time.perf_counter()
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if stop:
                texts = tokenizer.batch_decode(input_ids[:, prompt_width:], skip_special_tokens=True)
                for i, text in enumerate(texts):
                    done[i] = any(s in text for s in stop)
            return done

    return _Stopper()
