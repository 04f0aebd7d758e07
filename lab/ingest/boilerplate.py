"""Running headers, footers and page numbers of paged documents, found and removed.

A PDF page's text starts and ends with what the layout repeats on every page: the document title,
a logo's text, "fedramp.gov page 7". Left in, each repeat becomes a passage a retriever can match
and a chunk boundary the text never had. A line is removed when it is among the first or last
:data:`EDGE_LINES` non-blank lines of its page (fewer on short pages) and either

- it is a page number (``7``, ``Page 7``, ``7 of 40``, ``- 7 -``, ``vii``): kind ``page_numbers``; or
- the same line, digits ignored (so ``page 7`` and ``page 8`` are one line), sits at a page edge on
  at least :data:`MIN_REPEAT` pages and on at least :data:`MIN_SHARE` of the pages with text:
  kind ``header_footer_lines``.

Hand-written on purpose: the PDF libraries give the text of a page, not its running head (that
needs the layout of every page; pdfplumber's crop boxes need a per-document guess of the margins),
and this rule needs only the page texts the extractor already holds.
"""

from __future__ import annotations

import re
from collections import Counter

#: How many non-blank lines at the top and at the bottom of a page are candidates.
EDGE_LINES = 3
#: A repeated edge line is boilerplate when it is on at least this many pages ...
MIN_REPEAT = 3
#: ... and on at least this share of the pages that have text.
MIN_SHARE = 0.3

_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?\d{1,5}(?:\s*(?:of|/)\s*\d{1,5})?$"   # 7, page 7, 7 of 40, 7/40
    r"|^[-–—]\s*\d{1,5}\s*[-–—]$"                      # - 7 -
    r"|^(?=[ivxl]{1,7}$)(?:xl|l?x{0,3})(?:ix|iv|v?i{0,3})$",  # vii (front matter: i to xlix)
    re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


def _key(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split()).lower())


def _edges(lines: list[str]) -> list[int]:
    """Indexes of the first and last :data:`EDGE_LINES` non-blank lines (fewer on a short page: a
    quarter of its lines, at least one, so a page of a few lines keeps its body)."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    k = max(1, min(EDGE_LINES, len(filled) // 4))
    return sorted(set(filled[:k] + filled[-k:]))


def strip_page_furniture(pages: list[list[str]]) -> tuple[list[list[str]], dict[str, int]]:
    """The pages' lines without running headers, footers and page-number lines, and how many of
    each kind were removed (``{"header_footer_lines": n, "page_numbers": m}``, zero counts left out).

    Parameters
    ----------
    pages:
        Each page's lines, in page order (a page with no text is an empty list).
    """
    edges = [_edges(lines) for lines in pages]
    seen: Counter[str] = Counter()
    for lines, idx in zip(pages, edges, strict=True):
        seen.update({_key(lines[i]) for i in idx})
    with_text = sum(1 for lines in pages if any(line.strip() for line in lines))
    need = max(MIN_REPEAT, MIN_SHARE * with_text)
    repeated = {k for k, n in seen.items() if n >= need and k}
    counts = {"header_footer_lines": 0, "page_numbers": 0}
    out = []
    for lines, idx in zip(pages, edges, strict=True):
        drop = set()
        for i in idx:
            text = " ".join(lines[i].split())
            if _PAGE_NUMBER.match(text):
                drop.add(i)
                counts["page_numbers"] += 1
            elif _key(lines[i]) in repeated:
                drop.add(i)
                counts["header_footer_lines"] += 1
        out.append([line for i, line in enumerate(lines) if i not in drop] if drop else lines)
    return out, {k: v for k, v in counts.items() if v}
