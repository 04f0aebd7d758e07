"""What every extractor returns and raises, the options they share, and the registry of formats.

An extractor turns one source file into an :class:`Extraction`: the text, where each page
(PDF) or heading (HTML, DOCX, Markdown) starts and ends in it, a title, the pages that are scans,
the boilerplate it removed (counted per kind) and warnings. It raises :class:`ExtractError` when
the file cannot be read at all; the message says what is wrong and how to fix it, and names the
page or line when there is one (the caller adds the file's path).

Extractors register under their format name in :data:`EXTRACTORS` (entry-point group
``lab.extractors`` for plugins); :func:`format_of` maps a file suffix to a format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lab.errors import DataError
from lab.ingest.manifest import IngestWarning, PageSpan, Section
from lab.registry import Registry


class ExtractError(DataError):
    """A file that cannot be read at all. ``page`` / ``line`` (1-based) locate the problem when known."""

    def __init__(self, message: str, *, page: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.page = page
        self.line = line

    def located(self, where: str) -> str:
        """The message prefixed with ``where`` (the file) and the page or line."""
        loc = f"page {self.page}: " if self.page is not None else f"line {self.line}: " if self.line is not None else ""
        return f"{where}: {loc}{self.message}"


@dataclass(frozen=True)
class ExtractOptions:
    """Options that change what an extractor produces (part of the cache key).

    Attributes
    ----------
    ocr:
        Read scanned PDF pages (no text layer) with Tesseract. Off by default.
    ocr_lang:
        Tesseract language(s), e.g. ``"eng"`` or ``"eng+deu"``.
    ocr_dpi:
        Resolution pages are rendered at for OCR.
    """

    ocr: bool = False
    ocr_lang: str = "eng"
    ocr_dpi: int = 300

    def identity(self) -> dict[str, object]:
        """What goes into the cache key: only the OCR settings matter when OCR is on."""
        return {"ocr": self.ocr, "ocr_lang": self.ocr_lang, "ocr_dpi": self.ocr_dpi} if self.ocr else {"ocr": False}


#: ``on_page(done, total)``: called after each page of a paged format (progress display).
PageCallback = Callable[[int, int], None]


@dataclass
class Extraction:
    """The text of one document and what is known about it (see :class:`lab.ingest.manifest.DocumentRecord`)."""

    text: str
    title: str
    pages: list[PageSpan] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    scanned_pages: list[int] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)
    boilerplate: dict[str, int] = field(default_factory=dict)
    warnings: list[IngestWarning] = field(default_factory=list)

    def warn(self, kind: str, message: str, page: int | None = None) -> None:
        """Add a warning."""
        self.warnings.append(IngestWarning(kind=kind, page=page, message=message))

    def count(self, kind: str, n: int) -> None:
        """Add ``n`` removed boilerplate items of ``kind`` (kinds with 0 are left out)."""
        if n:
            self.boilerplate[kind] = self.boilerplate.get(kind, 0) + n


class Extractor(Protocol):
    """One format's extractor: a library wrapped, its identity, and the suffixes it reads."""

    #: the format name (``"pdf"``), also the registry key
    format: str
    #: the library doing the work (``"pypdfium2"``)
    name: str
    #: lower-case file suffixes, with the dot
    suffixes: tuple[str, ...]

    def version(self) -> str:
        """The library's version (and its engine's, when it wraps one): part of the cache key."""

    def extract(self, path: Path, options: ExtractOptions, on_page: PageCallback | None = None) -> Extraction:
        """The text of ``path``; raises :class:`ExtractError` when it cannot be read at all."""


#: Format name -> a factory of its extractor. Plugins: entry-point group ``lab.extractors``.
EXTRACTORS: Registry[Callable[[], Extractor]] = Registry("extractors")


def close_sections(marks: list[tuple[str, int, int]], length: int) -> list[Section]:
    """Sections from ``(title, level, start)`` marks in text order: each ends where the next
    heading of the same or a higher level (smaller number) starts, or at ``length``."""
    out = []
    for i, (title, level, start) in enumerate(marks):
        end = next((s for _, lv, s in marks[i + 1:] if lv <= level), length)
        out.append(Section(title=title, level=max(1, min(level, 9)), start=start, end=max(start, end)))
    return out


def clean_title(title: str | None, limit: int = 200) -> str:
    """A title on one line, at most ``limit`` characters; empty when ``title`` is None or blank."""
    return " ".join((title or "").split())[:limit]


#: Characters PDF and Office text layers use that a reader should not see: NUL, PDFium's mark
#: for a hyphen at a line break (U+FFFE, kept as a hyphen), symbol-font bullets in the private use
#: area, no-break spaces. (``str.replace`` per character: ``str.translate`` with a mapping is ten
#: times slower on a long text.)
_REPLACE = (("\x00", ""), ("\ufffe", "-"), ("\uf0a7", "•"), ("\uf0b7", "•"), ("\u00a0", " "))
_TRAILING_SPACE = re.compile(r"[ \t\f\v]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """``text`` with ``\\n`` line ends, without trailing spaces on lines, NULs or the characters
    of :data:`_REPLACE`, at most one blank line in a row, and no blank lines at either end."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for old, new in _REPLACE:
        if old in text:
            text = text.replace(old, new)
    if " \n" in text or "\t\n" in text or text.endswith((" ", "\t", "\f", "\v")) or "\f" in text or "\v" in text:
        text = _TRAILING_SPACE.sub("", text)   # (the checks first: the regex is most of the cost of a page)
    return collapse_blank_lines(text).strip("\n")


def collapse_blank_lines(text: str) -> str:
    """``text`` with runs of blank lines cut to one blank line."""
    return _BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text
