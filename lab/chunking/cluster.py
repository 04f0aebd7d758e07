"""``cluster``: Chroma's ClusterSemanticChunker, with exact offsets and an injected embedder.

Algorithm (chunking_evaluation's ``cluster_semantic_chunker.py``, re-written):

1. Split the text into pieces with the recursive splitter (``piece_size`` tokens, no overlap,
   separators ``["\\n\\n", "\\n", ".", "?", "!", " ", ""]``).
2. Embed the pieces; similarity ``S = E @ E.T``; subtract the mean of the strictly upper triangle
   from every entry and set the diagonal to 0.
3. Dynamic programming over piece boundaries: ``dp[i] = max over sizes 1..max_cluster of
   reward(i - size + 1, i) + dp[i - size]`` with ``reward(a, b)`` the sum of the centred matrix over
   ``[a..b] x [a..b]`` and ``max_cluster = size // piece_size``. As in Chroma, ``dp[i]`` starts at 0,
   a candidate must beat it strictly (ties keep the shorter last segment), and when no candidate is
   positive the back-pointer stays at piece 0 (the whole prefix becomes one chunk).
4. A chunk spans from its first piece's start to its last piece's end (Chroma joins the piece
   strings with spaces; here it is the exact document span).

Deliberate differences from Chroma's code, neither of which changes the objective value:

* No n x n matrix: the mean comes from ``|sum E|^2`` and the row norms, and only the band of
  width ``max_cluster`` is computed, so memory and time are O(n * max_cluster). Chroma's matrix,
  its centred copy and ``triu_indices`` hold about 0.6 GB for finance.md's 4,836 pieces and grow
  with n^2. Rewards are accumulated incrementally in float64 instead of re-summing sub-matrices.
* Chroma's fallback to the whole prefix can exceed ``max_cluster`` pieces (it happens when no
  piece among the first ``max_cluster + 1`` has above-mean similarity to a neighbour group). There
  the fallback is a one-piece segment instead, which has the same (zero) total reward, so no chunk
  exceeds ``max_cluster`` pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lab.chunking.base import (
    CHUNKERS,
    DEFAULT_SEPARATORS,
    Chunk,
    EmbedFn,
    callable_id,
    check_positive_int,
    check_text,
    embed_texts,
    make_chunks,
)
from lab.chunking.recursive import RecursiveTokenChunker
from lab.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

Span = tuple[int, int]


def optimal_segmentation(emb: np.ndarray, max_cluster: int) -> list[tuple[int, int]]:
    """Chroma's segmentation of ``n`` embedded pieces into runs of at most ``max_cluster``.

    Parameters
    ----------
    emb : ndarray of shape (n, d)
        Piece embeddings (similarity is their dot product: pass unit rows for cosine).
    max_cluster : int
        Maximum pieces per segment (>= 1).

    Returns
    -------
    list of (first, last)
        Inclusive piece index ranges, in order, covering ``0..n-1``.
    """
    import numpy as np

    emb = np.asarray(emb, dtype=np.float64)
    n = emb.shape[0]
    if n == 0:
        return []
    if n == 1:
        return [(0, 0)]
    k = max_cluster
    total = emb.sum(axis=0)
    off_diagonal = float(total @ total) - float(np.einsum("ij,ij->", emb, emb))
    mean = off_diagonal / (n * (n - 1))  # mean of the strictly upper triangle of S
    # band[a, d] = S[a, a + d] - mean for d = 1..k-1 (0 where a + d >= n); its running sum over d
    # gives the centred similarity of piece a to the pieces a+1..a+d.
    band = np.zeros((n, max(k, 1)), dtype=np.float64)
    for d in range(1, min(k, n)):
        band[: n - d, d] = np.einsum("ij,ij->i", emb[:-d], emb[d:]) - mean
    row_sum = np.cumsum(band, axis=1).tolist()

    dp = [0.0] * n
    back = [0] * n
    for i in range(n):
        best, arg = 0.0, 0  # Chroma: dp[i] starts at 0, segmentation[i] at 0
        reward = 0.0
        for size in range(1, k + 1):
            a = i - size + 1
            if a < 0:
                break
            if size > 1:
                # reward(a, i) = reward(a + 1, i) + 2 * sum_{q=a+1..i} (S[a, q] - mean)
                reward += 2.0 * row_sum[a][i - a]
            candidate = reward + (dp[a - 1] if a >= 1 else 0.0)
            if candidate > best:
                best, arg = candidate, a
        if arg == 0 and i + 1 > k:  # no candidate beat 0 (a real one starts at i - k + 1 > 0)
            arg = i  # one-piece segment, same zero total as Chroma's whole-prefix fallback
        dp[i], back[i] = best, arg
    segments = []
    i = n - 1
    while i >= 0:
        segments.append((back[i], i))
        i = back[i] - 1
    segments.reverse()
    return segments


@CHUNKERS.register("cluster")
class ClusterSemanticChunker:
    """Pieces of ``piece_size`` tokens grouped to maximise within-chunk similarity.

    Parameters
    ----------
    embed : callable
        ``embed(list[str]) -> np.ndarray``, one row per text. Required.
    size : int
        Maximum chunk size in tokens; a chunk holds at most ``size // piece_size`` pieces.
    piece_size : int
        Token size of the recursive splitter's pieces (Chroma's ``min_chunk_size``, default 50).
    separators, encoding :
        Of the piece splitter (see :class:`~lab.chunking.recursive.RecursiveTokenChunker`).
    embed_id : str or None
        Name of the embedder for :meth:`params`; defaults to ``callable_id(embed)``.
    """

    name = "cluster"
    version = 1

    def __init__(self, embed: EmbedFn | None = None, size: int = 400, piece_size: int = 50,
                 separators: Sequence[str] = DEFAULT_SEPARATORS, encoding: str = "cl100k_base",
                 embed_id: str | None = None) -> None:
        if embed is None or not callable(embed):
            raise ConfigError(
                f"{self.name}: needs an embed callable (embed=texts -> array), e.g. a loaded "
                "sentence-transformers model's encode with normalize_embeddings=True"
            )
        self.size = check_positive_int(self.name, "size", size)
        self.piece_size = check_positive_int(self.name, "piece_size", piece_size)
        if self.piece_size > self.size:
            raise ConfigError(
                f"{self.name}: piece_size={piece_size} must not exceed size={size} "
                "(a chunk holds size // piece_size pieces)"
            )
        self.max_cluster = self.size // self.piece_size
        self.embed = embed
        self.embed_id = callable_id(embed, embed_id)
        self._pieces = RecursiveTokenChunker(self.piece_size, 0, separators, encoding)

    def params(self) -> dict[str, Any]:
        return {"chunker": self.name, "version": self.version, "embed": self.embed_id, "size": self.size,
                "piece_size": self.piece_size, "separators": list(self._pieces.separators),
                "encoding": self._pieces.encoding}

    def spans(self, text: str) -> list[Span]:
        pieces = self._pieces.spans(text)
        if len(pieces) <= 1:
            return pieces
        emb = embed_texts(self.embed, [text[s:e] for s, e in pieces], chunker=self.name)
        return [(pieces[a][0], pieces[b][1]) for a, b in optimal_segmentation(emb, self.max_cluster)]

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        text = check_text(text, doc_id)
        if not text.strip():
            return []
        return make_chunks(text, self.spans(text), doc_id)
