"""``bm25``: lexical retrieval with bm25s (pure-numpy backend)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lab.errors import ConfigError, LabError
from lab.retrieval.base import (
    BM25_METHODS,
    RETRIEVERS,
    BaseRetriever,
    Embed,
    Results,
    Scorer,
    _check,
    _choice,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- bm25


@RETRIEVERS.register("bm25")
class BM25Retriever(BaseRetriever):
    """BM25 with `bm25s <https://github.com/xhluca/bm25s>`_ on its pure-numpy backend (no numba).

    Tokenizer (documents and queries alike): :func:`bm25s.tokenize` — lower-case, words of two or
    more word characters (regex ``(?u)\\b\\w\\w+\\b``, so one-letter words and punctuation drop),
    bm25s's English stopword list when ``stopwords="en"``, then PyStemmer's Snowball stemmer of
    the language ``stemmer`` names: English by default, so "running", "runs" and "run" are one
    token (``stemmer=None`` turns stemming off). Stopwords are removed before stemming.

    Only documents sharing at least one token with the query are returned, so a query may get
    fewer than ``k`` results (none when all its words are stopwords or unseen).

    Parameters
    ----------
    k1, b, delta, method:
        BM25 parameters as in bm25s; ``method`` one of lucene (default), robertson, atire, bm25l,
        bm25+ (``delta`` only matters for the last two).
    stopwords:
        ``"en"`` (default) or None for none.
    stemmer:
        A PyStemmer language (``Stemmer.algorithms()``): ``"english"`` (default), or None for no
        stemming. A saved index keeps the stemmer it was built with.
    """

    name = "bm25"
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {"k1": 1.5, "b": 0.75, "delta": 0.5, "method": "lucene",
                                               "stopwords": "en", "stemmer": "english"}

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, delta: float = 0.5, method: str = "lucene",
                 stopwords: str | None = "en", stemmer: str | None = "english") -> None:
        super().__init__()
        self.k1, self.b, self.delta = (_check(self.name, "k1", k1, "nonneg"), _check(self.name, "b", b, "unit"),
                                       _check(self.name, "delta", delta, "nonneg"))
        self.method = _choice(self.name, "method", method, BM25_METHODS)
        self.stopwords = _check(self.name, "stopwords", stopwords, "str|none")
        self.stemmer = _check(self.name, "stemmer", stemmer, "str|none")
        self._stem = self._make_stemmer(stemmer)
        self._model: Any = None

    @staticmethod
    def _make_stemmer(language: str | None) -> Any:
        if language is None:
            return None
        try:
            import Stemmer
        except ImportError:
            # a dependency of lab, so missing only in an environment not installed from pyproject.toml
            raise ConfigError(f"Retriever 'bm25': stemmer={language!r} needs PyStemmer, which is not "
                              f"installed: pip install PyStemmer (or -r requirements.lock), or set "
                              f"stemmer: null to index without stemming") from None
        try:
            return Stemmer.Stemmer(language)
        except KeyError:
            raise ConfigError(f"Retriever 'bm25': PyStemmer has no stemmer {language!r}; "
                              f"available: {', '.join(Stemmer.algorithms())}") from None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, embed: Embed | None = None,
                  score: Scorer | None = None) -> BM25Retriever:
        return cls(**{k: v for k, v in spec.items() if k != "retriever"})

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Token lists of ``texts`` (the tokenizer described in the class docstring)."""
        import bm25s

        return bm25s.tokenize(list(texts), lower=True, stopwords=self.stopwords, stemmer=self._stem,
                              return_ids=False, show_progress=False)

    def index(self, ids: list[str], texts: list[str]) -> None:
        import bm25s

        self._set_ids(ids, texts)
        tokens = self.tokenize(list(texts))
        if not any(tokens):
            raise LabError(f"bm25.index: none of the {len(tokens)} documents has a token (words of 2+ characters "
                           f"that are not stopwords); nothing could ever match")
        model = bm25s.BM25(k1=self.k1, b=self.b, delta=self.delta, method=self.method, backend="numpy")
        model.index(tokens, show_progress=False)
        self._model = model

    def search(self, queries: list[str], k: int) -> Results:
        queries = self._check_search(queries, k)
        out: Results = []
        m = self._model
        indices, indptr = m.scores["indices"], m.scores["indptr"]
        held = np.zeros(self.count, dtype=bool)
        for tokens in self.tokenize(queries) if queries else []:
            token_ids = m.get_tokens_ids(tokens)
            if not token_ids:
                out.append([])
                continue
            scores = m.get_scores_from_ids(token_ids)
            # documents holding a query token: the CSC columns of those tokens, marked in a mask
            # (a frequent word's column spans most of the corpus; sorting their union costs more)
            held[:] = False
            for t in token_ids:
                held[indices[indptr[t]:indptr[t + 1]]] = True
            docs = np.flatnonzero(held)
            s = scores[docs].astype(np.float64)
            order = np.lexsort((docs, -s))[:k]  # doc position = insertion order
            # .tolist() makes Python ints and floats in one go (per-element numpy scalars are slow)
            out.append(list(zip([self._ids[d] for d in docs[order].tolist()], s[order].tolist(), strict=True)))
        return out

    def params(self) -> dict[str, Any]:
        return {"retriever": self.name, "k1": self.k1, "b": self.b, "delta": self.delta, "method": self.method,
                "stopwords": self.stopwords, "stemmer": self.stemmer}

    def _save_files(self, dir: Path) -> dict[str, Any]:
        import bm25s

        self._model.save(str(dir / "bm25s"), show_progress=False)
        return {"bm25s_version": bm25s.__version__}

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> BM25Retriever:
        import bm25s

        params = dict(meta["params"])
        params.pop("retriever")
        self = cls(**params)
        self._load_ids(dir)
        self._model = bm25s.BM25.load(str(dir / "bm25s"), show_progress=False)
        self._model.backend = "numpy"
        return self


