"""``hybrid``: fusion of two retrievers' rankings (reciprocal rank or weighted scores)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lab.errors import ConfigError
from lab.retrieval.base import (
    FUSIONS,
    RETRIEVERS,
    BaseRetriever,
    Embed,
    Results,
    Retriever,
    Scorer,
    _check,
    _choice,
    make_retriever,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- hybrid


@RETRIEVERS.register("hybrid")
class HybridRetriever(BaseRetriever):
    """Two retrievers fused per query; each is asked for ``candidates`` results (default max(k, 100)).

    ``fusion="rrf"``: reciprocal rank fusion, ``score(d) = sum over lists of 1 / (rrf_k + rank)``
    with 1-based ranks (a list without ``d`` adds nothing). ``fusion="weighted"``: each list's
    scores min-max normalised per query to [0, 1] (all 1 when they are equal), then
    ``alpha * first + (1 - alpha) * second``, a missing document counting 0; a retriever with
    weight 0 is not searched, so alpha 1 (or 0) gives exactly the first (second) retriever's order.
    By default the first is ``dense`` and the second ``bm25``.
    """

    name = "hybrid"
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {"fusion": "rrf", "rrf_k": 60, "alpha": 0.5, "candidates": None,
                     "retrievers": [{"retriever": "dense"}, {"retriever": "bm25"}]}

    def __init__(self, retrievers: Sequence[Retriever], *, fusion: str = "rrf", rrf_k: float = 60,
                 alpha: float = 0.5, candidates: int | None = None) -> None:
        super().__init__()
        if len(retrievers) != 2:
            raise ConfigError(f"Retriever 'hybrid' fuses exactly 2 retrievers, got {len(retrievers)}")
        self.retrievers = list(retrievers)
        self.fusion = _choice(self.name, "fusion", fusion, FUSIONS)
        self.rrf_k = _check(self.name, "rrf_k", rrf_k, "nonneg")
        self.alpha = _check(self.name, "alpha", alpha, "unit")
        self.candidates = _check(self.name, "candidates", candidates, "posint|none")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, embed: Embed | None = None,
                  score: Scorer | None = None) -> HybridRetriever:
        kw = {k: v for k, v in spec.items() if k != "retriever"}
        subs = kw.pop("retrievers", cls.SPEC_DEFAULTS["retrievers"])
        if not isinstance(subs, list) or not all(isinstance(s, Mapping) for s in subs):
            raise ConfigError(f"Retriever 'hybrid': retrievers must be a list of 2 retriever specs, got {subs!r}")
        return cls([make_retriever(s, embed, score=score) for s in subs], **kw)

    def index(self, ids: list[str], texts: list[str]) -> None:
        self._set_ids(ids, texts)
        for r in self.retrievers:
            r.index(list(ids), list(texts))

    def search(self, queries: list[str], k: int) -> Results:
        queries = self._check_search(queries, k)
        n = self.candidates or max(k, 100)
        weights = [1.0, 1.0] if self.fusion == "rrf" else [self.alpha, 1.0 - self.alpha]
        lists = [r.search(queries, n) if w > 0 else [[] for _ in queries]
                 for r, w in zip(self.retrievers, weights, strict=True)]
        out: Results = []
        for per_query in zip(*lists, strict=True):
            fused: dict[str, float] = {}
            for ranked, w in zip(per_query, weights, strict=True):
                if self.fusion == "rrf":
                    for rank, (d, _) in enumerate(ranked, start=1):
                        fused[d] = fused.get(d, 0.0) + 1.0 / (self.rrf_k + rank)
                elif ranked and w > 0:
                    s = np.array([x for _, x in ranked], dtype=np.float64)
                    lo, hi = s.min(), s.max()
                    norm = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
                    for (d, _), x in zip(ranked, norm, strict=True):
                        fused[d] = fused.get(d, 0.0) + w * float(x)
            docs = list(fused)
            out.append(self._ranked(docs, [fused[d] for d in docs], k))
        return out

    def params(self) -> dict[str, Any]:
        return {"retriever": self.name, "fusion": self.fusion, "rrf_k": self.rrf_k, "alpha": self.alpha,
                "candidates": self.candidates, "retrievers": [r.params() for r in self.retrievers]}

    def _save_files(self, dir: Path) -> dict[str, Any]:
        for i, r in enumerate(self.retrievers):
            r.save(dir / f"r{i}")
        return {}

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> HybridRetriever:
        return cls._load_composite(dir, meta, {"retrievers": "r*"}, embed=embed, score=score)


