"""The ingested corpus's manifest: one typed record per document, the files that failed, the ones
skipped, and what changed since the previous run (``OUT/manifest.json``).

The file is written with :func:`lab.versioned.write_versioned` under the header
``lab.ingest-manifest`` version :data:`VERSION` and read back with :func:`read_manifest`, which
checks the header first. Every model is a :class:`lab.config.StrictModel`: an unknown key or a
wrong type in a hand-edited manifest fails loudly instead of reaching a study, and so do a page or
section span with ``start > end``, a document's pages that overlap and a document id given twice.
This is the one reader of the file: every other module (provenance, the test set's excerpts and
review app, corpus titles, extraction quality) takes a :class:`Manifest` from :func:`read_manifest`
or :func:`read_manifest_beside` (the manifest of a corpus folder, None when it has none).

Two additions to the issue-30 contract, both optional for readers: ``text_file`` is ``None`` for a
document with no text of its own (a scan without OCR, a page that is only scripts, an exact
duplicate, whose text is in its original's file), so ``OUT/docs`` never holds an empty file that a
corpus loader would reject; and ``skipped`` lists every file found but not ingested (excluded by
a glob, unsupported format, hidden, symlink loop) with the reason, so nothing is dropped silently.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from lab.config import StrictModel
from lab.errors import DataError

#: The header of ``manifest.json``.
FORMAT = "lab.ingest-manifest"
VERSION = 1
#: The command that writes a current manifest (for error messages).
REGENERATE = "lab ingest SRC... --out DIR (or dvc repro ingest)"
#: Its file name, beside the corpus folder: ``OUT/manifest.json`` for ``OUT/docs``.
FILE = "manifest.json"

Format = Literal["pdf", "html", "docx", "markdown", "text"]


class PageSpan(StrictModel):
    """Page ``page`` (1-based) is ``text[start:end]`` of the document's ``.txt``."""

    page: int = Field(ge=1)
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _a_span(self) -> Self:
        _check_span(self)
        return self


class Section(StrictModel):
    """A heading (HTML/DOCX/Markdown, or a PDF outline entry) and the text it covers."""

    title: str
    level: int = Field(ge=1, le=9)
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _a_span(self) -> Self:
        _check_span(self)
        return self


def _check_span(span: PageSpan | Section) -> None:
    if span.start > span.end:
        raise ValueError(f"start {span.start} is after end {span.end}")


class IngestWarning(StrictModel):
    """Something a reader of the text should know (a scanned page, an encrypted or truncated file,
    a guessed encoding, no text at all...). ``page`` is 1-based, or ``None`` for the whole file;
    ``message`` says what happened and what to do."""

    kind: str
    page: int | None = None
    message: str


class DocumentRecord(StrictModel):
    """One ingested source document (the issue-30 contract's record)."""

    id: str
    source: str                       # path relative to its root, as found
    root: str                         # the SRC it was found under, as given
    sha256: str
    bytes: int = Field(ge=0)
    format: Format
    extractor: str
    extractor_version: str
    title: str
    chars: int = Field(ge=0)
    text_file: str | None             # relative to OUT ("docs/pdf/x.pdf.txt"); None: no text of its own
    pages: list[PageSpan] = []
    sections: list[Section] = []
    scanned_pages: list[int] = []
    ocr_pages: list[int] = []
    boilerplate: dict[str, int] = {}
    warnings: list[IngestWarning] = []
    duplicate_of: str | None = None

    @field_validator("pages")
    @classmethod
    def _pages_do_not_overlap(cls, pages: list[PageSpan]) -> list[PageSpan]:
        ordered = sorted(pages, key=lambda p: (p.start, p.end))
        for a, b in itertools.pairwise(ordered):
            if b.start < a.end:
                raise ValueError(f"pages {a.page} ({a.start}..{a.end}) and {b.page} ({b.start}..{b.end}) overlap")
        return pages


class FailedFile(StrictModel):
    """A file that could not be read at all; ``error`` names the file (and page or line) and the fix."""

    source: str
    root: str
    error: str


class SkippedFile(StrictModel):
    """A file or folder found under a root but not ingested, and why."""

    source: str
    root: str
    reason: str


class Changes(StrictModel):
    """Document ids by what happened to them since the previous manifest in the same folder."""

    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    unchanged: list[str] = []


class Manifest(StrictModel):
    """The body of ``manifest.json`` (the header is added and checked by :mod:`lab.versioned`)."""

    documents: list[DocumentRecord]
    failed: list[FailedFile] = []
    skipped: list[SkippedFile] = []
    changes: Changes = Changes()
    options: dict[str, object] = {}
    extractors: dict[str, str] = {}

    @field_validator("documents")
    @classmethod
    def _ids_are_unique(cls, documents: list[DocumentRecord]) -> list[DocumentRecord]:
        seen: set[str] = set()
        for d in documents:
            if d.id in seen:
                raise ValueError(f"document id {d.id!r} occurs twice")
            seen.add(d.id)
        return documents

    def by_id(self) -> dict[str, DocumentRecord]:
        """The records by document id."""
        return {d.id: d for d in self.documents}


def write_manifest(path: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest`` to ``path`` atomically, under its versioned header."""
    from lab.versioned import write_versioned

    return write_versioned(path, FORMAT, VERSION, manifest.model_dump(mode="json"))


def read_manifest(path: str | Path) -> Manifest:
    """The manifest in ``path``.

    Raises
    ------
    DataError
        Missing, not JSON, another format or version, or a record that does not validate (a key
        missing or of the wrong type, a page or section with ``start > end``, pages that overlap, an
        id twice); the message names the file, the key (``documents.3.pages.0.start``) and the
        record's id, and the command that writes a current one.
    """
    from pydantic import ValidationError

    from lab.versioned import read_versioned

    data = read_versioned(path, FORMAT, VERSION, REGENERATE)
    body = {k: v for k, v in data.items() if k not in ("format", "version")}
    try:
        return Manifest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = ".".join(str(p) for p in loc)
        doc = ""
        if len(loc) > 1 and loc[0] == "documents" and isinstance(loc[1], int):
            docs = body.get("documents")
            record = docs[loc[1]] if isinstance(docs, list) and loc[1] < len(docs) else None
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                doc = f"document {record['id']!r}; "
        raise DataError(f"{path}: {where}: {first['msg']} ({doc}{exc.error_count()} problem(s)); "
                        f"write it again with `{REGENERATE}`") from None


def manifest_path(corpus_dir: str | Path) -> Path:
    """Where the manifest of the corpus folder ``corpus_dir`` is when ``lab ingest`` wrote the folder:
    ``<corpus_dir>/../manifest.json`` (the folder's path resolved first, so ``.`` and links work)."""
    return Path(corpus_dir).resolve().parent / FILE


def read_manifest_beside(corpus_dir: str | Path) -> Manifest | None:
    """The manifest of an ingested corpus folder (:func:`manifest_path`, read by :func:`read_manifest`),
    or None when there is no such file (a folder not written by ``lab ingest``: no titles, pages or
    sections).

    Raises
    ------
    DataError
        The file is there but is not a valid manifest of this version (:func:`read_manifest`).
    """
    path = manifest_path(corpus_dir)
    return read_manifest(path) if path.is_file() else None


def diff(previous: Manifest | None, documents: list[DocumentRecord]) -> Changes:
    """What changed from ``previous`` to ``documents``: a document is ``changed`` when its source
    bytes (sha256), its extractor or extractor version, or its text (length, OCR'd pages, whether it
    has a file of its own) differ."""
    old = previous.by_id() if previous is not None else {}
    new = {d.id: d for d in documents}
    changes = Changes(
        added=sorted(i for i in new if i not in old),
        removed=sorted(i for i in old if i not in new),
        changed=sorted(i for i in new if i in old and _identity(new[i]) != _identity(old[i])),
        unchanged=sorted(i for i in new if i in old and _identity(new[i]) == _identity(old[i])),
    )
    return changes


def _identity(d: DocumentRecord) -> tuple[object, ...]:
    return d.sha256, d.extractor, d.extractor_version, d.chars, tuple(d.ocr_pages), d.text_file is None
