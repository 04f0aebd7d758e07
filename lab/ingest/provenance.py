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

The manifest is read here by a small reader of the keys provenance needs
(:func:`read_document_maps`); the full typed model of the manifest is :mod:`lab.ingest.manifest`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lab.errors import DataError

MANIFEST_FORMAT = "lab.ingest-manifest"
MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"   # beside the corpus folder: OUT/manifest.json for OUT/docs
REGENERATE = "lab ingest SRC... --out OUT"
#: Section titles longer than this are cut (with "...") in a citation label.
MAX_SECTION_CHARS = 100


@dataclass(frozen=True)
class PageSpan:
    """Page ``page`` (1-based) is ``text[start:end]``."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class SectionSpan:
    """A heading's section: ``text[start:end]``, subsections included; ``level`` 1 is the outermost."""

    title: str
    level: int
    start: int
    end: int


@dataclass(frozen=True)
class Located:
    """The provenance of one span: ``pages`` ``(first, last)`` (None: the document has no page map
    or the span is on no page) and ``section`` (None: no section holds its first character)."""

    pages: tuple[int, int] | None
    section: str | None


@dataclass(frozen=True)
class DocumentMap:
    """The page and section maps of one ingested document (its manifest record).

    Attributes
    ----------
    id:
        The doc id (the corpus folder's file minus ``.txt``).
    source:
        The original file's path, as found under its source root.
    title:
        The document's title ("" when the extractor found none).
    chars:
        Length of the extracted text (None when the record does not say): a text of another length
        means the manifest is stale and its offsets wrong.
    pages, sections:
        In document order (pages by start, sections by start then outermost first).
    """

    id: str
    source: str
    title: str = ""
    chars: int | None = None
    pages: tuple[PageSpan, ...] = ()
    sections: tuple[SectionSpan, ...] = ()

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
        return Located(self._pages(start, max(end, start + 1)), self._section(start))

    @cached_property
    def _bounds(self) -> tuple[list[int], list[int]]:
        # pages are sorted and do not overlap (document_map checks), so starts and ends never decrease
        return [p.start for p in self.pages], [p.end for p in self.pages]

    def _pages(self, start: int, end: int) -> tuple[int, int] | None:
        starts, ends = self._bounds
        first = bisect.bisect_right(ends, start)       # the first page ending after start
        last = bisect.bisect_left(starts, end) - 1     # the last page starting before end
        if first > last:
            return None
        return self.pages[first].page, self.pages[last].page

    def _section(self, at: int) -> str | None:
        holding = [s for s in self.sections if s.start <= at < s.end]
        if not holding:
            return None
        # the deepest; among equals (a map whose sections overlap) the one starting last, then the shortest
        return max(holding, key=lambda s: (s.level, s.start, -s.end)).title


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
    """``<corpus_dir>/../manifest.json`` when the folder was ingested, else None. A ``manifest.json``
    of another tool there (JSON whose ``format`` is not ``lab.ingest-manifest``) is not ours and is
    ignored; one that is not JSON is returned, so that reading it fails loudly."""
    import json

    path = Path(corpus_dir).resolve().parent / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return path
    return path if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def _int(rec: Mapping[str, Any], key: str, where: str) -> int:
    value = rec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: {key!r} must be a non-negative integer, got {value!r:.80}; "
                        f"ingest again (`{REGENERATE}`)")
    return value


def document_map(record: Mapping[str, Any], where: str = "manifest") -> DocumentMap:
    """The :class:`DocumentMap` of one manifest record (``documents[i]``: ``id``, ``source``, ``title``,
    ``chars``, ``pages``, ``sections``; other keys ignored).

    Raises
    ------
    DataError
        A key missing or of the wrong type, a page or section with ``start > end``, or pages that
        overlap; the message names ``where`` (file and record) and the key.
    """
    if not isinstance(record, Mapping) or not isinstance(record.get("id"), str) or not record["id"]:
        raise DataError(f"{where}: a document record needs a non-empty 'id'; ingest again (`{REGENERATE}`)")
    doc_id = record["id"]
    where = f"{where} ({doc_id})"
    source = record.get("source", doc_id)
    title = record.get("title") or ""
    if not isinstance(source, str) or not isinstance(title, str):
        raise DataError(f"{where}: 'source' and 'title' must be strings; ingest again (`{REGENERATE}`)")
    chars = _int(record, "chars", where) if record.get("chars") is not None else None
    pages, sections = [], []
    for i, p in enumerate(record.get("pages") or []):
        at = f"{where}: pages[{i}]"
        if not isinstance(p, Mapping):
            raise DataError(f"{at}: not a mapping {{page, start, end}}; ingest again (`{REGENERATE}`)")
        page = PageSpan(_int(p, "page", at), _int(p, "start", at), _int(p, "end", at))
        if page.start > page.end:
            raise DataError(f"{at}: start {page.start} is after end {page.end}; ingest again (`{REGENERATE}`)")
        pages.append(page)
    pages.sort(key=lambda p: (p.start, p.end))
    for a, b in itertools.pairwise(pages):
        if b.start < a.end:
            raise DataError(f"{where}: pages {a.page} ({a.start}..{a.end}) and {b.page} ({b.start}..{b.end}) "
                            f"overlap; ingest again (`{REGENERATE}`)")
    for i, s in enumerate(record.get("sections") or []):
        at = f"{where}: sections[{i}]"
        if not isinstance(s, Mapping) or not isinstance(s.get("title"), str):
            raise DataError(f"{at}: not a mapping {{title, level, start, end}} with a string title; "
                            f"ingest again (`{REGENERATE}`)")
        section = SectionSpan(s["title"], _int(s, "level", at), _int(s, "start", at), _int(s, "end", at))
        if section.start > section.end:
            raise DataError(f"{at}: start {section.start} is after end {section.end}; ingest again (`{REGENERATE}`)")
        sections.append(section)
    sections.sort(key=lambda s: (s.start, -s.end))
    return DocumentMap(doc_id, source, title, chars, tuple(pages), tuple(sections))


def read_document_maps(path: str | Path) -> dict[str, DocumentMap]:
    """Doc id -> :class:`DocumentMap` of every document of the ingest manifest at ``path``.

    Raises
    ------
    DataError
        The file is missing, not JSON, not a ``lab.ingest-manifest`` version 1, has no ``documents``
        list, or holds a malformed record (:func:`document_map`) or one id twice.
    """
    from lab.versioned import read_versioned

    data = read_versioned(path, MANIFEST_FORMAT, MANIFEST_VERSION, REGENERATE)
    docs = data.get("documents")
    if not isinstance(docs, list):
        raise DataError(f"{path}: 'documents' must be a list of records; ingest again (`{REGENERATE}`)")
    out: dict[str, DocumentMap] = {}
    for i, rec in enumerate(docs):
        doc = document_map(rec, f"{path}: documents[{i}]")
        if doc.id in out:
            raise DataError(f"{path}: documents[{i}]: id {doc.id!r} occurs twice; ingest again (`{REGENERATE}`)")
        out[doc.id] = doc
    return out
