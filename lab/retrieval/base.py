"""The retriever contract, the registry, argument checks and atomic saving shared by every family.

Every retriever follows :class:`Retriever`: ``index(ids, texts)`` then ``search(queries, k)``,
which gives per query at most ``k`` ``(doc_id, score)`` pairs, best first, equal scores in
insertion order (the order of ``ids`` given to ``index``). ``index`` replaces whatever was indexed
before. ``save(dir)`` writes a folder atomically (a ``retriever.json`` naming the kind and its
params, plus the kind's files); :func:`load_retriever` reads it back, so whoever loads it searches
the very index a study built. :func:`make_retriever` builds one from a spec (see
:mod:`lab.retrieval`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from lab.errors import ConfigError, LabError
from lab.io import atomic_dir, write_json
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
        with atomic_dir(target) as tmp:
            extra = self._save_files(tmp) or {}
            write_json(tmp / "ids.json", self._ids, end="")
            write_json(tmp / META_FILE, {"format": SAVE_FORMAT, "retriever": self.name,
                                         "params": self.params(), "count": self.count, **extra}, end="")
        return target

    def _save_files(self, dir: Path) -> dict[str, Any] | None:
        """Write the kind's own files into ``dir``; return extra entries for ``retriever.json``."""
        raise NotImplementedError

    def _load_ids(self, dir: Path) -> None:
        ids = json.loads((dir / "ids.json").read_text(encoding="utf-8"))
        self._ids, self._pos = ids, {d: i for i, d in enumerate(ids)}

    @classmethod
    def _load_composite(cls, dir: Path, meta: dict[str, Any], subs: dict[str, str], *, embed: Embed | None,
                        score: Scorer | None, **extra: Any) -> Any:
        """Load a retriever made of saved sub-retrievers (hybrid, rerank): ``subs`` maps each
        constructor argument to the sub-folder (or, for a list argument, ``"r*"``) it was saved in;
        the other constructor arguments are the saved spec's ``params``."""
        params = {k: v for k, v in meta["params"].items() if k != "retriever" and k not in subs}
        loaded: dict[str, Any] = {}
        for arg, folder in subs.items():
            if folder.endswith("*"):
                n = len(meta["params"][arg])
                loaded[arg] = [load_retriever(dir / f"{folder[:-1]}{i}", embed, score=score) for i in range(n)]
            else:
                loaded[arg] = load_retriever(dir / folder, embed, score=score)
        self = cls(*loaded.values(), *extra.values(), **params)
        self._load_ids(dir)
        return self

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
