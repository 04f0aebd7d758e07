"""``recursive``: LangChain's RecursiveCharacterTextSplitter with a token length, with exact offsets.

The algorithm is LangChain's (``langchain_text_splitters`` 1.1.3, ``RecursiveCharacterTextSplitter``
with ``keep_separator=True``, ``strip_whitespace=True``, literal separators), which is also Chroma's
RecursiveTokenChunker: pick the first separator present in the text, split before each occurrence
(the separator starts the next piece), merge consecutive pieces while their summed token lengths stay
within ``size``, keep up to ``overlap`` tokens of trailing pieces for the next chunk, and recurse with
the remaining separators into pieces that are too long. Chunk texts are identical to LangChain's
(``tests/test_chunking.py`` compares them on real corpora and on random text).

Why a port rather than a wrapper: LangChain returns strings only. Its ``add_start_index`` searches
each chunk with ``text.find(chunk, prev_start + prev_len - chunk_overlap)``, mixing a character
length with an overlap counted in *tokens*: with a token length function it starts the search past
the true start and returns a later duplicate or -1. Any search is also ambiguous on repetitive text
("aaaa...", table rules, contract boilerplate), where a monotone forward search can settle on an
earlier occurrence and leave the document's tail uncovered. Carrying (start, end) spans through the
same algorithm gives exact offsets by construction, and is faster (each piece is tokenized once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lab.chunking.base import (
    CHUNKERS,
    DEFAULT_SEPARATORS,
    Chunk,
    check_size_overlap,
    check_text,
    make_chunks,
    strip_span,
)
from lab.errors import ConfigError

Span = tuple[int, int]


def _split_before_separator(text: str, start: int, end: int, sep: str) -> list[Span]:
    """Pieces of ``text[start:end]`` cut before each non-overlapping occurrence of ``sep``.

    Mirrors ``_split_text_with_regex(..., keep_separator=True)``: the separator stays at the start
    of the piece it precedes; empty pieces are dropped; ``sep == ""`` gives single characters.
    """
    if not sep:
        return [(i, i + 1) for i in range(start, end)]
    spans: list[Span] = []
    prev = start
    pos = text.find(sep, start, end)
    while pos != -1:
        if pos > prev:
            spans.append((prev, pos))
        prev = pos
        pos = text.find(sep, pos + len(sep), end)
    if end > prev:
        spans.append((prev, end))
    return spans


class RecursiveSpanSplitter:
    """The recursive split-and-merge on character spans; ``length`` measures ``text[s:e]``."""

    def __init__(self, size: int, overlap: int, separators: Sequence[str],
                 length: Callable[[str], int]) -> None:
        self.size, self.overlap = size, overlap
        self.separators = list(separators)
        self.length = length

    def split(self, text: str) -> list[Span]:
        """Stripped, non-empty chunk spans of ``text`` in document order."""
        return self._split(text, 0, len(text), self.separators)

    def _split(self, text: str, start: int, end: int, separators: list[str]) -> list[Span]:
        separator, rest = separators[-1], []
        for i, sep in enumerate(separators):
            if not sep:
                separator = sep
                break
            if text.find(sep, start, end) != -1:
                separator, rest = sep, separators[i + 1:]
                break
        out: list[Span] = []
        good: list[tuple[int, int, int]] = []  # (start, end, token length)
        for s, e in _split_before_separator(text, start, end, separator):
            n = self.length(text[s:e])
            if n < self.size:
                good.append((s, e, n))
                continue
            if good:
                out.extend(self._merge(text, good))
                good = []
            if rest:
                out.extend(self._split(text, s, e, rest))
            else:
                # LangChain appends an unsplittable piece as is (unstripped); kept for identity.
                out.append((s, e))
        if good:
            out.extend(self._merge(text, good))
        return out

    def _merge(self, text: str, pieces: list[tuple[int, int, int]]) -> list[Span]:
        # LangChain's _merge_splits with separator "" (keep_separator=True), whose length is 0:
        # pieces are contiguous, so a chunk is the span from its first to its last piece.
        docs: list[Span] = []
        current: list[tuple[int, int, int]] = []
        first = 0  # index into current of the first live piece (avoids list.pop(0))
        total = 0
        for piece in pieces:
            n = piece[2]
            if total + n > self.size and len(current) > first:
                s, e = strip_span(text, current[first][0], current[-1][1])
                if e > s:
                    docs.append((s, e))
                while total > self.overlap or (total + n > self.size and total > 0):
                    total -= current[first][2]
                    first += 1
            current.append(piece)
            total += n
        if len(current) > first:
            s, e = strip_span(text, current[first][0], current[-1][1])
            if e > s:
                docs.append((s, e))
        return docs


@CHUNKERS.register("recursive")
class RecursiveTokenChunker:
    """LangChain/Chroma recursive character splitting with lengths in tokens.

    Parameters
    ----------
    size : int
        Maximum summed token length of the pieces of a chunk (> 0).
    overlap : int
        Token budget of trailing pieces carried into the next chunk (0 <= overlap < size).
    separators : sequence of str
        Literal separators, tried in order (default ``["\\n\\n", "\\n", ".", "?", "!", " ", ""]``).
    encoding : str
        tiktoken encoding for the length function (offline, :func:`lab.tokens.get_encoding`).

    Notes
    -----
    Chunks are whitespace-stripped (LangChain's default), so whitespace between chunks may be
    uncovered. Special-token strings in the text are counted as ordinary text. A piece that cannot
    be split further (a single character of >= ``size`` tokens, only possible for tiny sizes) is
    returned as its own chunk, unstripped, exactly as LangChain does.
    """

    name = "recursive"
    version = 1

    def __init__(self, size: int = 250, overlap: int = 0,
                 separators: Sequence[str] = DEFAULT_SEPARATORS, encoding: str = "cl100k_base") -> None:
        self.size, self.overlap = check_size_overlap(self.name, size, overlap)
        if isinstance(separators, str) or not separators or not all(isinstance(s, str) for s in separators):
            raise ConfigError(
                f"{self.name}: separators must be a non-empty list of strings, got {separators!r}"
            )
        self.separators = tuple(separators)
        self.encoding = encoding
        from lab.tokens import get_encoding

        enc = get_encoding(encoding)
        encode = enc.encode_ordinary
        self._splitter = RecursiveSpanSplitter(self.size, self.overlap, self.separators,
                                               lambda s: len(encode(s)))

    def params(self) -> dict[str, Any]:
        return {"chunker": self.name, "version": self.version, "size": self.size,
                "overlap": self.overlap, "separators": list(self.separators), "encoding": self.encoding}

    def spans(self, text: str) -> list[Span]:
        """Chunk spans of ``text`` (no validation; used by chunkers built on pieces)."""
        return self._splitter.split(text)

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        text = check_text(text, doc_id)
        if not text.strip():
            return []
        return make_chunks(text, self.spans(text), doc_id)
