"""``dense``: exact or approximate nearest neighbours over embeddings (FAISS, :mod:`lab.index`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lab.errors import LabError
from lab.index import (
    DEVICES,
    VectorIndex,
    build_index,
    index_kind,
    index_params,
    load_index,
)
from lab.retrieval.base import (
    RETRIEVERS,
    BaseRetriever,
    Embed,
    Results,
    Scorer,
    _choice,
    _embed_identity,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- dense


@RETRIEVERS.register("dense")
class DenseRetriever(BaseRetriever):
    """Embeds texts with ``embed`` (a :class:`lab.embed.CachedEmbedder`) and searches a FAISS index.

    Parameters
    ----------
    embed:
        ``embed(texts) -> (n, dim)`` float32 L2-normalised rows; used for documents and queries.
    index:
        Index kind from :data:`lab.index.INDEXES` (``flat``, ``hnsw``, ``ivf``).
    device:
        ``auto``, ``cpu`` or ``cuda`` (see :mod:`lab.index`).
    **index_params_ : Any
        Parameters of the index kind (``M``, ``ef_construction``, ``ef_search``; ``nlist``, ``nprobe``).
    """

    name = "dense"
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {"index": "flat", "device": "auto"}

    def __init__(self, embed: Embed, *, index: str = "flat", device: str = "auto", **index_params_: Any) -> None:
        super().__init__()
        if embed is None or not callable(embed):
            raise LabError("dense retriever needs embed=, a callable texts -> vectors "
                           "(e.g. lab.embed.CachedEmbedder(make_embedder('all-minilm-l6-v2')))")
        _choice(self.name, "device", device, DEVICES)
        self.embed, self.kind, self.device = embed, index, device
        self._requested = index_params(index, index_params_)  # fails early on a bad spec
        self._index: VectorIndex | None = None

    @classmethod
    def spec_keys(cls, spec: Mapping[str, Any]) -> list[str]:
        return [*cls.SPEC_DEFAULTS, *index_kind(spec.get("index", "flat")).defaults]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, embed: Embed | None = None,
                  score: Scorer | None = None) -> DenseRetriever:
        return cls(embed, **{k: v for k, v in spec.items() if k != "retriever"})  # type: ignore[arg-type]

    def _vectors(self, texts: list[str]) -> np.ndarray:
        vecs = np.asarray(self.embed(texts), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise LabError(f"dense: embed returned shape {vecs.shape} for {len(texts)} texts")
        return vecs

    def index(self, ids: list[str], texts: list[str]) -> None:
        self._set_ids(ids, texts)
        self._index = build_index(self.kind, self._vectors(list(texts)), device=self.device, **self._requested)

    def search(self, queries: list[str], k: int) -> Results:
        queries = self._check_search(queries, k)
        if not queries:
            return []
        assert self._index is not None
        scores, ids = self._index.search(self._vectors(queries), k)
        return [[(self._ids[i], float(s)) for s, i in zip(srow, irow, strict=True) if i >= 0]
                for srow, irow in zip(scores, ids, strict=True)]

    def params(self) -> dict[str, Any]:
        """The spec; index parameters as built (e.g. ivf's ``nlist`` chosen or lowered) once indexed."""
        built = self._index.params() if self._index is not None else self._requested
        return {"retriever": self.name, "index": self.kind, "device": self.device, **built}

    def _save_files(self, dir: Path) -> dict[str, Any]:
        assert self._index is not None
        self._index.save(dir / "index.faiss")
        return _embed_identity(self.embed)

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> DenseRetriever:
        if embed is None:
            raise LabError(f"{dir}: a dense retriever (embedder {meta.get('embedder')!r}) needs embed= to load, "
                           f"the same embedder it was built with")
        saved, given = meta.get("fingerprint"), _embed_identity(embed)["fingerprint"]
        if saved is not None and given is not None and saved != given:
            raise LabError(f"{dir}: built with embedder {meta.get('embedder')!r} {saved}, but the given embed "
                           f"has fingerprint {given}; queries would not match the stored vectors")
        params = dict(meta["params"])
        params.pop("retriever")
        self = cls(embed, **params)
        self._load_ids(dir)
        self._index = load_index(dir / "index.faiss", device=self.device)
        return self


