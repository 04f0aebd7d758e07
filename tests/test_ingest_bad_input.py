"""Bad input: each case gets a message naming the file (and page or line) and how to fix it, and
nothing else is lost: the other files of the folder are still ingested."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tracemalloc
from pathlib import Path

import pytest
from ingest_fixtures import (
    pdf_bytes,
    report_pages,
    write_encrypted_pdf,
    write_pdf,
    write_scanned_pdf,
)

from lab.errors import DataError
from lab.ingest import IngestOptions, collect, ingest
from lab.ingest.cache import ExtractionCache


def _mixed_pdf(path: Path, tmp: Path) -> Path:
    """Two text pages, then one scanned page (image only)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_bytes(report_pages(2)))).pages:
        writer.add_page(page)
    writer.add_page(PdfReader(write_scanned_pdf(tmp / "scan-part.pdf")).pages[0])
    with path.open("wb") as fh:
        writer.write(fh)
    return path


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    """A folder with one of each kind of bad input beside good files."""
    src = tmp_path / "messy"
    (src / "copies").mkdir(parents=True)
    (src / "good.md").write_text("# Good\n\nA well-formed note about access control.\n", encoding="utf-8")
    write_encrypted_pdf(src / "encrypted.pdf")
    write_encrypted_pdf(src / "owner-only.pdf", password="")         # encrypted, but opens without a password
    write_scanned_pdf(src / "scanned.pdf", pages=2)
    _mixed_pdf(src / "mixed.pdf", tmp_path)
    (src / "empty.txt").write_bytes(b"")
    whole = pdf_bytes(report_pages(6))
    (src / "truncated.pdf").write_bytes(whole[: int(len(whole) * 0.6)])
    (src / "notzip.docx").write_bytes(b"This is a plain text file with a .docx suffix.\n")
    (src / "scripts.html").write_text("<html><head><script>var x = 1;</script></head><body><script>"
                                      "document.write('hello')</script><style>p{}</style></body></html>")
    (src / "latin1.txt").write_bytes("First line.\nCafé au lait, naïve façade.\n".encode("latin-1"))
    (src / "binary.txt").write_bytes(b"text line\nbinary \x00\x01\x02 line\n")
    (src / "résumé final 2024.md").write_text("# Résumé\n\nName with spaces and accents.\n", encoding="utf-8")
    os.symlink("..", src / "copies" / "loop")                      # a symlink loop
    os.symlink("self-link", src / "self-link")                      # a link to itself
    (src / "original.md").write_text("# Same\n\nThe same bytes twice.\n", encoding="utf-8")
    shutil.copyfile(src / "original.md", src / "copies" / "same.md")
    return src


def test_each_bad_input_is_named_and_the_rest_is_ingested(messy, tmp_path):
    result, manifest = ingest([messy], tmp_path / "out", cache=ExtractionCache(tmp_path / "cache"), progress="off")
    failed = {f.source: f.error for f in manifest.failed}
    docs = manifest.by_id()
    skipped = {s.source: s.reason for s in manifest.skipped}

    # could not be read at all: named, with the fix, and no text file
    assert set(failed) == {"encrypted.pdf", "empty.txt", "truncated.pdf", "notzip.docx", "binary.txt"}
    assert failed["encrypted.pdf"].startswith(f"{messy}/encrypted.pdf: encrypted PDF") and "qpdf" in failed["encrypted.pdf"]
    assert "empty file (0 bytes)" in failed["empty.txt"] and "--exclude" in failed["empty.txt"]
    assert "cut short" in failed["truncated.pdf"] and "complete copy" in failed["truncated.pdf"]
    assert "not a zip" in failed["notzip.docx"] and "soffice" in failed["notzip.docx"]
    assert failed["binary.txt"].startswith(f"{messy}/binary.txt: line 2: holds NUL bytes")

    # read, with warnings
    assert [w.kind for w in docs["owner-only.pdf"].warnings] == ["encrypted"] and docs["owner-only.pdf"].chars > 0
    scanned = docs["scanned.pdf"]
    assert scanned.scanned_pages == [1, 2] and scanned.text_file is None and scanned.chars == 0
    assert [(w.kind, w.page) for w in scanned.warnings] == [("scanned_page", 1), ("scanned_page", 2),
                                                            ("empty_text", None)]
    assert "--ocr" in scanned.warnings[0].message and "--ocr" in scanned.warnings[-1].message
    mixed = docs["mixed.pdf"]
    assert mixed.scanned_pages == [3] and mixed.text_file == "docs/mixed.pdf.txt" and len(mixed.pages) == 3
    assert mixed.pages[2].start == mixed.pages[2].end == mixed.chars   # the scan adds no text
    assert [w.kind for w in docs["scripts.html"].warnings] == ["empty_text"]
    assert "JavaScript" in docs["scripts.html"].warnings[0].message and docs["scripts.html"].text_file is None
    latin = docs["latin1.txt"]
    assert [w.kind for w in latin.warnings] == ["not_utf8"] and "line 2" in latin.warnings[0].message
    assert (tmp_path / "out" / latin.text_file).read_text(encoding="utf-8") == "First line.\nCafé au lait, naïve façade."
    odd = docs["résumé final 2024.md"]
    assert (tmp_path / "out" / "docs" / "résumé final 2024.md.txt").is_file() and odd.title == "Résumé"
    dup = docs["original.md"]   # the first in id order is the original: copies/same.md
    assert dup.duplicate_of == "copies/same.md" and dup.text_file is None and [w.kind for w in dup.warnings] == ["duplicate"]
    assert docs["copies/same.md"].text_file == "docs/copies/same.md.txt"

    # left out, and said so
    assert "symlink loop" in skipped["copies/loop"] and "symlink loop" in skipped["self-link"]

    # nothing else lost
    assert docs["good.md"].chars > 0 and (tmp_path / "out" / "docs" / "good.md.txt").is_file()
    written = sorted(p.relative_to(tmp_path / "out" / "docs").as_posix() for p in (tmp_path / "out" / "docs").rglob("*.txt"))
    assert written == sorted(d.text_file[len("docs/"):] for d in manifest.documents if d.text_file)
    assert result.summary()["failed"] == 5 and result.summary()["duplicates"] == 1


def test_a_read_only_source_folder_is_read_and_left_untouched(tmp_path):
    src = tmp_path / "ro"
    write_pdf(src / "a.pdf", report_pages(3))
    (src / "b.md").write_text("# B\n\nText.\n")
    before = {p: p.stat().st_mtime_ns for p in src.rglob("*")}
    for p in [*src.rglob("*"), src]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        _, manifest = ingest([src], tmp_path / "out", cache=ExtractionCache(tmp_path / "cache"), progress="off")
    finally:
        for p in [src, *src.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert [d.id for d in manifest.documents] == ["a.pdf", "b.md"] and not manifest.failed
    assert {p: p.stat().st_mtime_ns for p in src.rglob("*")} == before


def test_a_1000_page_pdf_streams_page_by_page_with_progress(tmp_path, capsys):
    pages = [[f"Chapter {i // 50}", *(f"Line {k} of page {i}: the access control policy text." for k in range(12)),
              f"- {i} -"] for i in range(1, 1001)]
    big = write_pdf(tmp_path / "src" / "big.pdf", pages)
    tracemalloc.start()
    try:
        result = collect([big.parent], cache=ExtractionCache(tmp_path / "cache"), progress="lines")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    record = result.documents[0]
    assert len(record.pages) == 1000 and record.boilerplate["page_numbers"] == 1000
    assert peak < 64 * 2**20, f"peak Python memory {peak / 2**20:.0f} MiB for a 1000-page PDF"
    err = capsys.readouterr().err
    assert "big.pdf: page 100/1000" in err and "big.pdf: page 900/1000" in err and "1000 pages" in err


def test_ocr_without_tesseract_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    write_scanned_pdf(tmp_path / "src" / "scan.pdf")
    with pytest.raises(DataError, match=r"apt-get install -y tesseract-ocr"):
        collect([tmp_path / "src"], IngestOptions(ocr=True), cache=ExtractionCache(tmp_path / "cache"), progress="off")


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed (setup.sh --with ocr)")
def test_ocr_reads_a_scanned_page(tmp_path):
    write_scanned_pdf(tmp_path / "src" / "scan.pdf", text="SCANNED CHARTER")
    result = collect([tmp_path / "src"], IngestOptions(ocr=True), cache=ExtractionCache(tmp_path / "cache"),
                     progress="off")
    record = result.documents[0]
    assert record.ocr_pages == [1] and record.scanned_pages == [1] and record.text_file is not None
    text = (result.cache.text_path(result.records[0][1])).read_text(encoding="utf-8")
    assert "SCANNED CHARTER" in text and "Authorization Board" in text


def test_no_file_to_ingest_is_an_error_that_says_why(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(DataError, match=r"no file to ingest .* photo.jpg: unsupported format '.jpg'"):
        collect([tmp_path / "src"], progress="off")
    with pytest.raises(DataError, match=r"missing: no such file or folder"):
        collect([tmp_path / "missing"], progress="off")
