"""One extractor per format, registered in :data:`EXTRACTORS` by format name.

=========  ==================  =============================================================
format     library             module
=========  ==================  =============================================================
pdf        pypdfium2           :mod:`lab.ingest.formats.pdf` (pages, scans, OCR, outline)
html       trafilatura         :mod:`lab.ingest.formats.html` (main content, headings)
docx       python-docx         :mod:`lab.ingest.formats.docx` (body, tables, text boxes, headings)
markdown   markdown-it-py      :mod:`lab.ingest.formats.markdown` (front matter, inline HTML)
text       (decoding only)     :mod:`lab.ingest.formats.text` (the one decoding rule)
=========  ==================  =============================================================

Importing this package registers the built-in extractors; the libraries themselves are imported
only when a file of their format is read. A plugin registers another format through the
entry-point group ``lab.extractors`` (a factory returning an object with ``format``, ``name``,
``suffixes``, ``version()`` and ``extract()``: :class:`lab.ingest.formats.base.Extractor`).
"""

from __future__ import annotations

from lab.ingest.formats import docx, html, markdown, pdf, text  # noqa: F401 (registers the extractors)
from lab.ingest.formats.base import (
    EXTRACTORS,
    ExtractError,
    Extraction,
    ExtractOptions,
    Extractor,
    PageCallback,
)


def suffix_map() -> dict[str, str]:
    """Lower-case file suffix (``".pdf"``) -> format name, over every registered extractor."""
    out: dict[str, str] = {}
    for name in EXTRACTORS.names():
        for suffix in EXTRACTORS.get(name)().suffixes:
            out.setdefault(suffix.lower(), name)
    return out


__all__ = ["EXTRACTORS", "ExtractError", "ExtractOptions", "Extraction", "Extractor", "PageCallback", "suffix_map"]
