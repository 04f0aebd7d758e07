"""Text checks shared by the data-quality profile and the extraction-quality checks: word shingles,
ftfy's mojibake diagnosis and verified MinHash near-duplicate pairs.

Both :mod:`lab.data.quality` and :mod:`lab.data.extraction_quality` import these; keeping them here
(rather than in one of the two) keeps the import graph free of circles.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from lab.data.corpus import Document

_WORD = re.compile(r"\w+")


def word_shingles(text: str, size: int) -> set[str]:
    """Word ``size``-grams of the lower-cased words (a shorter text is one shingle of all words)."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def mojibake(text: str) -> str | None:
    """Why ftfy's encoding repairs would change ``text`` (None when they would not)."""
    import ftfy

    cfg = ftfy.TextFixerConfig(
        unescape_html=False, remove_terminal_escapes=False, fix_latin_ligatures=False,
        fix_character_width=False, uncurl_quotes=False, fix_line_breaks=False, fix_surrogates=False,
        remove_control_chars=False, normalization=None, explain=True,
    )
    fixed, steps = ftfy.fix_and_explain(text, cfg)
    if fixed == text:
        return None
    at = len(os.path.commonprefix([text, fixed]))
    actions = sorted({step[0] + (f":{step[1]}" if step[1] else "") for step in (steps or [])})
    return (f"ftfy would repair it ({', '.join(actions) or 'fix_encoding'}); first change at char {at}: "
            f"{text[at : at + 30]!r} -> {fixed[at : at + 30]!r}")


def _lsh(cls: Any, threshold: float, num_perm: int) -> Any:
    """A MinHashLSH index at ``threshold``, or the highest lower threshold datasketch can band.

    Near 1.0 (or with few permutations) datasketch finds no banding with two or more bands and
    refuses. Lowering the index threshold only widens the candidate set; candidates are verified
    with the exact Jaccard afterwards, so the reported pairs do not change meaning.
    """
    t = threshold
    while True:
        try:
            return cls(threshold=t, num_perm=num_perm)
        except ValueError:
            if t <= 0.1:
                raise
            t = round(t - 0.05, 2)


def near_duplicates(
    docs: Sequence[Document], shingles: Sequence[set[str]], hashes: Sequence[str], threshold: float, num_perm: int
) -> list[tuple[str, str, float]]:
    """Verified near-duplicate pairs ``(doc_a, doc_b, jaccard)``, ``doc_a`` the earlier document.

    ``shingles[i]`` and ``hashes[i]`` belong to ``docs[i]``; documents with an equal hash are exact
    copies and only the first takes part. Pairs have an exact Jaccard >= ``threshold``.
    """
    from datasketch import MinHash, MinHashLSH

    # Only the first copy of each exact-duplicate group takes part: later copies would repeat
    # every pair of the first one, and are already reported as exact duplicates.
    first: dict[str, int] = {}
    keep = [i for i, s in enumerate(shingles) if s and first.setdefault(hashes[i], i) == i]
    if len(keep) < 2:
        return []
    minhashes = MinHash.bulk([[s.encode("utf-8") for s in shingles[i]] for i in keep], num_perm=num_perm)
    lsh = _lsh(MinHashLSH, threshold, num_perm)
    for i, mh in zip(keep, minhashes, strict=True):
        lsh.insert(i, mh)
    pairs = []
    for i, mh in zip(keep, minhashes, strict=True):
        for j in sorted(lsh.query(mh)):
            if j <= i:
                continue  # each pair once
            a, b = shingles[i], shingles[j]
            jac = len(a & b) / len(a | b)
            if jac >= threshold:
                pairs.append((docs[i].id, docs[j].id, round(jac, 4)))
    return pairs
