"""A retrieval configuration realised: the retriever spec, embedder and corpus index a sweep
configuration describes, built by the same code for the retrieval study, the RAG arms of the
fine-tune study and serving.

A *configuration* is one row of a sweep (``results/retrieval_sweep/winner.json``'s ``config``):
``chunker``, ``size``, ``overlap``, ``retriever`` (``dense``, ``bm25``, ``hybrid``, ``rerank``),
``embedder`` and optional index / BM25 / fusion keys; other keys are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, DataError

#: Retriever kinds that embed (and so need an ``embedder``).
DENSE = ("dense", "hybrid", "rerank")
_DENSE_KEYS = ("index", "M", "ef_construction", "ef_search", "nlist", "nprobe")
_BM25_KEYS = ("k1", "b", "method", "stopwords", "stemmer")


def retriever_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`lab.retrieval.make_retriever` spec of a configuration.

    Index keys go to the dense retriever and BM25 keys to bm25, inside a hybrid's sub-specs too.
    """
    dense = {"retriever": "dense", **{k: config[k] for k in _DENSE_KEYS if k in config}}
    bm25 = {"retriever": "bm25", **{k: config[k] for k in _BM25_KEYS if k in config}}
    kind = config["retriever"]
    if kind == "dense":
        return dense
    if kind == "bm25":
        return bm25
    if kind == "hybrid":
        return {"retriever": "hybrid", "retrievers": [dense, bm25],
                **{k: config[k] for k in ("fusion", "alpha", "rrf_k") if k in config}}
    return {"retriever": kind}


def config_embedder(config: Mapping[str, Any], store_dir: str | Path | None = None, embed: Any = None) -> Any:
    """A callable ``texts -> vectors`` for the configuration, backed by the embedding store.

    ``embed`` may be an embedder spec (``"hashed-256"``), an :class:`~lab.embed.Embedder` (wrapped
    in a :class:`~lab.embed.CachedEmbedder`) or a ready callable; default: ``config["embedder"]``.
    """
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder

    if embed is None:
        embed = config.get("embedder")
        if not embed:
            raise ConfigError(f"retriever {config['retriever']!r} needs an embedder: set 'embedder' "
                              "in the configuration or pass embed=")
    if isinstance(embed, str):
        embed = make_embedder(embed)
    if hasattr(embed, "encode") and not isinstance(embed, CachedEmbedder):
        return CachedEmbedder(embed, EmbeddingStore(store_dir), progress=True)  # bar only in a stage or a terminal
    return embed


def check_config(config: Any, where: str) -> dict[str, Any]:
    """``config`` (a sweep configuration: ``retriever``, ``embedder``...) if a retriever can be built
    from it. The file holding it is read by :mod:`lab.handoff.winner`.

    Raises
    ------
    DataError
        Not a mapping, or lacks ``retriever`` (or a dense one lacks ``embedder``); the message names
        ``where`` and the key.
    """
    if not isinstance(config, dict):
        raise DataError(f"{where}: key 'config' is missing or not a mapping; a winner.json holds the winning "
                        "configuration under 'config' (written by the retrieval sweep)")
    from lab.retrieval import RETRIEVERS

    kind = config.get("retriever")
    if kind not in RETRIEVERS.names():
        raise DataError(f"{where}: config.retriever is {kind!r}; expected one of {', '.join(RETRIEVERS.names())}")
    if kind in DENSE and not config.get("embedder"):
        raise DataError(f"{where}: config.embedder is missing; a {kind!r} retriever needs an embedder spec")
    return config


class ConfiguredRetriever:
    """A corpus indexed as a configuration says; passages come back without their titles.

    Docs are indexed as ``"<title>\\n\\n<text>"`` (:meth:`lab.data.beir.RetrievalDataset.doc_texts`),
    as the sweep indexed them, so retrieval quality is the sweep's.

    Parameters
    ----------
    config:
        The configuration (:func:`check_config`; a sweep's winner is read by :func:`lab.handoff.winner.read_winner`).
    corpus:
        Doc id -> ``{"title", "text"}``, e.g. :func:`lab.retrieval.sets.squad_corpus`.
    embed, store_dir:
        See :func:`config_embedder`; ignored for ``bm25``.
    """

    def __init__(self, config: Mapping[str, Any], corpus: Mapping[str, Mapping[str, str]], *,
                 embed: Any = None, store_dir: str | Path | None = None) -> None:
        from lab.data.beir import RetrievalDataset
        from lab.retrieval import make_retriever

        if not corpus:
            raise ValueError("ConfiguredRetriever: no documents to index")
        self.config = dict(config)
        self.embed = config_embedder(self.config, store_dir, embed) if self.config["retriever"] in DENSE else None
        self.passages = {doc_id: d["text"] for doc_id, d in corpus.items()}
        self.retriever = make_retriever(retriever_spec(self.config), embed=self.embed)
        ids, texts = RetrievalDataset("corpus", {i: dict(d) for i, d in corpus.items()}, {}, {}).doc_texts()
        self.retriever.index(ids, texts)

    def params(self) -> dict[str, Any]:
        """What built the index, for run params: retriever spec, chunking, embedder, doc count."""
        return {"retriever": self.retriever.params(), "chunker": self.config.get("chunker") or "none",
                "size": self.config.get("size"), "overlap": self.config.get("overlap"),
                "embedder": getattr(self.embed, "name", None), "docs": len(self.passages)}

    def search(self, questions: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """Per question at most ``k`` ``(doc_id, score)``, best first."""
        return self.retriever.search(list(questions), k)

    def contexts(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Per question the texts of its top ``k`` passages, best first (fewer only when the corpus
        holds fewer than ``k`` docs)."""
        return [[self.passages[d] for d, _ in hits] for hits in self.search(questions, k)]


def corpus_retriever(config: Mapping[str, Any], kind: str, paragraphs: Mapping[str, Mapping[str, str]],
                     **kwargs: Any) -> ConfiguredRetriever:
    """A domain task's corpus (id -> ``{"title", "text"}``: SQuAD paragraphs for ``kind="squad"``, a
    test set's documents for ``"documents"``) chunked and indexed as ``config`` says
    (:func:`lab.retrieval.sets.rag_corpus`)."""
    from lab.retrieval.sets import config_chunker, rag_corpus

    return ConfiguredRetriever(config, rag_corpus(kind, paragraphs, config_chunker(config)), **kwargs)


def squad_retriever(config: Mapping[str, Any], paragraphs: Mapping[str, Mapping[str, str]], **kwargs: Any
                    ) -> ConfiguredRetriever:
    """SQuAD paragraphs (id -> ``{"title", "text"}``, e.g. a domain task's) chunked and indexed as
    ``config`` says (:func:`lab.retrieval.sets.squad_corpus`)."""
    return corpus_retriever(config, "squad", paragraphs, **kwargs)
