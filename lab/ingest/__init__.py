"""Ingestion: your own documents (PDF, HTML, DOCX, Markdown, plain text) as a lab corpus folder.

``lab ingest SRC... --out OUT`` (and the DVC stage ``ingest``) writes ``OUT/docs/<id>.txt``, an
ordinary corpus folder every study reads, and ``OUT/manifest.json``: per document its source, sha256,
extractor, title, the page map (PDF) or section map (headings), scanned pages, boilerplate removed
and warnings; the files that failed (with the file, page or line, and the fix) and the ones skipped.

================================  ==============================================================
:mod:`lab.ingest.ingest`          the two steps: collect (extract or take from the cache), write
:mod:`lab.ingest.discover`        folders walked, globs applied, document ids
:mod:`lab.ingest.formats`         one extractor per format (pypdfium2, trafilatura, python-docx,
                                  markdown-it-py, the text decoder)
:mod:`lab.ingest.boilerplate`     running headers, footers and page numbers of PDF pages
:mod:`lab.ingest.ocr`             Tesseract for scanned pages (off by default)
:mod:`lab.ingest.cache`           the content-addressed extraction cache (re-ingest is incremental)
:mod:`lab.ingest.manifest`        the manifest's typed records, read/write, changes
:mod:`lab.ingest.progress`        bars on a terminal, lines in a log
:mod:`lab.ingest.provenance`      a span of a document -> its pages, section and citation label
================================  ==============================================================

This floor sits above ``models`` and below ``data``: it imports only the base floor (and
:func:`lab.models.cache_dir`). Extractor libraries are imported when a file of their format is read.
"""

from __future__ import annotations

from lab.ingest.ingest import Ingestion, IngestOptions, collect, ingest
from lab.ingest.manifest import DocumentRecord, Manifest, read_manifest

__all__ = ["DocumentRecord", "IngestOptions", "Ingestion", "Manifest", "collect", "ingest", "read_manifest"]
