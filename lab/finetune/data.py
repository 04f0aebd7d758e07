"""Chat examples -> token ids with answer-only labels; the deterministic example stream; padding.

An example is ``{"messages": [{"role": ..., "content": ...}, ...], "answer": "..."}``. The prompt
is the tokenizer's chat template with ``add_generation_prompt=True``, the target is ``answer`` +
eos; only target tokens carry labels (prompt and padding are ``-100``), so the loss is that of
the answer given the prompt, exactly what generation is asked to do.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lab.errors import DataError, LabError

IGNORE_INDEX = -100  # torch's cross_entropy default ignore_index


@dataclass(frozen=True)
class Encoded:
    """One example as token ids: ``input_ids[:n_prompt]`` is the prompt, the rest the answer + eos."""

    input_ids: tuple[int, ...]
    n_prompt: int

    @property
    def n_answer(self) -> int:
        return len(self.input_ids) - self.n_prompt


@dataclass(frozen=True)
class EncodeStats:
    examples: int
    truncated: int  # longer than max_length: the end of the answer (and its eos) was cut
    dropped: int    # the prompt alone filled max_length: no answer token left to learn from


def _check(example: Any, i: int, what: str) -> None:
    if not isinstance(example, Mapping):
        raise DataError(f"{what}[{i}]: expected a dict with 'messages' and 'answer', got {type(example).__name__}")
    msgs, answer = example.get("messages"), example.get("answer")
    if not isinstance(msgs, list) or not msgs or not all(
            isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in msgs):
        raise DataError(f"{what}[{i}]: 'messages' must be a non-empty list of {{'role': str, 'content': str}}")
    if not isinstance(answer, str) or not answer.strip():
        raise DataError(f"{what}[{i}]: 'answer' must be a non-empty string, got {answer!r}")


def encode_examples(examples: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int,
                    what: str = "train") -> tuple[list[Encoded], EncodeStats]:
    """Tokenise ``examples``; longer than ``max_length`` are cut at the right (counted and warned).

    Right truncation keeps the whole prompt, so what is trained is always the answer's start given
    the instruction the model will really see; cutting the prompt's start instead would train
    answers to instructions the model never read.

    Raises
    ------
    DataError
        An example is malformed (the message names its index), or none has an answer token left.
    """
    if tokenizer.eos_token_id is None:
        raise LabError("the tokenizer has no eos token: the target answer + eos cannot be built")
    out: list[Encoded] = []
    truncated = dropped = 0
    for i, ex in enumerate(examples):
        _check(ex, i, what)
        try:
            prompt = tokenizer.apply_chat_template(list(ex["messages"]), add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # no template, or a template that rejects the roles
            raise LabError(f"{what}[{i}]: the tokenizer's chat template failed ({type(exc).__name__}: {exc}); "
                           "fine-tuning needs a chat model's tokenizer") from exc
        # The template already holds its special tokens: add none twice.
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(ex["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(p) + len(a) > max_length:
            truncated += 1
            if len(p) >= max_length:
                dropped += 1
                continue
        out.append(Encoded(tuple((p + a)[:max_length]), len(p)))
    stats = EncodeStats(len(examples), truncated, dropped)
    if truncated:
        warnings.warn(f"{what}: {truncated} of {len(examples)} examples are longer than max_length={max_length} "
                      f"tokens and were cut at the right; {dropped} of them had no answer token left and were "
                      "dropped. Raise max_length to keep them whole.", stacklevel=3)
    if examples and not out:
        raise DataError(f"{what}: no example has an answer token within max_length={max_length}")
    return out, stats


@lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    import numpy as np

    # A generator of its own per (seed, epoch): the order never depends on global RNG state, so it
    # is the same after a resume and on every worker.
    return tuple(np.random.default_rng([seed, epoch]).permutation(n).tolist())


def stream_slice(n: int, seed: int, start: int, count: int) -> list[int]:
    """Positions ``start .. start+count-1`` of the endless example stream.

    The stream is epoch after epoch, each a fresh permutation of ``range(n)`` drawn from
    ``(seed, epoch)``. Micro-batch ``k`` (0-based over the run) is ``stream_slice(n, seed,
    k * batch_size, batch_size)``: a batch may straddle two epochs, so every batch is full and the
    data position of a checkpoint is one integer.
    """
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        take = min(count - len(out), n - offset)
        out.extend(_epoch_order(n, seed, epoch)[offset:offset + take])
        pos += take
    return out


def pad_groups(batch: Sequence[Encoded], max_waste: float = 0.1) -> list[list[Encoded]]:
    """Split a micro-batch into groups whose padding is at most ``max_waste`` of their tokens.

    One padded batch costs its longest example's length for every row (and attention grows with the
    square of it), which matters where lengths vary widely. The loss is a sum over answer tokens,
    so the groups' summed losses and gradients are the padded batch's, in other float rounding (and,
    with LoRA dropout, other dropout masks: the examples run in another order). Longest first;
    examples of similar length stay together, so short prompts still run batched. The demo's
    prompts vary little (its RAG prompts hold two chunks of similar size), and there it changed
    nothing measurable (LoRA + RAG about 13 s per step either way, cold demo of 2026-12-04).
    """
    if not batch:
        return []
    ordered = sorted(batch, key=lambda e: len(e.input_ids), reverse=True)
    groups: list[list[Encoded]] = [[ordered[0]]]
    for e in ordered[1:]:
        g = groups[-1]
        width = len(g[0].input_ids)          # the group's longest (sorted)
        used = sum(len(x.input_ids) for x in g) + len(e.input_ids)
        if width * (len(g) + 1) - used <= max_waste * width * (len(g) + 1):
            g.append(e)
        else:
            groups.append([e])
    return groups


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example of the batch: ``input_ids``, ``attention_mask``, ``labels``."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, e.n_prompt:n] = ids[row, e.n_prompt:n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
