"""Chroma's chunk-retrieval metrics: recall, precision, precision-Ω and IoU over character ranges.

Definitions follow "Evaluating Chunking Strategies for Retrieval" (Smith and Troynikov, Chroma,
2024) as its evaluation code computes them (chunking_evaluation, ``base_evaluation.py``), which the
report calls "token-level" but which works on character offsets:

- a chunk *touches* a reference when their ranges intersect or merely meet
  (``max(starts) <= min(ends)``; a zero-length contact counts for Ω and for the minimum k);
- ``recall = |∪ (reference ∩ retrieved chunk)| / Σ |reference|``;
- ``precision = |∪ (reference ∩ retrieved chunk)| / Σ |retrieved chunk|`` (all k chunks, overlaps
  counted with multiplicity, chunks of other documents included);
- ``iou = |∪ ∩| / (Σ |retrieved chunk| + |references not covered|)``;
- ``precision_omega``: the same numerator when *every* chunk of the document touching a reference
  is retrieved, over the merged union of those chunks and the uncovered reference parts;
- ``k = "min"``: per question, the number of chunks touching a reference (capped at 20, as Chroma).

Written here rather than imported: Chroma's package needs chromadb and OpenAI keys at import, and
these few interval operations are the whole of it. Tested against hand-computed cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Range = tuple[int, int]
#: Chroma caps the "minimum number of chunks" retrieval at 20.
MIN_K_CAP = 20


@dataclass(frozen=True)
class Located:
    """A character range within a named document (a chunk or a reference excerpt)."""

    doc_id: str
    start: int
    end: int


def merge(ranges: Sequence[Range]) -> list[Range]:
    """Union of ranges as sorted disjoint ranges (touching ranges merge)."""
    out: list[Range] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def total(ranges: Sequence[Range]) -> int:
    """Summed length of ranges (no merging)."""
    return sum(e - s for s, e in ranges)


def subtract(ranges: Sequence[Range], cut: Range) -> list[Range]:
    """``ranges`` minus ``cut`` (Chroma's ``difference``: a range that only touches ``cut`` stays)."""
    cs, ce = cut
    out: list[Range] = []
    for s, e in ranges:
        if e < cs or s > ce:
            out.append((s, e))
            continue
        if s < cs:
            out.append((s, cs))
        if e > ce:
            out.append((ce, e))
    return out


def _touch(a: Range, b: Range) -> Range | None:
    s, e = max(a[0], b[0]), min(a[1], b[1])
    return (s, e) if s <= e else None


def _cover(refs: Sequence[Range], chunks: Sequence[Range]) -> tuple[list[Range], list[Range], list[Range], int]:
    """Covered reference parts, touching chunks (merged), uncovered reference parts, count of touching chunks."""
    covered: list[Range] = []
    chunk_union: list[Range] = []
    unused = list(refs)
    touching = 0
    for ch in chunks:
        hit = False
        for ref in refs:
            inter = _touch(ch, ref)
            if inter is not None:
                hit = True
                unused = subtract(unused, inter)
                covered.append(inter)
                chunk_union.append(ch)
        touching += hit
    return merge(covered), merge(chunk_union), unused, touching


def retrieval_scores(references: Sequence[Located], retrieved: Sequence[Located]) -> dict[str, float]:
    """Recall, precision and IoU of ``retrieved`` chunks (all of them count) against ``references``.

    Raises
    ------
    ValueError
        When there are no references or a reference/chunk has ``end < start``.
    """
    if not references:
        raise ValueError("a question needs at least one reference range")
    for r in (*references, *retrieved):
        if r.end < r.start:
            raise ValueError(f"range {r} has end < start")
    refs_by_doc: dict[str, list[Range]] = {}
    for r in references:
        refs_by_doc.setdefault(r.doc_id, []).append((r.start, r.end))
    covered_total, unused_total = 0, 0
    for doc, refs in refs_by_doc.items():
        chunks = [(c.start, c.end) for c in retrieved if c.doc_id == doc]
        covered, _, unused, _ = _cover(refs, chunks)
        covered_total += total(covered)
        unused_total += total(unused)
    ref_len = total([(r.start, r.end) for r in references])
    retrieved_len = total([(c.start, c.end) for c in retrieved])
    return {
        "recall": covered_total / ref_len if ref_len else 0.0,
        "precision": covered_total / retrieved_len if retrieved_len else 0.0,
        "iou": covered_total / (retrieved_len + unused_total) if (retrieved_len + unused_total) else 0.0,
    }


def precision_omega(references: Sequence[Located], doc_chunks: dict[str, np.ndarray]) -> tuple[float, int]:
    """Precision-Ω and the number of chunks touching a reference (the question's minimum k).

    ``doc_chunks[doc_id]`` is an ``(n, 2)`` int array of the (start, end) of every chunk of that document.
    """
    covered_total, denom_total, touching_total = 0, 0, 0
    refs_by_doc: dict[str, list[Range]] = {}
    for r in references:
        refs_by_doc.setdefault(r.doc_id, []).append((r.start, r.end))
    for doc, refs in refs_by_doc.items():
        arr = doc_chunks.get(doc, np.zeros((0, 2), dtype=np.int64))
        lo, hi = min(s for s, _ in refs), max(e for _, e in refs)
        near = arr[(arr[:, 0] <= hi) & (arr[:, 1] >= lo)] if len(arr) else arr  # cheap prefilter
        covered, chunk_union, unused, touching = _cover(refs, [(int(s), int(e)) for s, e in near])
        covered_total += total(covered)
        denom_total += total(merge(chunk_union + unused))
        touching_total += touching
    return (covered_total / denom_total if denom_total else 0.0), touching_total
