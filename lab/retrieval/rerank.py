"""``rerank``: a base retriever's candidates re-scored by a cross-encoder."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lab.errors import ConfigError, LabError, ModelNotAvailableError
from lab.io import write_json
from lab.retrieval.base import (
    DEFAULT_CROSS_ENCODER,
    RETRIEVERS,
    BaseRetriever,
    Embed,
    Results,
    Retriever,
    Scorer,
    _callable_name,
    _check,
    make_retriever,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- rerank


class CrossEncoderScorer:
    """``score(query, texts) -> scores``: a sentence-transformers CrossEncoder from the model store.

    Raises
    ------
    ModelNotAvailableError
        The model cannot be had offline (message from :func:`lab.models.resolve`).
    """

    def __init__(self, model: str = DEFAULT_CROSS_ENCODER, *, device: str | None = None,
                 batch_size: int = 32) -> None:
        from lab.models import resolve

        try:
            ref = resolve(model)
        except ModelNotAvailableError as e:
            raise ModelNotAvailableError(f"rerank: cross-encoder {model!r} is not available. {e}") from e
        if ref.path is None:
            raise LabError(f"rerank: {model!r} is an endpoint; the reranker needs a local cross-encoder")
        from sentence_transformers import CrossEncoder

        self.name, self.revision, self.batch_size = model, ref.revision, batch_size
        self.model = CrossEncoder(str(ref.path), device=device, local_files_only=True)

    def __call__(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        out = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                 show_progress_bar=False, convert_to_numpy=True)
        return [float(x) for x in np.asarray(out).reshape(len(texts), -1)[:, 0]]


@RETRIEVERS.register("rerank")
class RerankRetriever(BaseRetriever):
    """Re-scores the top ``candidates`` of ``base`` with ``score(query, texts)``, keeps the best ``k``.

    ``score`` defaults to a :class:`CrossEncoderScorer` of ``model``. Keeps the document texts
    (the scorer reads them) and saves them with the base retriever.
    """

    name = "rerank"
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {"model": DEFAULT_CROSS_ENCODER, "candidates": 50, "batch_size": 32, "device": None,
                     "base": {"retriever": "dense"}}

    def __init__(self, base: Retriever, score: Scorer | None = None, *, model: str = DEFAULT_CROSS_ENCODER,
                 candidates: int = 50, batch_size: int = 32, device: str | None = None) -> None:
        super().__init__()
        self.base = base
        self.candidates = _check(self.name, "candidates", candidates, "posint")
        self.batch_size = _check(self.name, "batch_size", batch_size, "posint")
        self.device = _check(self.name, "device", device, "str|none")
        self.score = score if score is not None else CrossEncoderScorer(model, device=device, batch_size=batch_size)
        self.model = model if score is None else _callable_name(score)
        self._texts: list[str] = []

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, embed: Embed | None = None,
                  score: Scorer | None = None) -> RerankRetriever:
        kw = {k: v for k, v in spec.items() if k != "retriever"}
        base = kw.pop("base", cls.SPEC_DEFAULTS["base"])
        if not isinstance(base, Mapping):
            raise ConfigError(f"Retriever 'rerank': base must be a retriever spec, got {base!r}")
        return cls(make_retriever(base, embed, score=score), score, **kw)

    def index(self, ids: list[str], texts: list[str]) -> None:
        self._set_ids(ids, texts)
        self._texts = list(texts)
        self.base.index(list(ids), list(texts))

    def search(self, queries: list[str], k: int) -> Results:
        queries = self._check_search(queries, k)
        first = self.base.search(queries, max(k, self.candidates))
        out: Results = []
        for q, ranked in zip(queries, first, strict=True):
            docs = [d for d, _ in ranked]
            scores = list(self.score(q, [self._texts[self._pos[d]] for d in docs]))
            if len(scores) != len(docs):
                raise LabError(f"rerank: scorer {self.model!r} returned {len(scores)} scores for {len(docs)} texts")
            out.append(self._ranked(docs, scores, k))
        return out

    def params(self) -> dict[str, Any]:
        return {"retriever": self.name, "model": self.model, "candidates": self.candidates,
                "batch_size": self.batch_size, "device": self.device, "base": self.base.params()}

    def _save_files(self, dir: Path) -> dict[str, Any]:
        self.base.save(dir / "base")
        write_json(dir / "texts.json", self._texts, end="")
        return {}

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> RerankRetriever:
        self = cls._load_composite(dir, meta, {"base": "base"}, embed=embed, score=score, scorer=score)
        self._texts = json.loads((dir / "texts.json").read_text(encoding="utf-8"))
        return self


