"""Chunkers with exact character offsets, behind one registry.

>>> from lab.chunking import make_chunker
>>> chunker = make_chunker("recursive", size=250, overlap=125)
>>> chunks = chunker.chunk(text, doc_id="finance")          # doctest: +SKIP
>>> all(text[c.start:c.end] == c.text for c in chunks)      # doctest: +SKIP
True

Registered names (:data:`CHUNKERS`): ``token``, ``recursive``, ``sentence``, ``semantic``,
``cluster``, ``llm``; plugins add more through the entry-point group ``lab.chunkers``. The
guarantees every chunker keeps are in :mod:`lab.chunking.base`. Importing this package is cheap:
tiktoken, numpy and sentencex load on first use.
"""

from __future__ import annotations

from lab.chunking import cluster, fixed_token, llm, recursive, semantic, sentence  # noqa: F401  (register)
from lab.chunking.base import CHUNKERS, Chunk, Chunker, EmbedFn, make_chunker
from lab.chunking.cluster import ClusterSemanticChunker
from lab.chunking.fixed_token import FixedTokenChunker
from lab.chunking.llm import LLMSemanticChunker
from lab.chunking.recursive import RecursiveTokenChunker
from lab.chunking.semantic import SemanticChunker
from lab.chunking.sentence import SentenceChunker

__all__ = [
    "CHUNKERS",
    "Chunk",
    "Chunker",
    "ClusterSemanticChunker",
    "EmbedFn",
    "FixedTokenChunker",
    "LLMSemanticChunker",
    "RecursiveTokenChunker",
    "SemanticChunker",
    "SentenceChunker",
    "make_chunker",
]
