"""``lab ingest``'s full path against the plain PDF extractor, on the same PDFs in the same run.

    python benchmarks/ingest_throughput.py --docs data/own_docs --out benchmarks/results/ingest_throughput.json

The PDFs under DOCS (recursively) are read two ways, rounds alternating (plain, lab, plain, lab,
...), the median of each kept:

- plain: pypdfium2 called directly: open, text of every page, close;
- lab: :func:`lab.ingest.ingest` on DOCS with ``--include '*.pdf'`` into a temp folder with an
  empty extraction cache each round, so it does all the work: discovery, sha256 of the bytes,
  extraction with cleaning, scan detection, boilerplate removal and the page map, the cache
  write, the corpus folder and the manifest.

``ratio`` is lab's pages/s over plain's (goal: at least 0.9). Then one full ingestion of every
format gives, per format, the documents with text and the share of the text found against a
reference read the plain way: PDF the raw pypdfium2 text, HTML all visible text of the page
(lxml), DOCX mammoth's raw text when installed, Markdown and text the file itself (the share
below 1 is what cleaning and boilerplate removal took out). Counts are non-whitespace characters.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WS = re.compile(r"\s+")


def nonspace(text: str) -> int:
    return len(_WS.sub("", text))


def plain_pdf(files: list[Path]) -> tuple[int, list[str]]:
    """Pages and page texts of ``files`` read with pypdfium2 directly (nothing else done)."""
    import pypdfium2 as pdfium

    texts = []
    for f in files:
        pdf = pdfium.PdfDocument(str(f))
        try:
            for i in range(len(pdf)):
                page = pdf[i]
                tp = page.get_textpage()
                texts.append(tp.get_text_range())
                tp.close()
                page.close()
        finally:
            pdf.close()
    return len(texts), texts


def lab_pdf(docs: Path) -> tuple[int, float]:
    """Pages ingested by the full ``lab ingest`` path (PDFs only, cold cache) and its seconds (the
    temp folder's removal afterwards is not timed)."""
    from lab.ingest import IngestOptions, ingest
    from lab.ingest.cache import ExtractionCache

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result, manifest = ingest([docs], Path(tmp) / "out", IngestOptions(include=("*.pdf",)),
                                  cache=ExtractionCache(Path(tmp) / "cache"), progress="off")
        seconds = time.perf_counter() - t
        assert result.extracted == len(manifest.documents) and not manifest.failed
        return sum(len(d.pages) for d in manifest.documents), seconds


def reference_chars(path: Path, fmt: str) -> int | None:
    """Non-whitespace characters of ``path`` read the plain way (the module docstring), or None."""
    if fmt == "pdf":
        return sum(nonspace(t) for t in plain_pdf([path])[1])
    if fmt == "html":
        import lxml.html

        tree = lxml.html.fromstring(path.read_bytes())
        for node in tree.xpath("//script | //style | //noscript | //template"):
            node.drop_tree()
        body = tree.find(".//body")
        return nonspace((body if body is not None else tree).text_content())
    if fmt == "docx":
        try:
            import mammoth
        except ImportError:
            return None
        with path.open("rb") as fh:
            return nonspace(mammoth.extract_raw_text(fh).value)
    return nonspace(path.read_text(encoding="utf-8", errors="replace"))


def per_format(docs: Path, exclude: tuple[str, ...]) -> dict[str, Any]:
    """One full ingestion of DOCS: per format, files, documents with text, characters and share of the reference."""
    from lab.ingest import IngestOptions, ingest
    from lab.ingest.cache import ExtractionCache

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t = time.perf_counter()
        result, manifest = ingest([docs], out, IngestOptions(exclude=exclude), cache=ExtractionCache(Path(tmp) / "c"),
                                  progress="off")
        seconds = time.perf_counter() - t
        rows: dict[str, dict[str, Any]] = {}
        for d in manifest.documents:
            row = rows.setdefault(d.format, {"files": 0, "with_text": 0, "chars": 0, "reference_chars": 0,
                                             "seconds": round(result.extract_seconds.get(d.format, 0.0), 2)})
            row["files"] += 1
            if d.text_file:
                row["with_text"] += 1
                row["chars"] += nonspace((out / d.text_file).read_text(encoding="utf-8"))
            ref = reference_chars(Path(d.root) / d.source, d.format)
            row["reference_chars"] = None if ref is None or row["reference_chars"] is None else row["reference_chars"] + ref
        for row in rows.values():
            ref = row["reference_chars"]
            row["share_of_reference"] = round(row["chars"] / ref, 3) if ref else None
            row["share_with_text"] = round(row["with_text"] / row["files"], 3)
        summary = result.summary()
    return {"seconds": round(seconds, 2), "documents": summary["documents"], "failed": summary["failed"],
            "scanned_pages": summary["scanned_pages"], "boilerplate": summary["boilerplate"], "formats": rows,
            "references": {"pdf": "raw pypdfium2 page text", "html": "all visible text of the page (lxml)",
                           "docx": "mammoth extract_raw_text", "markdown": "the file", "text": "the file"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default="data/own_docs")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--exclude", action="append", default=["SOURCES.md"], help="globs left out of the per-format run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from lab.io import write_json

    docs = Path(args.docs)
    pdfs = sorted(p for p in docs.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    if not pdfs:
        print(f"no PDF under {docs}", file=sys.stderr)
        return 2
    plain_pdf(pdfs[:1])   # warm-up: imports, PDFium initialisation
    lab_pdf(docs)
    plain, ours = [], []
    pages = 0
    for r in range(args.rounds):
        t = time.perf_counter()
        pages, _ = plain_pdf(pdfs)
        plain.append(pages / (time.perf_counter() - t))
        lab_pages, seconds = lab_pdf(docs)
        ours.append(lab_pages / seconds)
        assert lab_pages == pages, (lab_pages, pages)
        print(f"round {r + 1}: plain {plain[-1]:.1f} pages/s, lab {ours[-1]:.1f} pages/s", file=sys.stderr, flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result: dict[str, Any] = {
        "docs": str(docs), "pdf_files": len(pdfs), "pdf_pages": pages, "rounds": args.rounds,
        "plain_pypdfium2_pages_per_s": round(statistics.median(plain), 1),
        "lab_ingest_pages_per_s": round(statistics.median(ours), 1),
        "rounds_plain": [round(x, 1) for x in plain], "rounds_lab": [round(x, 1) for x in ours],
        "machine": {"cpus": os.cpu_count(), "cores_shared": True, "load_average_1m": round(load[0], 2) if load else None,
                    "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")},
    }
    result["ratio"] = round(result["lab_ingest_pages_per_s"] / result["plain_pypdfium2_pages_per_s"], 3)
    result["goal_ratio"] = 0.9
    result["per_format"] = per_format(docs, tuple(args.exclude))
    print(f"{len(pdfs)} PDFs, {pages} pages, {args.rounds} rounds: lab ingest {result['lab_ingest_pages_per_s']} "
          f"pages/s, plain pypdfium2 {result['plain_pypdfium2_pages_per_s']} pages/s, ratio {result['ratio']}")
    for fmt, row in sorted(result["per_format"]["formats"].items()):
        print(f"  {fmt:<9} {row['with_text']}/{row['files']} with text, {row['chars']:,} chars, "
              f"{row['share_of_reference']} of the reference")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
