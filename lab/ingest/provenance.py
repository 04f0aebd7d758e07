"""Where a span of an ingested document comes from: its pages, its section, a citation label.

The ingest stage writes, per document, a page map (PDF: ``pages: [{page, start, end}]``, character
offsets into the extracted text, end exclusive, contiguous) and a section map (HTML, DOCX,
Markdown headings: ``sections: [{title, level, start, end}]``, a section's range holding its
subsections) into ``OUT/manifest.json`` beside the corpus folder ``OUT/docs``. A chunk carries exact
offsets into that text (:mod:`lab.chunking`), so its provenance is a lookup (:meth:`DocumentMap.locate`):

- pages: the first and the last page the span overlaps; ends are exclusive, so a span ending
  exactly where a page ends stays on that page, and one starting there begins on the next;
- section: the innermost section holding the span's first character, i.e. where a reader starts
  reading (a chunk that runs on past the next heading is cited where it begins, as a page range is
  cited from its first page); None before the first heading;
- :func:`citation`: ``"guide.pdf, p. 4"``, ``"guide.pdf, p. 4-5"``, ``"faq.html, § Continuous Monitoring"``.

The manifest is read by the ingest floor's one typed reader (:func:`lab.ingest.manifest.read_manifest`,
which checks every record: types, ``start <= end``, pages that do not overlap, unique ids); a
:class:`DocumentMap` is built from a :class:`lab.ingest.manifest.DocumentRecord`
(:func:`document_map`) and holds its typed page and section spans.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lab.ingest.manifest import (
    FORMAT,
    DocumentRecord,
    Manifest,
    PageSpan,
    Section,
    manifest_path,
    read_manifest,
)

#: Section titles longer than this are cut (with "...") in a citation label.
MAX_SECTION_CHARS = 100


@dataclass(frozen=True)
class Located:
    """The provenance of one span: ``pages`` ``(first, last)`` (None: the document has no page map
    or the span is on no page), ``section`` (None: no section holds its first character) and
    ``section_path``: the titles of every section holding that character, outermost first (its last
    is ``section``; empty where ``section`` is None)."""

    pages: tuple[int, int] | None
    section: str | None
    section_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentMap:
    """The page and section maps of one ingested document (its manifest record, :func:`document_map`).

    Attributes
    ----------
    id:
        The doc id (the corpus folder's file minus ``.txt``).
    source:
        The original file's path, as found under its source root.
    title:
        The document's title ("" when the extractor found none).
    chars:
        Length of the extracted text (None when not known): a text of another length
        means the manifest is stale and its offsets wrong.
    pages, sections:
        In document order (pages by start, sections by start then outermost first).
    """

    id: str
    source: str
    title: str = ""
    chars: int | None = None
    pages: tuple[PageSpan, ...] = ()
    sections: tuple[Section, ...] = ()

    def locate(self, start: int, end: int) -> Located:
        """The pages ``text[start:end]`` overlaps and the innermost section holding ``text[start]``
        (see the module docstring); an empty span (``start == end``) is located at ``start``.

        Raises
        ------
        ValueError
            ``start`` is negative or after ``end``.
        """
        if start < 0 or end < start:
            raise ValueError(f"{self.id}: span {start}..{end} is not a span (0 <= start <= end)")
        path = self._sections(start)
        return Located(self._pages(start, max(end, start + 1)), path[-1] if path else None, path)

    @cached_property
    def _bounds(self) -> tuple[list[int], list[int]]:
        # pages are sorted (document_map) and do not overlap (the manifest model checks), so starts and
        # ends never decrease
        return [p.start for p in self.pages], [p.end for p in self.pages]

    def _pages(self, start: int, end: int) -> tuple[int, int] | None:
        starts, ends = self._bounds
        first = bisect.bisect_right(ends, start)       # the first page ending after start
        last = bisect.bisect_left(starts, end) - 1     # the last page starting before end
        if first > last:
            return None
        return self.pages[first].page, self.pages[last].page

    def _sections(self, at: int) -> tuple[str, ...]:
        holding = [(i, s) for i, s in enumerate(self.sections) if s.start <= at < s.end]
        # outermost first, the deepest last; among equals (a map whose sections overlap) the one
        # starting last, then the shortest, then the first in the map, is the innermost
        ordered = sorted(holding, key=lambda x: (x[1].level, x[1].start, -x[1].end, -x[0]))
        return tuple(s.title for _, s in ordered)


def citation(document: str, pages: Sequence[int] | None = None, section: str | None = None) -> str:
    """A label naming the document's file and where in it: ``"x.pdf, p. 4"``, ``"x.pdf, p. 4-5"``,
    ``"x.html, § Continuous Monitoring"`` (both when a PDF section is known, the document's file name
    alone when neither is). ``document`` is a source path or a doc id; ``pages`` is ``[first, last]``."""
    name = document.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or document
    parts = [name]
    if pages:
        first, last = pages[0], pages[-1]
        parts.append(f"p. {first}" if first == last else f"p. {first}-{last}")
    if section:
        title = " ".join(section.split())
        if len(title) > MAX_SECTION_CHARS:
            title = title[:MAX_SECTION_CHARS - 3].rstrip() + "..."
        parts.append(f"§ {title}")
    return ", ".join(parts)


def span_fields(doc: DocumentMap, start: int, end: int) -> dict[str, Any]:
    """What a passage ``text[start:end]`` of ``doc`` carries: ``source``, and ``pages`` (``[first, last]``)
    and ``section`` where known (keys left out, not None, where not)."""
    where = doc.locate(start, end)
    out: dict[str, Any] = {"source": doc.source}
    if where.pages is not None:
        out["pages"] = list(where.pages)
    if where.section is not None:
        out["section"] = where.section
    return out


# --------------------------------------------------------------------------- the manifest


def manifest_beside(corpus_dir: str | Path) -> Path | None:
    """``<corpus_dir>/../manifest.json`` (:func:`lab.ingest.manifest.manifest_path`) when the folder was
    ingested, else None. A ``manifest.json`` of another tool there (JSON whose ``format`` is not
    ``lab.ingest-manifest``) is not ours and is ignored; one that is not JSON is returned, so that
    reading it fails loudly."""
    import json

    path = manifest_path(corpus_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return path
    return path if isinstance(data, dict) and data.get("format") == FORMAT else None


def document_map(record: DocumentRecord) -> DocumentMap:
    """The :class:`DocumentMap` of one manifest record: its id, source, title, length, and its page and
    section spans in document order (pages by start; sections by start, then outermost first).
    The record was checked when the manifest was read (:func:`lab.ingest.manifest.read_manifest`)."""
    pages = sorted(record.pages, key=lambda p: (p.start, p.end))
    sections = sorted(record.sections, key=lambda s: (s.start, -s.end))
    return DocumentMap(record.id, record.source, record.title, record.chars, tuple(pages), tuple(sections))


def document_maps(manifest: Manifest | None) -> dict[str, DocumentMap]:
    """Doc id -> :class:`DocumentMap` of every document of ``manifest`` (none without one)."""
    return {} if manifest is None else {d.id: document_map(d) for d in manifest.documents}


def read_document_maps(path: str | Path) -> dict[str, DocumentMap]:
    """Doc id -> :class:`DocumentMap` of every document of the ingest manifest at ``path``.

    Raises
    ------
    DataError
        The file is missing, not JSON, not a ``lab.ingest-manifest`` version 1, or holds a record
        that does not validate (:func:`lab.ingest.manifest.read_manifest` names the file and key).
    """
    return document_maps(read_manifest(path))
