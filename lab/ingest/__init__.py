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

The names below are imported lazily (PEP 562): ``from lab.ingest import ingest`` works, while
importing :mod:`lab.ingest.manifest` or :mod:`lab.ingest.provenance` (what the readers of an
ingested corpus need) does not import :mod:`lab.ingest.ingest` and the extractors. Code inside
``lab`` imports from the submodule itself, so a stage's derived deps (:mod:`lab.imports`) name it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

#: Each public name -> the submodule defining it.
_WHERE = {"Ingestion": "ingest", "IngestOptions": "ingest", "collect": "ingest", "ingest": "ingest",
          "DocumentRecord": "manifest", "Manifest": "manifest", "read_manifest": "manifest"}

__all__ = ["DocumentRecord", "IngestOptions", "Ingestion", "Manifest", "collect", "ingest", "read_manifest"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """``lab.ingest.ingest`` is the function, as when this package imported it eagerly: the import
    system sets the package's attribute ``ingest`` to the submodule once that is loaded, and a
    public name that is also a submodule's name takes the submodule's object of that name instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
