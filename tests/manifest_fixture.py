"""Ingest manifests for tests, written through the one typed model (lab.ingest.manifest): a record
names what a test cares about (id, title, pages, sections, chars...), the other required fields get
neutral values, and the file is written by :func:`lab.ingest.manifest.write_manifest`, so a test's
manifest is always one ``lab ingest`` could have written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.ingest.manifest import FILE, Manifest, write_manifest

FORMATS = {"pdf": "pdf", "html": "html", "htm": "html", "docx": "docx", "md": "markdown", "markdown": "markdown"}


def record(doc_id: str, **fields: Any) -> dict[str, Any]:
    """A complete ``documents[]`` record of ``doc_id`` (JSON form), ``fields`` overriding the defaults."""
    suffix = doc_id.rsplit(".", 1)[-1].lower() if "." in doc_id else ""
    return {"id": doc_id, "source": doc_id, "root": "own_docs", "sha256": "0" * 64, "bytes": 1,
            "format": FORMATS.get(suffix, "text"), "extractor": "fake", "extractor_version": "1", "title": "",
            "chars": 0, "text_file": f"docs/{doc_id}.txt", **fields}


def write(out_dir: Path, records: list[dict[str, Any]], **body: Any) -> Path:
    """``out_dir/manifest.json`` holding ``records`` (see :func:`record`); returns its path."""
    return write_manifest(Path(out_dir) / FILE, Manifest.model_validate({"documents": records, **body}))
