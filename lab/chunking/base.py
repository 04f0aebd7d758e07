"""What every chunker shares: the :class:`Chunk` record, the :class:`Chunker` protocol, the registry
and the checks on parameters and input text.

Conventions of every chunker in :data:`CHUNKERS`
------------------------------------------------
* A chunk carries exact character offsets: ``text[c.start:c.end] == c.text`` always.
* Chunks come in document order: ``start`` and ``end`` never decrease from one chunk to the next.
* Together the chunks cover every non-whitespace character of the document (overlap allowed).
  Whitespace may be left out where a chunker strips it at chunk edges (``recursive``, ``sentence``,
  ``semantic``, ``cluster``, ``llm``), so text between two chunks is whitespace only.
* An empty or whitespace-only document gives ``[]`` (not an error): a corpus may hold empty
  records, and a run should count them, not stop.
* Text with lone surrogates (not valid Unicode) raises :class:`~lab.errors.DataError`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lab.errors import ConfigError, DataError, LabError
from lab.registry import Registry

if TYPE_CHECKING:
    import numpy as np

#: Separators of LangChain's / Chroma's recursive splitter, tried in this order.
DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ".", "?", "!", " ", "")

#: Signature of the embedding callables that ``semantic`` and ``cluster`` take: a batch of texts
#: in, one row per text out (L2-normalised float32 expected; rows are re-normalised anyway).
EmbedFn = Callable[[list[str]], "np.ndarray"]


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document.

    Attributes
    ----------
    doc_id : str
        The id given to :meth:`Chunker.chunk`.
    start, end : int
        Character offsets into the document text (Python ``str`` indices, end exclusive).
    text : str
        ``document_text[start:end]``.
    index : int
        Position of the chunk within its document, from 0.
    """

    doc_id: str
    start: int
    end: int
    text: str
    index: int


@runtime_checkable
class Chunker(Protocol):
    """A document splitter with exact offsets."""

    name: str

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        """Split ``text`` into chunks (see the module docstring for the guarantees)."""
        ...

    def params(self) -> dict[str, Any]:
        """Everything that changes the output: for run params and cache keys."""
        ...


CHUNKERS: Registry[Callable[..., Chunker]] = Registry("chunkers")


def make_chunker(name: str, **kwargs: Any) -> Chunker:
    """Build the chunker registered as ``name`` with ``kwargs``.

    Raises
    ------
    RegistryError
        No chunker is called ``name``; the message lists those that exist.
    ConfigError
        A keyword is not accepted by that chunker (the message lists the accepted ones), or a
        value is invalid (size <= 0, overlap >= size, missing ``embed``/``generate``...).
    """
    factory = CHUNKERS.get(name)
    accepted = accepted_kwargs(factory)
    if accepted is not None:
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(
                f"Chunker {name!r} got unknown argument(s) {', '.join(unknown)}. "
                f"Accepted: {', '.join(accepted) or '(none)'}"
            )
    return factory(**kwargs)


def accepted_kwargs(factory: Callable[..., Any]) -> list[str] | None:
    """Keyword names ``factory`` accepts, in declaration order; None when it takes ``**kwargs``."""
    names = []
    for p in inspect.signature(factory).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(p.name)
    return names


# ---------------------------------------------------------------- parameter checks


def check_positive_int(chunker: str, key: str, value: Any) -> int:
    """``value`` as an int > 0, or a ConfigError naming the chunker, the key and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{chunker}: {key} must be a positive integer, got {value!r}")
    return value


def check_size_overlap(chunker: str, size: Any, overlap: Any, *, size_key: str = "size",
                       overlap_key: str = "overlap") -> tuple[int, int]:
    """Validate a (size, overlap) pair: size > 0, 0 <= overlap < size."""
    size = check_positive_int(chunker, size_key, size)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ConfigError(f"{chunker}: {overlap_key} must be an integer >= 0, got {overlap!r}")
    if overlap >= size:
        raise ConfigError(
            f"{chunker}: {overlap_key}={overlap} must be smaller than {size_key}={size} "
            "(the window would not advance)"
        )
    return size, overlap


def callable_id(fn: Any, given: str | None) -> str:
    """A stable name for an injected callable, for params and cache keys.

    In order: ``given``; for ``fn`` or, for a bound method, its owner: ``name@<sha256[:12]>`` of a
    ``fingerprint()`` dict (as :mod:`lab.embed`'s embedders have), else a ``model_id``/``name``
    string attribute; else module and qualified name. Lambdas and closures all look alike that
    way: pass an explicit id for them.
    """
    if given:
        return given
    for obj in (fn, getattr(fn, "__self__", None)):
        if obj is None:
            continue
        name = getattr(obj, "model_id", None) or getattr(obj, "name", None)
        name = name if isinstance(name, str) and name else None
        fingerprint = getattr(obj, "fingerprint", None)
        if callable(fingerprint):
            blob = json.dumps(fingerprint(), sort_keys=True, default=str).encode("utf-8")
            return f"{name or type(obj).__name__}@{hashlib.sha256(blob).hexdigest()[:12]}"
        if name:
            return name
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


# ---------------------------------------------------------------- text helpers


def check_text(text: Any, doc_id: str) -> str:
    """Return ``text`` if it is a ``str`` of valid Unicode, else raise DataError."""
    if not isinstance(text, str):
        raise DataError(f"document {doc_id!r}: text must be str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: tokenizers would silently replace them
        raise DataError(
            f"document {doc_id!r}: text is not valid Unicode ({exc.reason} at character "
            f"{exc.start}); decode the source with errors='replace' or fix the file"
        ) from None
    return text


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` past whitespace at both edges, as ``str.strip()`` would."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def make_chunks(text: str, spans: Sequence[tuple[int, int]], doc_id: str) -> list[Chunk]:
    """Chunks for ``spans`` of ``text``, numbered in order."""
    return [Chunk(doc_id, s, e, text[s:e], i) for i, (s, e) in enumerate(spans)]


def embed_texts(embed: EmbedFn, texts: list[str], *, chunker: str, batch_size: int = 512) -> np.ndarray:
    """Embed ``texts`` in batches; rows L2-normalised (float64), one per text.

    Raises
    ------
    LabError
        The callable returned the wrong number of rows, a non-2-D array or non-finite values.
    """
    import numpy as np

    parts = []
    for i in range(0, len(texts), batch_size):
        batch = texts[i:i + batch_size]
        rows = np.asarray(embed(batch), dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] != len(batch):
            raise LabError(
                f"{chunker}: embed returned an array of shape {rows.shape} for {len(batch)} texts; "
                "expected one row per text"
            )
        parts.append(rows)
    matrix = np.concatenate(parts, axis=0) if parts else np.zeros((0, 1))
    if not np.all(np.isfinite(matrix)):
        raise LabError(f"{chunker}: embed returned NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero row (empty text, some fake embedders) stays zero: cosine 0 with everything.
    return matrix / np.where(norms > 0, norms, 1.0)
