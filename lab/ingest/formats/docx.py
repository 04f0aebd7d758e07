"""DOCX: paragraphs, tables and headings with python-docx.

Why python-docx: the maintained reader of Word's OOXML (MIT, pure Python over lxml), it gives each
paragraph's style, so ``Title`` and ``Heading N`` paragraphs become sections with their level.
Measured on the example corpus (``benchmarks/results/ingest_extractors.json``) it finds as much
text as mammoth and is several times faster.

python-docx's own walk (``Document.iter_inner_content``) skips two places Word keeps text in:
content controls (``w:sdt``: cover pages, tables of revisions) and text boxes
(``w:txbxContent``); on the example corpus that lost up to 5% of a document. So the body is walked
here over python-docx's XML elements: paragraphs (with the text boxes anchored in them, read from
the ``mc:Choice`` branch only: ``mc:Fallback`` repeats them), tables (one line per row, cells
joined by `` | ``, a merged cell once) and the content of content controls, in document order.
Text is still read by python-docx (``Paragraph.text``: runs, hyperlinks, tabs and breaks).

Boilerplate: page headers and footers are not part of the body; their non-blank lines are counted
as ``docx_header_footer_lines``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.ingest.formats.base import (
    EXTRACTORS,
    ExtractError,
    Extraction,
    ExtractOptions,
    PageCallback,
    clean_title,
    close_sections,
    normalize,
)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"


class _HeadingLevels:
    """The heading level of a paragraph, by its style id: python-docx's style lookup walks every
    style of the document, so each style is looked up once per document."""

    def __init__(self) -> None:
        self._levels: dict[str | None, int | None] = {}

    def __call__(self, paragraph: Any) -> int | None:
        sid = paragraph._p.style
        if sid not in self._levels:
            self._levels[sid] = _style_level(paragraph.style)
        return self._levels[sid]


def _style_level(style: Any) -> int | None:
    """1-9 for a ``Title`` / ``Heading N`` style (or a style based on one), else None."""
    for _ in range(4):   # a custom style based on a heading style is a heading too
        if style is None:
            return None
        name = (style.name or "").strip().lower()
        if name == "title":
            return 1
        if name.startswith("heading ") and name[8:].strip().isdigit():
            return min(max(int(name[8:].strip()), 1), 9)
        style = style.base_style
    return None


def _text_boxes(p: Any) -> Iterator[Any]:
    """The paragraphs of the text boxes anchored in paragraph element ``p`` (not their fallbacks)."""
    for box in p.iter(f"{_W}txbxContent"):
        if any(a.tag == f"{_MC}Fallback" for a in box.iterancestors()):
            continue
        yield from box.iter(f"{_W}p")


def _blocks(container: Any, parent: Any) -> Iterator[tuple[str, Any]]:
    """``("p", Paragraph)`` and ``("row", text)`` in document order under the XML ``container``."""
    from docx.text.paragraph import Paragraph

    for child in container.iterchildren():
        if child.tag == f"{_W}p":
            yield "p", Paragraph(child, parent)
            for inner in _text_boxes(child):
                yield "box", Paragraph(inner, parent)
        elif child.tag == f"{_W}tbl":
            for row in _children(child, "tr"):
                cells = [" ".join(" ".join(Paragraph(p, parent).text.split()) for p in _cell_paragraphs(tc)).strip()
                         for tc in _children(row, "tc")]
                line = " | ".join(c for c in cells if c)
                if line:
                    yield "row", line
        elif child.tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from _blocks(content, parent)


def _children(parent: Any, tag: str) -> Iterator[Any]:
    """The ``tag`` children of ``parent`` (table rows ``tr`` of a table, cells ``tc`` of a row),
    those wrapped in a content control (``sdt``/``sdtContent``) included."""
    for child in parent.iterchildren():
        if child.tag == f"{_W}{tag}":
            yield child
        elif child.tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from (c for c in content.iterchildren() if c.tag == f"{_W}{tag}")


def _cell_paragraphs(tc: Any) -> Iterator[Any]:
    """Every paragraph in a cell, nested tables' included, text-box fallbacks left out."""
    for p in tc.iter(f"{_W}p"):
        if not any(a.tag == f"{_MC}Fallback" for a in p.iterancestors()):
            yield p


def _header_footer_lines(document: Any) -> int:
    n = 0
    seen: set[int] = set()
    for section in document.sections:
        for part in (section.header, section.footer, section.first_page_header, section.first_page_footer,
                     section.even_page_header, section.even_page_footer):
            if part.is_linked_to_previous:
                continue
            el = part._element
            if id(el) in seen:
                continue
            seen.add(id(el))
            n += sum(1 for p in part.paragraphs if p.text.strip())
    return n


@EXTRACTORS.register("docx")
class DocxExtractor:
    """Word (.docx) body text with python-docx; headings as sections."""

    format = "docx"
    name = "python-docx"
    suffixes = (".docx",)

    def version(self) -> str:
        from importlib.metadata import version

        return version("python-docx")

    def extract(self, path: Path, options: ExtractOptions, on_page: PageCallback | None = None) -> Extraction:
        import docx

        if not zipfile.is_zipfile(path):
            raise ExtractError("not a .docx file: a .docx is a zip archive of XML and this file is not a zip "
                               "(an old Word .doc, or another format renamed?); convert it to .docx, e.g. "
                               "`soffice --headless --convert-to docx FILE`")
        try:
            document = docx.Document(str(path))
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ExtractError(f"a zip archive but not a Word document ({type(exc).__name__}: {exc}); open it in "
                               "Word or LibreOffice and save it again as .docx") from None
        except Exception as exc:  # noqa: BLE001 (python-docx raises its own errors for a damaged package)
            raise ExtractError(f"a damaged .docx ({type(exc).__name__}: {exc}); open it in Word or LibreOffice "
                               "and save it again") from None
        ex = Extraction(text="", title="")
        lines: list[str] = []
        marks: list[tuple[str, int, int]] = []
        pos = 0
        heading_level = _HeadingLevels()
        for kind, block in _blocks(document.element.body, document):
            text = block if kind == "row" else normalize(block.text)
            if not text.strip():
                continue
            level = heading_level(block) if kind == "p" else None
            if level is not None:
                marks.append((clean_title(text), level, pos))
            lines.append(text)
            pos += len(text) + 1
        ex.text = "\n".join(lines)
        ex.sections = close_sections(marks, len(ex.text))
        ex.count("docx_header_footer_lines", _header_footer_lines(document))
        ex.title = clean_title(document.core_properties.title) or (marks[0][0] if marks else "") or path.stem
        if not ex.text:
            ex.warn("empty_text", "the document body has no text (only images or empty paragraphs)")
        if on_page is not None:
            on_page(1, 1)
        return ex
