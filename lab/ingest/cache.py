"""The content-addressed cache of extractions: a file is extracted again only when its bytes, its
extractor (name and version), the options that change its text, or lab's own post-processing
(:data:`PIPELINE_VERSION`) change.

Where: ``<lab cache>/ingest`` (``$LAB_CACHE_DIR``, else ``~/.cache/lab``: the folder of lab's other
content-hash caches, the embedding store and the judgment cache), never inside an output folder,
because DVC deletes a stage's outputs before it runs it. One entry is two files named by its key,
``<key>.txt`` (the text) and ``<key>.json`` (the rest of the extraction), both written atomically,
the JSON last: an entry without its JSON is not there. An unreadable entry is a miss (and is
written again), never an error. Entries are never evicted: delete the folder to reclaim the space.
``manifests/`` keeps a copy of the last manifest written to each output folder, so ``changes`` says
what changed even after DVC emptied the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from lab.ingest.formats.base import Extraction
from lab.ingest.manifest import IngestWarning, PageSpan, Section
from lab.io import write_text

#: Version of lab's own processing after the extractor (cleaning, boilerplate, page and section
#: maps). Bump it when that code changes what comes out, so old entries are not reused.
PIPELINE_VERSION = 1
_ENTRY = "lab.ingest-cache-entry/2"


def default_dir() -> Path:
    """``<lab cache>/ingest`` (``$LAB_CACHE_DIR``, else ``~/.cache/lab``)."""
    from lab.models import cache_dir

    return cache_dir() / "ingest"


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 (hex) and size of the file's bytes, read in blocks (bounded memory)."""
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
    return digest.hexdigest(), path.stat().st_size


def cache_key(sha256: str, extractor: str, version: str, options: dict[str, Any]) -> str:
    """The key of an extraction: everything that changes its result."""
    blob = json.dumps({"sha256": sha256, "extractor": extractor, "version": version, "options": options,
                       "pipeline": PIPELINE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class ExtractionCache:
    """Extractions by key, on disk.

    Parameters
    ----------
    folder:
        Where the entries live; :func:`default_dir` when None.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_dir()

    def _paths(self, key: str) -> tuple[Path, Path]:
        base = self.folder / key[:2] / key
        return base.with_suffix(".txt"), base.with_suffix(".json")

    def text_path(self, key: str) -> Path:
        """The file holding the text of entry ``key`` (for copying it into a corpus folder)."""
        return self._paths(key)[0]

    def get(self, key: str) -> Extraction | None:
        """The extraction stored under ``key``, or None (absent or unreadable)."""
        txt, meta = self._paths(key)
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("format") != _ENTRY:
                return None
            text = txt.read_text(encoding="utf-8")
            if len(text) != data["chars"]:
                return None
            return Extraction(
                text=text, title=data["title"],
                pages=[PageSpan(page=p, start=s, end=e) for p, s, e in data["pages"]],
                sections=[Section(title=t, level=lv, start=s, end=e) for t, lv, s, e in data["sections"]],
                scanned_pages=list(data["scanned_pages"]), ocr_pages=list(data["ocr_pages"]),
                boilerplate=dict(data["boilerplate"]),
                warnings=[IngestWarning(**w) for w in data["warnings"]])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, ex: Extraction) -> None:
        """Store ``ex`` under ``key`` (the text first, the JSON that makes the entry visible last)."""
        txt, meta = self._paths(key)
        txt.parent.mkdir(parents=True, exist_ok=True)
        write_text(txt, ex.text)
        # compact (page and section spans as arrays): the entry is read by code, and a long PDF's
        # page map is most of it
        write_text(meta, json.dumps({
            "format": _ENTRY, "chars": len(ex.text), "title": ex.title,
            "pages": [(p.page, p.start, p.end) for p in ex.pages],
            "sections": [(s.title, s.level, s.start, s.end) for s in ex.sections],
            "scanned_pages": ex.scanned_pages, "ocr_pages": ex.ocr_pages, "boilerplate": ex.boilerplate,
            "warnings": [w.model_dump() for w in ex.warnings]}, separators=(",", ":"), ensure_ascii=False))

    def last_manifest(self, out: Path) -> Path:
        """Where the copy of the last manifest written to the output folder ``out`` is kept."""
        name = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:24]
        path = self.folder / "manifests" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def copy_text(self, key: str, dest: Path) -> None:
        """Copy the text of entry ``key`` to ``dest`` (its folder is created)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.text_path(key), dest)
