"""The ingest stage: the ``ingest`` section's sources (your own documents) as a corpus folder.

The run function extracts every file (or takes it from the content-addressed cache outside the
output folder, so ``dvc repro`` re-extracts only what changed although DVC empties the outputs
first) and prints one progress line per file to standard error; the result writes
``<out_dir>/docs`` (the corpus folder the other stages read), ``<out_dir>/manifest.json`` and
``<out_dir>/metrics.json`` (:mod:`lab.ingest`), which holds what must reproduce (counts); this run's
state (files extracted vs taken from the cache, seconds, pages/s) goes to ``run_stats.json`` (MLflow,
not git), as in every stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.ingest.ingest import Ingestion, IngestOptions, collect
from lab.ingest.manifest import Manifest
from lab.io import write_json
from lab.stage import StagePaths, stage


@dataclass
class IngestResult:
    """The ingestion of the configured sources, and the manifest once written."""

    ingestion: Ingestion
    sources: list[str]
    manifest: Manifest | None = None

    def write(self, out_dir: Path) -> None:
        """``docs/``, ``manifest.json`` (atomic, the manifest last), ``metrics.json`` and ``run_stats.json``."""
        out_dir = Path(out_dir)
        self.manifest = self.ingestion.write(out_dir)
        write_json(out_dir / "metrics.json", self.metrics())
        write_json(out_dir / "run_stats.json", self.run_stats())

    def metrics(self) -> dict[str, Any]:
        """Counts: documents, pages, characters, scans, failures, boilerplate per kind, documents per format."""
        s = self.ingestion.summary()
        out: dict[str, Any] = {k: s[k] for k in ("documents", "with_text", "pages", "chars", "scanned_pages",
                                                 "ocr_pages", "duplicates", "failed", "skipped")}
        out.update({f"boilerplate.{k}": v for k, v in s["boilerplate"].items()})
        out.update({f"format.{k}": v for k, v in s["formats"].items()})
        out.update({f"warnings.{k}": v for k, v in s["warnings"].items()})
        return out

    def run_stats(self) -> dict[str, Any]:
        """This run's state (machine and cache): files extracted vs from the cache, seconds, pages/s."""
        s = self.ingestion.summary()
        return {k: s[k] for k in ("extracted", "cached", "seconds", "pages_per_s")}

    def finding(self) -> str:
        s = self.ingestion.summary()
        formats = ", ".join(f"{n} {fmt}" for fmt, n in s["formats"].items())
        lines = [(f"Ingested **{s['documents']} documents** ({formats}) from {', '.join(self.sources)}: "
                  f"{s['pages']:,} PDF pages, {s['chars']:,} characters of text in {s['with_text']} text files; "
                  f"{s['extracted']} extracted in this run, {s['cached']} from the cache, {s['seconds']:.1f} s.")]
        if s["scanned_pages"]:
            scans = [d.id for d in self.ingestion.documents if d.scanned_pages]
            how = (f"{s['ocr_pages']} read by OCR" if self.ingestion.options.ocr
                   else "OCR is off (`ingest.ocr: true` reads them with Tesseract)")
            lines.append(f"{s['scanned_pages']} scanned pages without a text layer in {len(scans)} document(s) "
                         f"({', '.join(scans[:5])}): {how}.")
        removed = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in s["boilerplate"].items())
        if removed:
            lines.append(f"Boilerplate removed: {removed}.")
        if s["failed"]:
            lines.append(f"**{s['failed']} file(s) failed** (see the table below; each error says how to fix it).")
        if s["skipped"]:
            lines.append(f"{s['skipped']} file(s) skipped (excluded, hidden or of an unknown format; listed below).")
        return " ".join(lines)

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        import pandas as pd

        docs = pd.DataFrame([{"id": d.id, "format": d.format, "title": d.title, "pages": len(d.pages) or None,
                              "sections": len(d.sections), "chars": d.chars, "scanned_pages": len(d.scanned_pages),
                              "warnings": len(d.warnings), "duplicate_of": d.duplicate_of}
                             for d in self.ingestion.documents])
        warnings = pd.DataFrame([{"id": d.id, "kind": w.kind, "page": w.page, "message": w.message}
                                 for d in self.ingestion.documents for w in d.warnings])
        failed = pd.DataFrame([f.model_dump() for f in self.ingestion.failed])
        skipped = pd.DataFrame([f.model_dump() for f in self.ingestion.skipped])
        return [
            ("Documents", docs),
            ("Warnings (first 50)", warnings.head(50) if not warnings.empty else "none"),
            ("Failed files", failed if not failed.empty else "none"),
            ("Skipped files", skipped if not skipped.empty else "none"),
            ("Extractors", pd.DataFrame(sorted(self.ingestion.extractors.items()), columns=["format", "extractor"])),
        ]


@stage("ingest")
def run(cfg: Any, paths: StagePaths) -> IngestResult:
    """Extract the documents of ``cfg`` (:class:`lab.config.IngestConfig`), one progress line per
    file on standard error. Sources are read relative to the project root and named as configured."""
    options = IngestOptions(include=tuple(cfg.include), exclude=tuple(cfg.exclude), ocr=cfg.ocr,
                            ocr_lang=cfg.ocr_lang, ocr_dpi=cfg.ocr_dpi)
    ingestion = collect(list(cfg.sources), options, progress="lines", skip_dirs=(paths.out_dir,), base=paths.root)
    return IngestResult(ingestion=ingestion, sources=list(cfg.sources))
