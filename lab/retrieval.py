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

bm25s and FAISS are imported inside functions.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from lab.errors import ConfigError, LabError, ModelNotAvailableError
from lab.index import (
    DEVICES,
    VectorIndex,
    build_index,
    index_kind,
    index_params,
    load_index,
    write_json_atomic,
)
from lab.registry import Registry

log = logging.getLogger(__name__)

#: Format version of ``retriever.json``.
SAVE_FORMAT = 1
META_FILE = "retriever.json"
#: Cross-encoder used by ``rerank`` when the spec names none (taken from the local HF cache).
DEFAULT_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L6-v2"
BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FUSIONS = ("rrf", "weighted")

Embed = Callable[[Sequence[str]], np.ndarray]
Scorer = Callable[[str, list[str]], Sequence[float]]
Results = list[list[tuple[str, float]]]


@runtime_checkable
class Retriever(Protocol):
    """What every retriever does; see the module docstring for the contract."""

    name: str

    def index(self, ids: list[str], texts: list[str]) -> None: ...

    def search(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]: ...

    def params(self) -> dict[str, Any]: ...

    def save(self, dir: str | Path) -> Path: ...


#: Retriever classes by name: ``dense``, ``bm25``, ``hybrid``, ``rerank``.
RETRIEVERS: Registry[Any] = Registry("retrievers")


# --------------------------------------------------------------------------- shared machinery


class BaseRetriever:
    """Id bookkeeping, argument checks and atomic saving shared by the built-in retrievers."""

    name: ClassVar[str] = ""
    #: Spec keys with defaults (besides ``retriever``); ``spec_keys`` may add spec-dependent ones.
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}

    # ----- spec
    @classmethod
    def spec_keys(cls, spec: Mapping[str, Any]) -> list[str]:
        """Keys a spec of this retriever may carry (``retriever`` excluded)."""
        return list(cls.SPEC_DEFAULTS)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, embed: Embed | None = None,
                  score: Scorer | None = None) -> BaseRetriever:
        raise NotImplementedError

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> BaseRetriever:
        raise NotImplementedError

    # ----- ids
    def _set_ids(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        if isinstance(ids, str) or isinstance(texts, str):
            raise TypeError(f"{self.name}.index(ids, texts): both must be lists of strings, not a str")
        ids, texts = list(ids), list(texts)
        if len(ids) != len(texts):
            raise LabError(f"{self.name}.index: {len(ids)} ids but {len(texts)} texts")
        if not ids:
            raise LabError(f"{self.name}.index: nothing to index (0 documents)")
        pos = {d: i for i, d in enumerate(ids)}
        if len(pos) != len(ids):
            seen: set[str] = set()
            dups = [d for d in ids if d in seen or seen.add(d)]  # type: ignore[func-returns-value]
            raise LabError(f"{self.name}.index: document ids must be unique; repeated: {dups[:5]}")
        self._ids, self._pos = ids, pos

    @property
    def count(self) -> int:
        """Number of indexed documents."""
        return len(self._ids)

    def _check_search(self, queries: Sequence[str], k: int) -> list[str]:
        if isinstance(queries, str):
            raise TypeError(f"{self.name}.search: queries must be a list of strings, got one str")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{self.name}.search: k must be a positive integer, got {k!r}")
        if not self._ids:
            raise LabError(f"{self.name}.search: nothing indexed; call index(ids, texts) or load_retriever first")
        return list(queries)

    # ----- saving
    def save(self, dir: str | Path) -> Path:
        """Write this retriever to the folder ``dir`` (replaced atomically); returns ``dir``.

        Raises
        ------
        LabError
            Nothing indexed yet, or ``dir`` exists, is not empty and is not a saved retriever
            (it is never replaced then).
        """
        if not self._ids:
            raise LabError(f"{self.name}.save: nothing indexed")
        target = Path(dir)
        if target.exists() and any(target.iterdir()) and not (target / META_FILE).is_file():
            raise LabError(f"{target}: exists, is not empty and holds no {META_FILE}; refusing to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            extra = self._save_files(tmp) or {}
            write_json_atomic(tmp / "ids.json", self._ids)
            write_json_atomic(tmp / META_FILE, {"format": SAVE_FORMAT, "retriever": self.name,
                                                "params": self.params(), "count": self.count, **extra})
            if target.exists():  # os.replace cannot overwrite a non-empty folder: move it aside first
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old / "x")
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _save_files(self, dir: Path) -> dict[str, Any] | None:
        """Write the kind's own files into ``dir``; return extra entries for ``retriever.json``."""
        raise NotImplementedError

    def _load_ids(self, dir: Path) -> None:
        ids = json.loads((dir / "ids.json").read_text(encoding="utf-8"))
        self._ids, self._pos = ids, {d: i for i, d in enumerate(ids)}

    def _ranked(self, doc_ids: Sequence[str], scores: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Top ``k`` of ``doc_ids`` by score desc, ties by insertion order."""
        if not doc_ids:
            return []
        s = np.asarray(scores, dtype=np.float64)
        order = np.lexsort((np.fromiter((self._pos[d] for d in doc_ids), np.int64, len(doc_ids)), -s))[:k]
        return [(doc_ids[i], float(s[i])) for i in order]


def _check(name: str, key: str, value: Any, kind: str) -> Any:
    """Validate one spec value; ConfigError naming the retriever, the key and the value."""
    ok = {
        "posint": not isinstance(value, bool) and isinstance(value, int) and value > 0,
        "posint|none": value is None or (not isinstance(value, bool) and isinstance(value, int) and value > 0),
        "nonneg": not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0,
        "unit": not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 1,
        "str|none": value is None or isinstance(value, str),
    }[kind]
    if not ok:
        what = {"posint": "a positive integer", "posint|none": "a positive integer or null",
                "nonneg": "a number >= 0", "unit": "a number in [0, 1]", "str|none": "a string or null"}[kind]
        raise ConfigError(f"Retriever {name!r}: {key} must be {what}, got {value!r}")
    return value


def _choice(name: str, key: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"Retriever {name!r}: {key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _embed_identity(embed: Any) -> dict[str, Any]:
    fp = getattr(embed, "fingerprint", None)
    return {"embedder": getattr(embed, "name", None) or getattr(embed, "__qualname__", type(embed).__name__),
            "fingerprint": fp() if callable(fp) else None}


def _callable_name(fn: Any) -> str:
    name = getattr(fn, "name", None)
    return name if isinstance(name, str) and name else f"{type(fn).__module__}.{type(fn).__qualname__}"


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
    **index_params:
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

    @property
    def vector_index(self) -> VectorIndex | None:
        """The built :class:`~lab.index.VectorIndex` (None before ``index``)."""
        return self._index

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


# --------------------------------------------------------------------------- bm25


@RETRIEVERS.register("bm25")
class BM25Retriever(BaseRetriever):
    """BM25 with `bm25s <https://github.com/xhluca/bm25s>`_ on its pure-numpy backend (no numba).

    Tokenizer (documents and queries alike): :func:`bm25s.tokenize` — lower-case, words of two or
    more word characters (regex ``(?u)\\b\\w\\w+\\b``, so one-letter words and punctuation drop),
    bm25s's English stopword list when ``stopwords="en"``, then a Snowball stemmer when
    ``stemmer`` names a language (needs PyStemmer, which is not a dependency; off by default).

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
        None (default) or a PyStemmer language such as ``"english"``.
    """

    name = "bm25"
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {"k1": 1.5, "b": 0.75, "delta": 0.5, "method": "lucene", "stopwords": "en", "stemmer": None}

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, delta: float = 0.5, method: str = "lucene",
                 stopwords: str | None = "en", stemmer: str | None = None) -> None:
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
            raise ConfigError(f"Retriever 'bm25': stemmer={language!r} needs PyStemmer, which is not "
                              f"installed (pip install PyStemmer), or set stemmer: null") from None
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
        for tokens in self.tokenize(queries) if queries else []:
            token_ids = m.get_tokens_ids(tokens)
            if not token_ids:
                out.append([])
                continue
            scores = m.get_scores_from_ids(token_ids)
            # documents holding a query token: the CSC columns of those tokens
            docs = np.unique(np.concatenate([indices[indptr[t]:indptr[t + 1]] for t in token_ids]))
            s = scores[docs].astype(np.float64)
            order = np.lexsort((docs, -s))[:k]  # doc position = insertion order
            out.append([(self._ids[int(docs[i])], float(s[i])) for i in order])
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
        params = dict(meta["params"])
        params.pop("retriever")
        params.pop("retrievers")
        subs = [load_retriever(dir / f"r{i}", embed, score=score) for i in range(2)]
        self = cls(subs, **params)
        self._load_ids(dir)
        return self


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
        write_json_atomic(dir / "texts.json", self._texts)
        return {}

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> RerankRetriever:
        params = dict(meta["params"])
        params.pop("retriever")
        params.pop("base")
        self = cls(load_retriever(dir / "base", embed, score=score), score, **params)
        self._load_ids(dir)
        self._texts = json.loads((dir / "texts.json").read_text(encoding="utf-8"))
        return self


# --------------------------------------------------------------------------- entry points


def make_retriever(spec: Mapping[str, Any], embed: Embed | None = None, *,
                   score: Scorer | None = None) -> Retriever:
    """Build the retriever a spec describes (see the module docstring).

    Parameters
    ----------
    spec:
        Mapping with ``retriever`` (a name in :data:`RETRIEVERS`) and that retriever's keys.
    embed:
        Embedding callable for ``dense`` (also inside ``hybrid`` / ``rerank``).
    score:
        Injected ``score(query, texts)`` for ``rerank`` instead of loading a cross-encoder.

    Raises
    ------
    RegistryError
        Unknown retriever or index kind; the message lists what exists.
    ConfigError
        A key the retriever does not accept (the message names the retriever and lists its keys),
        or an invalid value.
    ModelNotAvailableError
        ``rerank`` without ``score`` when its cross-encoder cannot be had offline.
    LabError
        ``dense`` without ``embed``.
    """
    if not isinstance(spec, Mapping) or "retriever" not in spec:
        raise ConfigError(f"A retriever spec must be a mapping with a 'retriever' key "
                          f"({', '.join(RETRIEVERS.names())}), got {spec!r}")
    cls = RETRIEVERS.get(spec["retriever"])
    accepted = cls.spec_keys(spec)
    unknown = sorted(set(spec) - {"retriever"} - set(accepted))
    if unknown:
        raise ConfigError(f"Retriever {spec['retriever']!r} got unknown key(s) {', '.join(unknown)}. "
                          f"Accepted: {', '.join(accepted) or '(none)'}")
    return cls.from_spec(spec, embed=embed, score=score)


def load_retriever(dir: str | Path, embed: Embed | None = None, *, score: Scorer | None = None) -> Retriever:
    """Read a retriever written by ``save(dir)``.

    ``embed`` must be the embedder it was built with (checked by fingerprint when both have one);
    ``score`` replaces a rerank's cross-encoder.

    Raises
    ------
    LabError
        ``dir`` holds no saved retriever, or a newer format, or a dense one lacks ``embed``.
    """
    dir = Path(dir)
    meta_path = dir / META_FILE
    if not meta_path.is_file():
        raise LabError(f"{dir}: no {META_FILE}; not a folder written by a retriever's save()")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != SAVE_FORMAT:
        raise LabError(f"{meta_path}: format {meta.get('format')!r}, this lab reads {SAVE_FORMAT}")
    return RETRIEVERS.get(meta["retriever"]).load(dir, meta, embed=embed, score=score)
