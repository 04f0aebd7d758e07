"""Deterministic stand-ins for the injected backends of ``semantic``, ``cluster`` and ``llm``.

For tests, timings and notebooks without a model: no randomness, no network, same output on
every machine.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_WORD = re.compile(r"\w+")


class HashedBagOfWords:
    """``embed(texts)``: hashed word counts (crc32 of lower-cased ``\\w+`` words), L2-normalised.

    Texts without a word map to the unit vector on the last dimension, so every row has norm 1.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"fake-hashed-bow-{dim}"

    def __call__(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode("utf-8")) % self.dim] += 1.0
        out[~out.any(axis=1), self.dim - 1] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class EveryNthSplit:
    """``generate(prompt)``: answers ``split_after:`` every ``n``-th piece number shown in the prompt.

    With ``garbage_every=k``, every k-th call answers unparseable text instead (to exercise the
    failure path).
    """

    _PIECE = re.compile(r"<\|start_chunk_(\d+)\|>")

    def __init__(self, n: int = 3, garbage_every: int = 0) -> None:
        self.n, self.garbage_every = n, garbage_every
        self.calls = 0
        self.name = f"fake-every-{n}th-split"

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        if self.garbage_every and self.calls % self.garbage_every == 0:
            return "I think the text is about several things."
        ids = [int(x) for x in self._PIECE.findall(prompt)]
        picks = [i for i in ids if i % self.n == 0]
        return "split_after: " + ", ".join(map(str, picks))
