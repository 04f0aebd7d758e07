"""Ingestion end to end: find the files, extract each (or take it from the cache), and write the
corpus folder and its manifest.

Two steps, so the DVC stage can keep the stage protocol (its run function computes, its result
writes): :func:`collect` extracts every file into the content-addressed cache
(:mod:`lab.ingest.cache`) and returns an :class:`Ingestion` holding the records, not the texts;
:meth:`Ingestion.write` builds ``OUT/docs`` in a temp folder from the cached texts and swaps it in,
then writes ``OUT/manifest.json`` (both atomic: a killed run leaves the previous corpus whole).
:func:`ingest` does both.

A file that cannot be read is a ``failed`` entry naming the file, the page or line, and the fix;
the others are ingested. An unexpected exception of an extractor is caught per file the same way
(its type and message kept), so one odd file never loses a corpus.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.ingest.cache import ExtractionCache, cache_key, file_sha256
from lab.ingest.discover import SourceFile, discover
from lab.ingest.formats import EXTRACTORS, ExtractError, Extraction, ExtractOptions, Extractor, suffix_map
from lab.ingest.manifest import (
    DocumentRecord,
    FailedFile,
    IngestWarning,
    Manifest,
    SkippedFile,
    diff,
    read_manifest,
    write_manifest,
)
from lab.ingest.progress import IngestProgress, ProgressMode

DOCS = "docs"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class IngestOptions:
    """What to ingest and how (the ``ingest`` section of params.yaml, the CLI's options).

    Attributes
    ----------
    include, exclude:
        Globs (:mod:`lab.ingest.discover`).
    ocr, ocr_lang, ocr_dpi:
        OCR of scanned PDF pages (:class:`lab.ingest.formats.ExtractOptions`).
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ocr: bool = False
    ocr_lang: str = "eng"
    ocr_dpi: int = 300

    def extract_options(self) -> ExtractOptions:
        """The options the extractors see."""
        return ExtractOptions(ocr=self.ocr, ocr_lang=self.ocr_lang, ocr_dpi=self.ocr_dpi)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``options``."""
        return {"include": list(self.include), "exclude": list(self.exclude), "ocr": self.ocr,
                "ocr_lang": self.ocr_lang, "ocr_dpi": self.ocr_dpi}


@dataclass
class Ingestion:
    """The outcome of :func:`collect`: one record per document (texts are in the cache), the
    failures, what was skipped, and counters.

    Attributes
    ----------
    records:
        ``(record, cache key)`` per document, sorted by id; the record's ``text_file`` is where its
        text goes under the output folder, or None.
    extracted, cached:
        Files extracted in this run, and files whose extraction came from the cache.
    seconds:
        Wall time of :func:`collect`.
    """

    records: list[tuple[DocumentRecord, str]]
    failed: list[FailedFile]
    skipped: list[SkippedFile]
    options: IngestOptions
    extractors: dict[str, str]
    cache: ExtractionCache
    extracted: int = 0
    cached: int = 0
    seconds: float = 0.0
    extract_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def documents(self) -> list[DocumentRecord]:
        """The records."""
        return [r for r, _ in self.records]

    def write(self, out: str | Path) -> Manifest:
        """Write ``out/docs/<id>.txt`` (swapped in whole) and then ``out/manifest.json``, whose
        ``changes`` compare with the previous manifest of ``out`` (:func:`previous_manifest`);
        returns the manifest."""
        from lab.io import atomic_dir

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(f".{DOCS}.tmp-*"):   # left by a run that was killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        previous = previous_manifest(out, self.cache)
        with atomic_dir(out / DOCS) as tmp:
            for record, key in self.records:
                if record.text_file is not None:
                    self.cache.copy_text(key, tmp / record.text_file[len(DOCS) + 1:])
        manifest = Manifest(documents=self.documents, failed=self.failed, skipped=self.skipped,
                            changes=diff(previous, self.documents), options=self.options.to_dict(),
                            extractors=self.extractors)
        write_manifest(out / MANIFEST, manifest)
        try:   # a copy the next run compares with when DVC has emptied ``out`` before it
            shutil.copyfile(out / MANIFEST, self.cache.last_manifest(out))
        except OSError:
            pass   # only ``changes`` of a later run under DVC depends on it
        return manifest

    def summary(self) -> dict[str, Any]:
        """Counts for the CLI, the stage's metrics and the benchmark."""
        docs = self.documents
        boiler: Counter[str] = Counter()
        for d in docs:
            boiler.update(d.boilerplate)
        pages = sum(len(d.pages) for d in docs)
        return {
            "documents": len(docs), "with_text": sum(1 for d in docs if d.text_file is not None),
            "pages": pages, "chars": sum(d.chars for d in docs if d.duplicate_of is None),
            "scanned_pages": sum(len(d.scanned_pages) for d in docs), "ocr_pages": sum(len(d.ocr_pages) for d in docs),
            "duplicates": sum(1 for d in docs if d.duplicate_of is not None),
            "failed": len(self.failed), "skipped": len(self.skipped),
            "warnings": dict(sorted(Counter(w.kind for d in docs for w in d.warnings).items())),
            "boilerplate": dict(sorted(boiler.items())),
            "formats": dict(sorted(Counter(d.format for d in docs).items())),
            "extracted": self.extracted, "cached": self.cached, "seconds": round(self.seconds, 3),
            "pages_per_s": round(pages / self.seconds, 1) if self.seconds > 0 else 0.0,
        }


def previous_manifest(out: Path, cache: ExtractionCache | None = None) -> Manifest | None:
    """What ``changes`` compares with: the manifest in ``out``, else (DVC empties a stage's outputs
    before it runs it) the copy of the last manifest written to ``out`` kept in ``cache``; None when
    there is neither or it cannot be read (every document then counts as added)."""
    for path in (out / MANIFEST, cache.last_manifest(out) if cache is not None else None):
        if path is not None and path.is_file():
            try:
                return read_manifest(path)
            except DataError:
                continue
    return None


def collect(sources: list[str | Path], options: IngestOptions | None = None, *,
            cache: ExtractionCache | None = None, progress: ProgressMode = "auto",
            skip_dirs: tuple[Path, ...] = (), base: Path | None = None) -> Ingestion:
    """Extract every file under ``sources`` (or take it from the cache).

    Parameters
    ----------
    sources:
        Folders and files.
    options:
        Globs and OCR (:class:`IngestOptions`).
    cache:
        The extraction cache (default: ``<lab cache>/ingest``).
    progress:
        ``auto``, ``bar``, ``lines`` or ``off`` (:class:`lab.ingest.progress.IngestProgress`).
    skip_dirs:
        Folders not to walk into (the output folder).
    base:
        Folder relative ``sources`` are read from (default: the working directory); the manifest
        and messages name them as given.

    Raises
    ------
    DataError
        A source that does not exist; no file to ingest at all; OCR asked for without Tesseract
        (:class:`lab.ingest.ocr.OcrUnavailable`); an extraction cache that cannot be written.
    """
    options = options or IngestOptions()
    cache = cache or ExtractionCache()
    started = time.perf_counter()
    if options.ocr:
        from lab.ingest.ocr import check_available

        check_available(options.ocr_lang)
    files, skipped = discover(sources, suffix_map(), options.include, options.exclude, skip_dirs, base)
    if not files:
        why = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:5]) or "the sources are empty"
        raise DataError(f"no file to ingest under {', '.join(map(str, sources))} ({len(skipped)} skipped: {why})")
    extractors: dict[str, Extractor] = {f.format: EXTRACTORS.get(f.format)() for f in files}
    versions = {fmt: ext.version() for fmt, ext in extractors.items()}
    result = Ingestion(records=[], failed=[], skipped=skipped, options=options,
                       extractors={fmt: f"{ext.name} {versions[fmt]}" for fmt, ext in sorted(extractors.items())},
                       cache=cache)
    first_by_sha: dict[str, DocumentRecord] = {}
    bar = IngestProgress(len(files), progress)
    try:
        for i, f in enumerate(files, start=1):
            bar.start(i, f.doc_id)
            t0 = time.perf_counter()
            outcome = _one(f, extractors[f.format], versions[f.format], options, cache, first_by_sha, result, bar)
            took = time.perf_counter() - t0
            result.extract_seconds[f.format] = result.extract_seconds.get(f.format, 0.0) + took
            bar.done(f"{outcome} ({took:.2f} s)")
    finally:
        bar.close()
    result.records.sort(key=lambda r: r[0].id)
    result.seconds = time.perf_counter() - started
    return result


def _one(f: SourceFile, ext: Extractor, version: str, options: IngestOptions, cache: ExtractionCache,
         first_by_sha: dict[str, DocumentRecord], result: Ingestion, bar: IngestProgress) -> str:
    """Ingest one file into ``result``; returns a one-line summary for the progress display."""
    try:
        sha, size = file_sha256(f.path)
    except OSError as exc:
        return _fail(result, f, f"{f.display}: cannot be read ({exc.strerror or exc}); check that it exists and "
                                "that you may read it")
    if size == 0:
        return _fail(result, f, f"{f.display}: empty file (0 bytes), nothing to ingest; remove it, or leave it "
                                "out with --exclude")
    key = cache_key(sha, ext.name, version, options.extract_options().identity())
    ex = cache.get(key)
    state = "cached"
    if ex is None:
        try:
            ex = ext.extract(f.path, options.extract_options(), bar.page)
        except ExtractError as exc:
            return _fail(result, f, exc.located(f.display))
        except DataError:
            raise   # OCR unavailable and the like: a problem of the run, not of the file
        except Exception as exc:  # noqa: BLE001 (one odd file must not lose the corpus; the error is kept)
            return _fail(result, f, f"{f.display}: the {f.format} extractor ({ext.name}) failed on it "
                                    f"({type(exc).__name__}: {exc}); the file may be damaged: open it and save it "
                                    "again, or leave it out with --exclude")
        try:
            cache.put(key, ex)
        except OSError as exc:
            raise DataError(f"{cache.folder}: the extraction cache cannot be written ({exc.strerror or exc}); "
                            "set LAB_CACHE_DIR to a writable folder") from None
        result.extracted += 1
        state = "extracted"
    else:
        result.cached += 1
    record = _record(f, sha, size, ext, version, ex, first_by_sha.get(sha))
    first_by_sha.setdefault(sha, record)
    result.records.append((record, key))
    pages = f"{len(ex.pages)} pages, " if ex.pages else ""
    return f"{pages}{len(ex.text):,} chars, {state}" + (f", {len(ex.warnings)} warnings" if ex.warnings else "")


def _fail(result: Ingestion, f: SourceFile, error: str) -> str:
    result.failed.append(FailedFile(source=f.source, root=f.root, error=error))
    return f"FAILED: {error}"


def _record(f: SourceFile, sha: str, size: int, ext: Extractor, version: str, ex: Extraction,
            original: DocumentRecord | None) -> DocumentRecord:
    """The manifest record of ``f`` (``original``: an earlier document with the same bytes)."""
    warnings = list(ex.warnings)
    has_text = bool(ex.text.strip())
    if not has_text and not any(w.kind == "empty_text" for w in warnings):
        why = ("every page is a scan; ingest with --ocr to read them" if ex.scanned_pages and not ex.ocr_pages
               else "see the other warnings")
        warnings.append(IngestWarning(kind="empty_text", message=f"no text extracted ({why}); no .txt written"))
    if original is not None:
        warnings.append(IngestWarning(kind="duplicate", message=f"the same bytes as {original.id!r}: its text is "
                                                                "that document's file; no .txt written"))
    text_file = f"{DOCS}/{f.doc_id}.txt" if has_text and original is None else None
    return DocumentRecord(
        id=f.doc_id, source=f.source, root=f.root, sha256=sha, bytes=size, format=f.format,  # type: ignore[arg-type]
        extractor=ext.name, extractor_version=version, title=ex.title, chars=len(ex.text), text_file=text_file,
        pages=ex.pages, sections=ex.sections, scanned_pages=ex.scanned_pages, ocr_pages=ex.ocr_pages,
        boilerplate=ex.boilerplate, warnings=warnings, duplicate_of=original.id if original is not None else None)


def ingest(sources: list[str | Path], out: str | Path, options: IngestOptions | None = None, *,
           cache: ExtractionCache | None = None, progress: ProgressMode = "auto") -> tuple[Ingestion, Manifest]:
    """:func:`collect` the files under ``sources`` and :meth:`~Ingestion.write` them to ``out``.

    The output folder is never walked into, even when it lies under a source. Returns the
    ingestion (counters) and the manifest written.
    """
    out = Path(out)
    result = collect(sources, options, cache=cache, progress=progress, skip_dirs=(out,))
    return result, result.write(out)
