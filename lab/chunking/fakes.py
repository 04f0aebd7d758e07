"""A deterministic stand-in for the ``llm`` chunker's generator.

For tests and timings without a model: no randomness, no network, same output on every machine.
The ``semantic`` and ``cluster`` chunkers' model-free embedder is a real one, the ``hashed``
embedder's :class:`lab.embed.HashedBagOfWords`.
"""

from __future__ import annotations

import re


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
