"""Extraction fidelity per format: are the reviewed test set's reference excerpts in the documents?

For every row of the reviewed test set (``testset.csv`` with its ``testset.review.json``: rejected rows
left out, see :mod:`lab.testset.review`), each reference excerpt is looked up

* in lab's extracted text of its document (the ingest stage's ``docs/<id>.txt``), and
* in the ORIGINAL file read by an independent extractor that ``lab.ingest`` does not build on:
  poppler's ``pdftotext`` for PDF (pdfplumber where poppler is missing), mammoth for DOCX, selectolax's
  text of the whole page for HTML, the raw file for Markdown (inline HTML tags removed) and text.

A test-set excerpt is copied from lab's extracted text, so the first share says whether the review kept
excerpts that still read the same; the second is the fidelity figure: an excerpt that the original does
not hold (a word split by a page break, a lost ligature, two columns merged, a table flattened into one
line) shows extraction damage, and the JSON lists each miss with its document. Matching is verbatim
after the same normalisation on both sides: Unicode NFKC (ligatures), soft hyphens removed, Markdown
emphasis and code marks removed, whitespace collapsed, case kept; ``in_original_ignoring_spaces``
also counts an excerpt found with every space removed on both sides (two extractors differ on the
spaces around a footnote mark, a bullet or a line end; a lost, split or reordered word still misses).

    python benchmarks/ingest_fidelity.py --testset results/testset/testset.csv \\
        --manifest results/ingest/manifest.json --out benchmarks/results/ingest_fidelity.json

Input: any test set of the ``testset`` stage's format over any ``lab ingest`` output; the originals are
found through the manifest's ``root`` and ``source`` (relative to ``--project``, default the current
folder).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import unicodedata
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_MARKS = re.compile(r"[*_`]+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def normal(text: str) -> str:
    """The normalisation applied to excerpts and documents alike (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "")
    text = _LINK.sub(r"\1", text)
    text = _MARKS.sub("", text)
    return " ".join(text.split())


def original_text(path: Path, fmt: str) -> tuple[str, str]:
    """(text, extractor) of the original file by an extractor lab.ingest does not use."""
    if fmt == "pdf":
        if shutil.which("pdftotext"):
            out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                                 check=True, timeout=600)
            return out.stdout.decode("utf-8", "replace"), "pdftotext"
        import pdfplumber

        with pdfplumber.open(path) as pdf:
            return "\n".join(p.extract_text() or "" for p in pdf.pages), "pdfplumber"
    if fmt == "docx":
        import mammoth

        with path.open("rb") as f:
            return mammoth.extract_raw_text(f).value, "mammoth"
    if fmt == "html":
        from selectolax.lexbor import LexborHTMLParser   # selectolax >= 1.0: the Modest backend is gone

        tree = LexborHTMLParser(path.read_bytes())
        body = tree.body or tree.root
        return (body.text(separator=" ") if body is not None else ""), "selectolax (lexbor)"
    raw = path.read_text(encoding="utf-8", errors="replace")
    if fmt == "markdown":   # inline HTML (links, <br>) is markup a reader never sees: tags removed
        return re.sub(r"<[^>\n]+>", "", raw), "raw file, HTML tags removed"
    return raw, "raw file"


def excerpts_of(cell: str, corpus_id: str) -> list[tuple[str, str]]:
    """(document id, excerpt) of each reference of a ``references`` cell: a JSON list of strings (of
    the row's document) or of objects with ``content``/``text`` and their own ``corpus_id`` (a
    multi-passage question's references may come from two documents)."""
    refs = json.loads(cell) if cell.strip() else []
    out = []
    for r in refs:
        text = r if isinstance(r, str) else (r.get("content") or r.get("text") or "")
        doc = corpus_id if isinstance(r, str) else (r.get("corpus_id") or corpus_id)
        if text.strip():
            out.append((doc, text))
    return out


def measure(testset: Path, manifest_path: Path, project: Path) -> dict[str, Any]:
    """Per format: rows, excerpts, and the shares found in lab's text and in the original."""
    from lab.ingest.manifest import read_manifest
    from lab.testset.review import reviewed_rows

    manifest = read_manifest(manifest_path)
    docs = manifest.by_id()
    rows = reviewed_rows(testset, on_problem="warn")
    extracted_cache: dict[str, str] = {}
    original_cache: dict[str, tuple[str, str]] = {}
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"rows": 0, "excerpts": 0, "in_extracted": 0,
                                                          "in_original": 0, "in_original_ignoring_spaces": 0,
                                                          "extractor": None})
    misses: list[dict[str, Any]] = []
    skipped = {"no_reference": 0, "unknown_document": 0}
    for row in rows:
        refs = excerpts_of(row.get("references", ""), row.get("corpus_id", ""))
        if not refs:
            skipped["no_reference"] += 1   # unanswerable items carry no excerpt
            continue
        counted: set[str] = set()
        for doc_id, ref in refs:
            doc = docs.get(doc_id)
            if doc is None:
                skipped["unknown_document"] += 1
                continue
            if doc.id not in extracted_cache:
                extracted_cache[doc.id] = normal((manifest_path.parent / doc.text_file).read_text(encoding="utf-8"))
                text, how = original_text(project / doc.root / doc.source, doc.format)
                original_cache[doc.id] = (normal(text), how)
            fmt = per[doc.format]
            if doc.format not in counted:
                fmt["rows"] += 1
                counted.add(doc.format)
            fmt["extractor"] = original_cache[doc.id][1]
            want = normal(ref)
            fmt["excerpts"] += 1
            got_x = want in extracted_cache[doc.id]
            got_o = want in original_cache[doc.id][0]
            # the same words in the same order, spaces aside: two extractors differ on the spaces around
            # a footnote mark or a bullet; a lost, split or reordered word still misses
            got_w = want.replace(" ", "") in original_cache[doc.id][0].replace(" ", "")
            fmt["in_extracted"] += got_x
            fmt["in_original"] += got_o
            fmt["in_original_ignoring_spaces"] += got_w
            if not (got_x and got_o):
                misses.append({"id": row["id"], "document": doc.id, "format": doc.format, "in_extracted": got_x,
                               "in_original": got_o, "in_original_ignoring_spaces": got_w, "excerpt": ref[:300]})
    for fmt in per.values():
        n = fmt["excerpts"]
        fmt["share_in_extracted"] = round(fmt["in_extracted"] / n, 4) if n else None
        fmt["share_in_original"] = round(fmt["in_original"] / n, 4) if n else None
        fmt["share_in_original_ignoring_spaces"] = round(fmt["in_original_ignoring_spaces"] / n, 4) if n else None
    total = sum(f["excerpts"] for f in per.values())
    return {"testset": str(testset), "manifest": str(manifest_path), "rows_reviewed": len(rows),
            "review": {s: sum(r["review"] == s for r in rows) for s in ("accepted", "edited", "unreviewed")},
            "skipped_rows": skipped, "per_format": dict(sorted(per.items())),
            "all": {"excerpts": total,
                    "share_in_extracted": round(sum(f["in_extracted"] for f in per.values()) / total, 4) if total else None,
                    "share_in_original": round(sum(f["in_original"] for f in per.values()) / total, 4) if total else None,
                    "share_in_original_ignoring_spaces": round(sum(f["in_original_ignoring_spaces"]
                                                                   for f in per.values()) / total, 4) if total else None},
            "misses": misses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--testset", type=Path, required=True, help="a testset.csv (its review file beside it)")
    ap.add_argument("--manifest", type=Path, required=True, help="the ingest manifest.json of its corpus")
    ap.add_argument("--project", type=Path, default=Path("."), help="folder the manifest's roots are relative to")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest_fidelity.json")
    args = ap.parse_args()
    result = {"what": "reference excerpts of the reviewed test set found verbatim (normalised) in lab's "
                      "extracted text and in the original file read by an independent extractor",
              "date": date.today().isoformat(), **measure(args.testset, args.manifest, args.project)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(json.dumps({k: result[k] for k in ("rows_reviewed", "review", "per_format", "all")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
