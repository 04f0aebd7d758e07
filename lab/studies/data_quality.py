"""The data-quality stage: :func:`lab.data.quality.profile` as a stage, with its plots and report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.data.quality import QualityReport, profile
from lab.stage import StagePaths, stage


@dataclass
class DataQualityResult:
    """The profile of every corpus and QA set, and the tokenizer its token counts use."""

    report: QualityReport
    tokenizer: str

    def metrics(self) -> dict[str, float | int]:
        return self.report.metrics()

    def finding(self) -> str:
        return self.report.finding()

    def write(self, out_dir: Path) -> None:
        """The report's tables and metrics (:meth:`QualityReport.write`) and two plots."""
        from lab import viz

        out_dir = Path(out_dir)
        self.report.write(out_dir)
        fig = viz.hist_by_group(self.report.doc_tokens, "tokens", "corpus", title="Document length",
                                xlabel=f"tokens per document ({self.tokenizer})")
        viz.save(fig, out_dir / "plots" / "doc_tokens_hist.png")
        # true totals per (where, kind); report.problems keeps at most a few hundred example rows per kind
        fig = viz.bar_counts(self.report.problem_counts, "where", "kind", "count", title="Problems found")
        viz.save(fig, out_dir / "plots" / "problems.png")

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        r = self.report
        extraction: list[tuple[str, Any]] = []
        if r.extraction is not None:  # ingested corpora only: their findings by file and page
            f = r.extraction.findings
            extraction = [
                ("Extraction findings (true counts)", r.extraction.counts),
                ("Extraction findings (at most 5 per kind)", f.groupby("kind").head(5) if len(f) else "no findings"),
                ("Ingested files", r.extraction.documents),
            ]
        return [
            ("Corpora", r.corpora),
            ("Document length", out_dir / "plots" / "doc_tokens_hist.png"),
            ("QA sets", r.qa_sets),
            ("Problems found (true totals per place and kind)", out_dir / "plots" / "problems.png"),
            ("Problem counts", r.problem_counts),
            ("Examples (at most 5 per kind)", r.problems.groupby("kind").head(5) if not r.problems.empty
             else "no problems"),
            ("Near-duplicate pairs (first 20)", r.near_duplicate_pairs.head(20)),
            *extraction,
        ]


@stage("data_quality")
def run(cfg: Any, paths: StagePaths) -> DataQualityResult:
    """Profile the corpora and QA sets of ``cfg`` (:class:`lab.config.DataQualityConfig`)."""
    return DataQualityResult(report=profile(cfg, paths.root), tokenizer=cfg.tokenizer)
