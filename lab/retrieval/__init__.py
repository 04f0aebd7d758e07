"""Retrievers: ``dense`` (FAISS over embeddings), ``bm25`` (bm25s), ``hybrid`` (fusion), ``rerank``.

Every retriever follows :class:`Retriever`: ``index(ids, texts)`` then ``search(queries, k)``,
which gives per query at most ``k`` ``(doc_id, score)`` pairs, best first, equal scores in
insertion order (the order of ``ids`` given to ``index``). ``index`` replaces whatever was indexed
before. ``save(dir)`` writes a folder atomically (a ``retriever.json`` naming the kind and its
params, plus the kind's files); :func:`load_retriever` reads it back, so a study and the serving
stage search the very same index.

Retrievers are made from a spec, one mapping as found in ``params.yaml``::

    {"retriever": "dense", "index": "hnsw", "M": 32}
    {"retriever": "bm25", "k1": 1.2, "b": 0.75}
    {"retriever": "hybrid", "fusion": "rrf", "retrievers": [{"retriever": "dense"}, {"retriever": "bm25"}]}
    {"retriever": "rerank", "model": "cross-encoder/ms-marco-MiniLM-L6-v2", "base": {"retriever": "bm25"}}

by :func:`make_retriever`; ``params()`` returns such a spec (effective values), so
``make_retriever(r.params(), embed)`` rebuilds the same configuration. The registry
:data:`RETRIEVERS` maps names to classes with the classmethods ``spec_keys(spec)``,
``from_spec(spec, embed=, score=)`` and ``load(dir, meta, embed=, score=)``; plugins register
such classes through the entry-point group ``lab.retrievers``.

bm25s and FAISS are imported inside functions. One module per family (:mod:`~lab.retrieval.dense`,
:mod:`~lab.retrieval.bm25`, :mod:`~lab.retrieval.hybrid`, :mod:`~lab.retrieval.rerank`); the contract,
registry and saving in :mod:`~lab.retrieval.base`; chunk-level retrieval sets in
:mod:`~lab.retrieval.sets`; a sweep configuration realised in :mod:`~lab.retrieval.configured`.
"""

from lab.retrieval import bm25, dense, hybrid, rerank  # noqa: F401  (register the families)
from lab.retrieval.base import (
    BM25_METHODS,
    DEFAULT_CROSS_ENCODER,
    FUSIONS,
    META_FILE,
    RETRIEVERS,
    SAVE_FORMAT,
    BaseRetriever,
    Embed,
    Results,
    Retriever,
    Scorer,
    load_retriever,
    make_retriever,
)
from lab.retrieval.bm25 import BM25Retriever
from lab.retrieval.dense import DenseRetriever
from lab.retrieval.hybrid import HybridRetriever
from lab.retrieval.rerank import CrossEncoderScorer, RerankRetriever

__all__ = [
    "BM25_METHODS", "DEFAULT_CROSS_ENCODER", "FUSIONS", "META_FILE", "RETRIEVERS", "SAVE_FORMAT",
    "BM25Retriever", "BaseRetriever", "CrossEncoderScorer", "DenseRetriever", "Embed", "HybridRetriever",
    "RerankRetriever", "Results", "Retriever", "Scorer", "load_retriever", "make_retriever",
]
