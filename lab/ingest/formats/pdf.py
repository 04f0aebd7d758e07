"""PDF: text page by page with pypdfium2 (PDFium, the PDF engine of Chromium).

Why pypdfium2: measured on the example corpus (``benchmarks/results/ingest_extractors.json``) it
is the fastest of the maintained, offline candidates by a wide margin (pypdf and pdfplumber /
pdfminer.six are pure Python) and finds as much text; it gives text per page, so a page map costs
nothing; it renders pages for OCR with the same library; wheels carry the engine (no system
package) and it is Apache-2.0 / BSD. Memory stays bounded on long files: one page object is open
at a time and closed before the next; only the page texts are kept.

Per page: the text layer, normalised (:func:`lab.ingest.formats.base.normalize`). A page without
text that holds an image is a scan (warning ``scanned_page``; with OCR on, Tesseract reads it). Then
running headers, footers and page numbers are removed (:mod:`lab.ingest.boilerplate`), and the
pages are joined with a blank line; each page's span in the text is recorded (the blank line after
a page belongs to it, so the spans are contiguous). The PDF outline (bookmarks), when there is one,
gives the sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.ingest.boilerplate import strip_page_furniture
from lab.ingest.formats.base import (
    EXTRACTORS,
    ExtractError,
    Extraction,
    ExtractOptions,
    PageCallback,
    clean_title,
    close_sections,
    collapse_blank_lines,
    normalize,
)
from lab.ingest.manifest import PageSpan

_PAGE_SEPARATOR = "\n\n"


def _open_error(exc: Any, path: Path) -> str:
    """Why PDFium could not open ``path``, and what to do about it."""
    code = getattr(exc, "err_code", None)
    if code == 4:   # FPDF_ERR_PASSWORD
        return ("encrypted PDF: it needs a password to open. Decrypt it (e.g. `qpdf --password=PASSWORD "
                "--decrypt IN.pdf OUT.pdf`) and ingest the decrypted copy")
    if code == 5:   # FPDF_ERR_SECURITY
        return "PDF with an unsupported security handler: decrypt it (e.g. with qpdf) and ingest the copy"
    with path.open("rb") as fh:
        head = fh.read(1024)
        fh.seek(max(0, path.stat().st_size - 2048))
        tail = fh.read()
    if b"%PDF" not in head:
        return f"not a PDF: it does not start with %PDF (it starts with {head[:16]!r}); give it its real suffix"
    if b"%%EOF" not in tail:
        return ("damaged PDF, probably cut short: it does not end with %%EOF and PDFium cannot read it "
                f"({exc}); get a complete copy of the file (an interrupted download or copy truncates it)")
    return (f"damaged PDF: PDFium cannot read it ({exc}); re-save it from a PDF viewer or repair it "
            "(`qpdf IN.pdf OUT.pdf`) and ingest the copy")


def _join(lines: list[str]) -> str:
    """A page's lines (already normalised) as its text: removing lines may leave blank runs."""
    return collapse_blank_lines("\n".join(lines).strip("\n"))


def _has_image(page: Any) -> bool:
    from pypdfium2 import raw

    return next(iter(page.get_objects(filter=(raw.FPDF_PAGEOBJ_IMAGE,), max_depth=2)), None) is not None


def _title(meta_title: str | None, lines: list[str], path: Path) -> str:
    title = clean_title(meta_title)
    for prefix in ("Microsoft Word - ", "Microsoft PowerPoint - "):
        title = title.removeprefix(prefix)
    if title and not title.lower().endswith((".doc", ".docx", ".pdf", ".ppt", ".pptx")):
        return title
    first = next((line.strip() for line in lines if line.strip()), "")
    return clean_title(first, 150) or path.stem


@EXTRACTORS.register("pdf")
class PdfExtractor:
    """PDF text per page with pypdfium2; scanned pages detected (and OCR'd when asked)."""

    format = "pdf"
    name = "pypdfium2"
    suffixes = (".pdf",)

    def version(self) -> str:
        from pypdfium2.version import PDFIUM_INFO, PYPDFIUM_INFO

        return f"{PYPDFIUM_INFO} (pdfium {PDFIUM_INFO.build})"

    def extract(self, path: Path, options: ExtractOptions, on_page: PageCallback | None = None) -> Extraction:
        import pypdfium2 as pdfium
        from pypdfium2 import raw

        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            raise ExtractError(_open_error(exc, path)) from None
        ex = Extraction(text="", title="")
        try:
            if raw.FPDF_GetSecurityHandlerRevision(pdf.raw) != -1:
                ex.warn("encrypted", "encrypted without a password to open: the text was read, but the file's "
                                     "permissions may restrict copying it; make sure you may use it")
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 2048))
                if b"%%EOF" not in fh.read():
                    ex.warn("truncated", "the file does not end with %%EOF: it may be cut short and pages may be "
                                         "missing; get a complete copy")
            n = len(pdf)
            pages = []
            for i in range(n):
                pages.append(self._page(pdf, i, options, ex).split("\n"))
                if on_page is not None:
                    on_page(i + 1, n)
            meta = pdf.get_metadata_dict(skip_empty=True).get("Title")
            toc = self._outline(pdf, ex)
        finally:
            pdf.close()
        pages, counts = strip_page_furniture(pages)
        for kind, k in counts.items():
            ex.count(kind, k)
        texts = [_join(lines) for lines in pages]
        parts, start = [], 0
        for i, text in enumerate(texts):
            chunk = text + (_PAGE_SEPARATOR if i < len(texts) - 1 and text else "")
            ex.pages.append(PageSpan(page=i + 1, start=start, end=start + len(chunk)))
            parts.append(chunk)
            start += len(chunk)
        ex.text = "".join(parts).rstrip("\n")
        if ex.pages:   # the rstrip may shorten the last spans
            last = len(ex.text)
            ex.pages = [PageSpan(page=p.page, start=min(p.start, last), end=min(p.end, last)) for p in ex.pages]
        ex.title = _title(meta, texts[0].split("\n") if texts else [], path)
        marks = []
        for title, level, index in toc:
            if 0 <= index < len(ex.pages):
                span = ex.pages[index]
                found = ex.text.find(title, span.start, span.end) if title else -1
                marks.append((title, level, found if found >= 0 else span.start))
        marks.sort(key=lambda m: m[2])
        ex.sections = close_sections(marks, len(ex.text))
        return ex

    def _page(self, pdf: Any, i: int, options: ExtractOptions, ex: Extraction) -> str:
        """The normalised text of page ``i`` (0-based); records scans, OCR and page errors in ``ex``."""
        import pypdfium2 as pdfium

        number = i + 1
        try:
            page = pdf[i]
        except pdfium.PdfiumError as exc:
            ex.warn("page_error", f"page {number} cannot be loaded ({exc}): its text is missing", page=number)
            return ""
        try:
            textpage = page.get_textpage()
            try:
                text = normalize(textpage.get_text_range())
            finally:
                textpage.close()
            if text.strip():
                return text
            if not _has_image(page):
                ex.warn("empty_page", f"page {number} is blank (no text, no image)", page=number)
                return ""
            ex.scanned_pages.append(number)
            if not options.ocr:
                ex.warn("scanned_page", f"page {number} has no text layer, only an image (a scan): its text is "
                                        "missing; ingest with --ocr (Tesseract) to read it", page=number)
                return ""
            return self._ocr(page, number, options, ex)
        finally:
            page.close()

    def _ocr(self, page: Any, number: int, options: ExtractOptions, ex: Extraction) -> str:
        from lab.ingest.ocr import ocr_image

        bitmap = page.render(scale=options.ocr_dpi / 72, grayscale=True)
        try:
            text = normalize(ocr_image(bitmap.to_pil(), options.ocr_lang))
        except RuntimeError as exc:
            ex.warn("scanned_page", f"page {number} is a scan and OCR failed ({exc}): its text is missing",
                    page=number)
            return ""
        finally:
            bitmap.close()
        if text.strip():
            ex.ocr_pages.append(number)
            ex.warn("scanned_page", f"page {number} is a scan: its text was read by OCR (Tesseract, "
                                    f"{options.ocr_lang}) and may hold recognition errors", page=number)
        else:
            ex.warn("scanned_page", f"page {number} is a scan and OCR found no text on it", page=number)
        return text

    @staticmethod
    def _outline(pdf: Any, ex: Extraction) -> list[tuple[str, int, int]]:
        """``(title, level, page index)`` of the bookmarks (level 1 = top)."""
        try:
            out = []
            for item in pdf.get_toc():
                dest = item.get_dest()
                index = dest.get_index() if dest is not None else None
                if index is not None:
                    out.append((clean_title(item.get_title()), item.level + 1, index))
            return out
        except Exception as exc:  # noqa: BLE001 (a broken outline must not lose the text)
            ex.warn("outline", f"the bookmarks (outline) cannot be read ({type(exc).__name__}: {exc}); "
                               "no sections recorded")
            return []
