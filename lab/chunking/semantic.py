"""``semantic``: Kamradt's breakpoint chunking (as in LangChain's experimental SemanticChunker).

Sentences (:func:`~lab.chunking.sentence.sentence_spans`) are embedded with ``buffer_size``
neighbours on each side; a chunk ends after sentence ``i`` when the cosine distance between the
windows of sentences ``i`` and ``i + 1`` is above the ``breakpoint_percentile`` percentile of all
adjacent distances of the document (``numpy.percentile``, linear interpolation). Differences from
LangChain's version: a window is the exact document span from its first to its last sentence (not
the sentences re-joined with spaces), and the embedder is injected rather than loaded.

Written here rather than wrapped: LangChain's SemanticChunker lives in ``langchain_experimental``
(not a dependency), returns strings without offsets and wants a LangChain ``Embeddings`` object.

With ``max_tokens``, a chunk over the limit is re-packed as whole sentences (the ``sentence``
chunker's packing, no overlap), so no chunk exceeds it except a single over-long token window.
"""

from __future__ import annotations

from typing import Any

from lab.chunking.base import (
    CHUNKERS,
    Chunk,
    EmbedFn,
    callable_id,
    check_positive_int,
    check_text,
    embed_texts,
    make_chunks,
)
from lab.chunking.sentence import pack_spans, sentence_spans, sentence_units
from lab.errors import ConfigError

Span = tuple[int, int]


@CHUNKERS.register("semantic")
class SemanticChunker:
    """Split where adjacent sentence windows are far apart in embedding space.

    Parameters
    ----------
    embed : callable
        ``embed(list[str]) -> np.ndarray`` with one row per text (L2-normalised float32 expected;
        rows are re-normalised). Required: ``lab.chunking`` never loads a model itself.
    buffer_size : int
        Sentences on each side joined to a sentence before embedding (>= 0).
    breakpoint_percentile : float
        Percentile (0-100] of the document's adjacent distances above which a chunk ends.
    max_tokens : int or None
        Optional token limit; longer chunks are re-packed as whole sentences.
    language, encoding : str
        Sentence segmenter language and tiktoken encoding (for ``max_tokens``).
    embed_id : str or None
        Name of the embedder for :meth:`params` (cache keys); defaults to ``callable_id(embed)``.
    """

    name = "semantic"
    version = 1

    def __init__(self, embed: EmbedFn | None = None, buffer_size: int = 1,
                 breakpoint_percentile: float = 95.0, max_tokens: int | None = None,
                 language: str = "en", encoding: str = "cl100k_base", embed_id: str | None = None) -> None:
        if embed is None or not callable(embed):
            raise ConfigError(
                f"{self.name}: needs an embed callable (embed=texts -> array), e.g. a loaded "
                "sentence-transformers model's encode with normalize_embeddings=True"
            )
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 0:
            raise ConfigError(f"{self.name}: buffer_size must be an integer >= 0, got {buffer_size!r}")
        if isinstance(breakpoint_percentile, bool) or not isinstance(breakpoint_percentile, (int, float)) \
                or not 0 < breakpoint_percentile <= 100:
            raise ConfigError(
                f"{self.name}: breakpoint_percentile must be in (0, 100], got {breakpoint_percentile!r}"
            )
        if max_tokens is not None:
            max_tokens = check_positive_int(self.name, "max_tokens", max_tokens)
        self.max_tokens = max_tokens
        self.embed = embed
        self.embed_id = callable_id(embed, embed_id)
        self.buffer_size = buffer_size
        self.breakpoint_percentile = float(breakpoint_percentile)
        self.language = language
        self.encoding = encoding
        from lab.tokens import get_encoding

        self._enc = get_encoding(encoding)

    def params(self) -> dict[str, Any]:
        return {"chunker": self.name, "version": self.version, "embed": self.embed_id,
                "buffer_size": self.buffer_size, "breakpoint_percentile": self.breakpoint_percentile,
                "max_tokens": self.max_tokens, "language": self.language, "encoding": self.encoding}

    def breakpoints(self, text: str, sentences: list[Span]) -> list[int]:
        """Indices ``i`` of the sentences after which a chunk ends."""
        import numpy as np

        n, b = len(sentences), self.buffer_size
        if n < 2:
            return []
        windows = [text[sentences[max(0, i - b)][0]:sentences[min(n - 1, i + b)][1]] for i in range(n)]
        emb = embed_texts(self.embed, windows, chunker=self.name)
        distances = 1.0 - np.einsum("ij,ij->i", emb[:-1], emb[1:])
        threshold = np.percentile(distances, self.breakpoint_percentile)
        return np.flatnonzero(distances > threshold).tolist()

    def spans(self, text: str) -> list[Span]:
        sentences = sentence_spans(text, self.language)
        if not sentences:
            return []
        groups, first = [], 0
        for i in [*self.breakpoints(text, sentences), len(sentences) - 1]:
            groups.append(sentences[first:i + 1])
            first = i + 1
        out: list[Span] = []
        encode = self._enc.encode_ordinary
        for group in groups:
            span = (group[0][0], group[-1][1])
            if self.max_tokens is None or len(encode(text[span[0]:span[1]])) <= self.max_tokens:
                out.append(span)
            else:
                units = sentence_units(text, group, self.max_tokens, self._enc)
                out.extend(pack_spans(text, units, self.max_tokens, 0, encode))
        return out

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        text = check_text(text, doc_id)
        if not text.strip():
            return []
        return make_chunks(text, self.spans(text), doc_id)
