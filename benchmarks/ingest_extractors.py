"""The extractor choice of ``lab.ingest``, measured: time and text found per format and candidate.

    python benchmarks/ingest_extractors.py --docs data/own_docs --out benchmarks/results/ingest_extractors.json [--ocr]

For every file of DOCS (recursively; ``SOURCES.md`` and other non-documents by suffix only) each
installed candidate of its format extracts the text, and the script records the seconds (median
of ``--rounds``, candidates interleaved), pages, and text found: non-whitespace characters, and
that count as a share of the most any candidate of the format found (``share_of_most``), plus
for HTML the share of the page's ``<main>`` text and of all its visible text.

Candidates (``pip install pypdf pdfplumber mammoth selectolax``: the ``dev`` extra; one not
installed is listed under ``missing``, never dropped silently):

- PDF: lab's extractor (pypdfium2 + cleaning, boilerplate removal, page map), plain pypdfium2
  page text, pypdf ``extract_text``, pdfplumber ``extract_text``.
- HTML: lab's (trafilatura main content), selectolax (lexbor) ``<main>`` text, selectolax whole
  ``<body>`` text (scripts and styles removed).
- DOCX: lab's (python-docx + content controls and text boxes), python-docx's own
  ``iter_inner_content`` (paragraphs and table cells; ``row.cells`` repeats a merged cell once per
  column it spans, so its character count runs high), mammoth ``extract_raw_text`` (which reads
  text boxes and content controls: ``mammoth_line_recall`` is the share of its distinct lines each
  candidate's text holds).
- Markdown: lab's (front matter and HTML tags removed) against the raw file.

``--ocr`` (needs Tesseract) also reads the scanned pages (no text layer) with OCR and records
seconds per page and characters.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_WS = re.compile(r"\s+")


def nonspace(text: str) -> int:
    """Characters that are not whitespace (a count that does not depend on layout)."""
    return len(_WS.sub("", text))


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------- candidates


def lab_extractor(fmt: str) -> Callable[[Path], tuple[str, int]]:
    from lab.ingest.formats import EXTRACTORS, ExtractOptions

    ext = EXTRACTORS.get(fmt)()

    def run(path: Path) -> tuple[str, int]:
        ex = ext.extract(path, ExtractOptions())
        return ex.text, len(ex.pages)

    return run


def pdfium_plain(path: Path) -> tuple[str, int]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    parts = []
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            tp = page.get_textpage()
            parts.append(tp.get_text_range())
            tp.close()
            page.close()
        return "\n".join(parts), len(parts)
    finally:
        pdf.close()


def pypdf_text(path: Path) -> tuple[str, int]:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(str(path))
    parts = [p.extract_text() or "" for p in reader.pages]
    return "\n".join(parts), len(parts)


def pdfplumber_text(path: Path) -> tuple[str, int]:
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        parts = []
        for page in pdf.pages:
            parts.append(page.extract_text() or "")
            page.close()   # frees the page's cached layout objects
        return "\n".join(parts), len(parts)


def _lexbor(path: Path) -> Any:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(path.read_bytes())
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    return tree


def selectolax_main(path: Path) -> tuple[str, int]:
    main = _lexbor(path).css_first("main")
    return (main.text(separator="\n") if main is not None else ""), 1


def selectolax_body(path: Path) -> tuple[str, int]:
    body = _lexbor(path).body
    return (body.text(separator="\n") if body is not None else ""), 1


def python_docx_plain(path: Path) -> tuple[str, int]:
    import docx
    from docx.table import Table

    parts = []
    for block in docx.Document(str(path)).iter_inner_content():
        if isinstance(block, Table):
            parts += [" | ".join(c.text for c in row.cells) for row in block.rows]
        else:
            parts.append(block.text)
    return "\n".join(parts), 1


def mammoth_text(path: Path) -> tuple[str, int]:
    import mammoth

    with path.open("rb") as fh:
        return mammoth.extract_raw_text(fh).value, 1


def raw_file(path: Path) -> tuple[str, int]:
    return path.read_text(encoding="utf-8", errors="replace"), 1


#: format -> [(candidate, distribution it needs, function)]; the first is lab's choice.
CANDIDATES: dict[str, list[tuple[str, str, Callable[[Path], tuple[str, int]] | str]]] = {
    "pdf": [("lab (pypdfium2)", "pypdfium2", "lab"), ("pypdfium2 plain", "pypdfium2", pdfium_plain),
            ("pypdf", "pypdf", pypdf_text), ("pdfplumber", "pdfplumber", pdfplumber_text)],
    "html": [("lab (trafilatura)", "trafilatura", "lab"), ("selectolax main", "selectolax", selectolax_main),
             ("selectolax body", "selectolax", selectolax_body)],
    "docx": [("lab (python-docx)", "python-docx", "lab"), ("python-docx iter_inner_content", "python-docx",
                                                           python_docx_plain), ("mammoth", "mammoth", mammoth_text)],
    "markdown": [("lab (markdown-it-py)", "markdown-it-py", "lab"), ("raw file", "markdown-it-py", raw_file)],
}
SUFFIXES = {".pdf": "pdf", ".html": "html", ".htm": "html", ".docx": "docx", ".md": "markdown"}


def measure(files: list[Path], fn: Callable[[Path], tuple[str, int]]) -> dict[str, Any]:
    """One pass of ``fn`` over ``files``: seconds, pages, characters, and per file."""
    per_file, seconds, pages, chars, errors, texts = {}, 0.0, 0, 0, {}, {}
    for f in files:
        t = time.perf_counter()
        try:
            text, n = fn(f)
        except Exception as exc:  # noqa: BLE001 (a candidate failing on a file is a result, recorded)
            errors[f.name] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        took = time.perf_counter() - t
        seconds += took
        pages += n
        chars += nonspace(text)
        per_file[f.name] = {"seconds": round(took, 4), "chars": nonspace(text)}
        texts[f.name] = text
    return {"seconds": seconds, "pages": pages, "chars": chars, "per_file": per_file, "errors": errors, "texts": texts}


def line_recall(reference: dict[str, str], found: dict[str, str]) -> float:
    """Share of the reference's distinct non-blank lines (whitespace collapsed) found in ``found``."""
    hit = total = 0
    for name, ref in reference.items():
        text = " ".join(found.get(name, "").split())
        lines = {" ".join(x.split()) for x in ref.split("\n")} - {""}
        total += len(lines)
        hit += sum(1 for x in lines if x in text)
    return round(hit / total, 4) if total else 0.0


def compare(fmt: str, files: list[Path], rounds: int) -> dict[str, Any]:
    """Every installed candidate of ``fmt`` on ``files``, rounds interleaved."""
    runs: dict[str, list[dict[str, Any]]] = {}
    missing = {}
    fns = {}
    for name, dist, fn in CANDIDATES[fmt]:
        if _version(dist) is None:
            missing[name] = f"pip install {dist}"
            continue
        fns[name] = lab_extractor(fmt) if fn == "lab" else fn
    for _ in range(rounds):
        for name, fn in fns.items():
            runs.setdefault(name, []).append(measure(files, fn))
    most = max((r[0]["chars"] for r in runs.values()), default=0) or 1
    out: dict[str, Any] = {"files": len(files), "candidates": {}, "missing": missing}
    for name, rs in runs.items():
        secs = statistics.median(r["seconds"] for r in rs)
        first = rs[0]
        row = {"seconds": round(secs, 3), "files_per_s": round(len(files) / secs, 1) if secs else None,
               "pages": first["pages"], "chars": first["chars"], "share_of_most": round(first["chars"] / most, 3),
               "errors": first["errors"]}
        if fmt == "pdf":
            row["pages_per_s"] = round(first["pages"] / secs, 1) if secs else None
            row["files_with_text"] = sum(1 for v in first["per_file"].values() if v["chars"] > 0)
        out["candidates"][name] = row
    if fmt == "docx" and "mammoth" in runs:   # mammoth reads text boxes and content controls: the reference
        ref = runs["mammoth"][0]["texts"]
        for name, rs in runs.items():
            out["candidates"][name]["mammoth_line_recall"] = line_recall(ref, rs[0]["texts"])
    if fmt == "html" and "selectolax main" in runs:
        main = runs["selectolax main"][0]["chars"] or 1
        body = runs["selectolax body"][0]["chars"] or 1
        for row in out["candidates"].values():
            row["share_of_main"] = round(row["chars"] / main, 3)
            row["share_of_body"] = round(row["chars"] / body, 3)
    out["chosen"] = CANDIDATES[fmt][0][0]
    return out


def ocr_figures(files: list[Path], dpi: int = 300, lang: str = "eng") -> dict[str, Any]:
    """Tesseract on the scanned PDFs among ``files``: seconds per page and characters read."""
    from lab.ingest.formats import EXTRACTORS, ExtractOptions
    from lab.ingest.ocr import check_available

    engine = check_available(lang)
    ext = EXTRACTORS.get("pdf")()
    rows = {}
    for f in files:
        plain = ext.extract(f, ExtractOptions())
        if not plain.scanned_pages:
            continue
        t = time.perf_counter()
        ex = ext.extract(f, ExtractOptions(ocr=True, ocr_lang=lang, ocr_dpi=dpi))
        took = time.perf_counter() - t
        rows[f.name] = {"pages": len(ex.pages), "scanned_pages": len(ex.scanned_pages),
                        "ocr_pages": len(ex.ocr_pages), "chars": nonspace(ex.text), "seconds": round(took, 2),
                        "seconds_per_page": round(took / max(1, len(ex.scanned_pages)), 2)}
    pages = sum(r["scanned_pages"] for r in rows.values())
    secs = sum(r["seconds"] for r in rows.values())
    return {"engine": engine, "dpi": dpi, "files": rows, "pages": pages,
            "seconds_per_page": round(secs / pages, 2) if pages else None,
            "chars_per_page": round(sum(r["chars"] for r in rows.values()) / pages) if pages else None}


def machine() -> dict[str, Any]:
    """Where the figures were taken (the load says how shared the cores were)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "load_average_1m": round(load[0], 2) if load else None,
            "cores_shared": True, "python": platform.python_version(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default="data/own_docs", help="folder of documents (walked recursively)")
    ap.add_argument("--rounds", type=int, default=1, help="passes per candidate (median seconds)")
    ap.add_argument("--ocr", action="store_true", help="also OCR the scanned PDF pages (needs Tesseract)")
    ap.add_argument("--out", default=None, help="write the JSON here")
    args = ap.parse_args(argv)

    from lab.io import write_json

    docs = Path(args.docs)
    by_format: dict[str, list[Path]] = {}
    for f in sorted(docs.rglob("*")):
        fmt = SUFFIXES.get(f.suffix.lower())
        if fmt and f.is_file() and f.name != "SOURCES.md":
            by_format.setdefault(fmt, []).append(f)
    result: dict[str, Any] = {"docs": str(docs), "rounds": args.rounds, "machine": machine(),
                              "versions": {d: _version(d) for d in ("pypdfium2", "pypdf", "pdfplumber", "trafilatura",
                                                                    "selectolax", "python-docx", "mammoth",
                                                                    "markdown-it-py")},
                              "measure": "chars = non-whitespace characters of the extracted text", "formats": {}}
    for fmt, files in by_format.items():
        print(f"{fmt}: {len(files)} files", file=sys.stderr, flush=True)
        result["formats"][fmt] = compare(fmt, files, args.rounds)
        for name, row in result["formats"][fmt]["candidates"].items():
            rate = f", {row['pages_per_s']} pages/s" if "pages_per_s" in row else ""
            print(f"  {name:<34} {row['seconds']:>8.2f} s{rate}, {row['chars']:,} chars "
                  f"({row['share_of_most']:.1%} of the most)" + (f", {len(row['errors'])} errors" if row["errors"] else ""))
    if args.ocr:
        result["ocr"] = ocr_figures(by_format.get("pdf", []))
        o = result["ocr"]
        print(f"ocr ({o['engine']}, {o['dpi']} dpi): {o['pages']} scanned pages, {o['seconds_per_page']} s/page, "
              f"{o['chars_per_page']} chars/page")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
