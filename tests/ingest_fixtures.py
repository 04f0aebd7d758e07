"""Small documents made inside the tests (no fixture files): text PDFs of any length written by
hand (one content stream per page, the standard Helvetica font), image-only "scanned" PDFs through
Pillow, encrypted and truncated PDFs, Word files through python-docx."""

from __future__ import annotations

import io
from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A PDF with one page per entry of ``pages``, each line of it drawn as a line of text."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    pages_id = len(objects) + 1 + 2 * len(pages) + 1   # after the page and content objects and the catalog
    kids = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, content, font)))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))) \
        == pages_id
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref))
    return out.getvalue()


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """:func:`pdf_bytes` written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(pages))
    return path


def report_pages(n: int, title: str = "Annual Report") -> list[list[str]]:
    """``n`` pages with a running header, a body and a footer with the page number."""
    return [[title, f"Section {i}: body text of page {i} about cloud security controls.",
             f"The control AC-{i} limits access on page {i}.", f"Page {i} of {n}"] for i in range(1, n + 1)]


def write_scanned_pdf(path: Path, text: str = "SCANNED CHARTER", pages: int = 1) -> Path:
    """An image-only PDF (no text layer): ``text`` drawn large on white pages by Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    images = []
    for i in range(pages):
        img = Image.new("L", (1275, 1650), 255)
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=64)
        draw.text((100, 200), f"{text} {i + 1}", fill=0, font=font)
        draw.text((100, 320), "Joint Authorization Board", fill=0, font=font)
        images.append(img.convert("RGB"))
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, "PDF", resolution=150.0, save_all=True, append_images=images[1:])
    return path


def write_encrypted_pdf(path: Path, password: str = "secret") -> Path:
    """A PDF encrypted with pypdf (AES-128) that needs ``password`` to open (``""``: none, only an
    owner password restricting what a reader may do)."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(pdf_bytes(report_pages(2))))
    writer = PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def write_docx(path: Path, title: str = "Contingency Plan") -> Path:
    """A Word file with a title, two heading levels, paragraphs, a table and a page header."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.sections[0].header.paragraphs[0].text = "CONFIDENTIAL - internal header"
    document.add_heading(title, level=0)
    document.add_heading("1. Purpose", level=1)
    document.add_paragraph("This plan restores the system after an outage.")
    document.add_heading("1.1 Scope", level=2)
    document.add_paragraph("It covers the production environment.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Role", "Name"
    table.cell(1, 0).text, table.cell(1, 1).text = "Coordinator", "Alex Doe"
    document.add_heading("2. Recovery", level=1)
    document.add_paragraph("Backups are restored within four hours.")
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


HTML_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Baselines | Example.gov</title>
<script>var tracking = "do not ingest";</script><style>body { color: red }</style></head>
<body><header><div class="logo">Example.gov</div></header>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li><li><a href="/blog">Blog</a></li></ul></nav>
<main><article><h1>Understanding Baselines</h1>
<p>A security baseline is the set of controls a system must implement. Low, moderate and high baselines
differ in how many controls they require and how strictly those controls are assessed by the assessor.</p>
<h2>Low impact</h2>
<p>The low baseline applies to systems whose loss would have a limited adverse effect on operations,
assets or individuals. It holds about one hundred and twenty-five controls from the catalogue.</p>
<h2>Moderate impact</h2>
<p>The moderate baseline covers most cloud systems; its loss would have a serious adverse effect. It holds
about three hundred controls, and it is what most agencies ask of a cloud service provider.</p>
</article></main>
<footer><p>Footer links: Privacy policy | Accessibility | Contact the webmaster</p></footer></body></html>
"""
