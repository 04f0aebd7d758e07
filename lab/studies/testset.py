"""The test-set stage: :func:`lab.testset.generate_testset` over the ingested corpus, plus the team's
own questions (:func:`lab.testset.import_questions`) when the section names a file.

Outputs under ``out_dir``: ``testset.csv`` (+ ``.meta.json``), ``human.csv`` (+ meta; header
only when the section names no ``questions`` file), ``metrics.json`` (kept per type, filtered per filter: deterministic for a
seed and a cache-free rerun alike) and ``run_stats.json`` (seconds per kept question, cache hits:
machine state, for MLflow only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.stage import StagePaths, stage
from lab.testset import TestsetResult, generate_testset, import_questions

TESTSET_FILE = "testset.csv"
HUMAN_FILE = "human.csv"


@dataclass
class TestsetStageResult:
    """The generated test set and, when the section names one, the team's own questions."""

    generated: TestsetResult
    human: TestsetResult | None = None

    __test__ = False

    def metrics(self) -> dict[str, Any]:
        m = self.generated.meta
        out: dict[str, Any] = {"kept": m["kept"], **{f"kept.{t}": v for t, v in m["counts"].items()},
                               **{f"filtered.{f}": v for f, v in m["filtered"].items()},
                               **{f"candidates.{t}": v for t, v in m["candidates"].items()},
                               "answer_spans.free": m["answer_spans"]["free"],
                               "split.heldout": m["split"]["heldout"]}
        if self.human is not None:
            out["human.questions"] = self.human.meta["kept"]
            out.update({f"human.{k}": v for k, v in self.human.meta["located"].items()})
        return out

    def run_stats(self) -> dict[str, Any]:
        """Timings and cache counters of this run (machine state): ``run_stats.json``, MLflow only."""
        m = self.generated.meta
        return {**{f"timings.{k}": v for k, v in m["timings"].items() if v is not None},
                **{f"generations.{k}": v for k, v in m["generations"].items()}}

    def finding(self) -> str:
        m = self.generated.meta
        tried = sum(m["candidates"].values())
        dropped = sum(m["filtered"].values())
        top = sorted(((v, f) for f, v in m["filtered"].items() if v), reverse=True)[:3]
        per = m["timings"]["seconds_per_kept"]
        most = f", most by {', '.join(f'{f} ({v})' for v, f in top)}" if top else ""
        lines = [
            (f"**{m['kept']} of {m['n']} questions kept** ({', '.join(f'{t} {v}' for t, v in m['counts'].items())}) "
             f"from {tried} passages tried with `{m['generator']}` (prompt `{m['prompt_version']}`, seed {m['seed']}); "
             f"{dropped} dropped by the filters{most}."),
            (f"Answers that are spans of their passage: {m['answer_spans']['exact'] + m['answer_spans']['normalised']} "
             f"of {m['kept'] - m['counts'].get('unanswerable', 0)}; grounded judge: `{(m['judge'] or {}).get('spec')}`. "
             f"Split by {m['split']['by']}: {m['split']['train']} train, {m['split']['heldout']} held out."),
            (f"Generation took {per:.1f} s per kept question on this machine ({m['generations']['generated']} "
             f"generated, {m['generations']['cached']} from the cache)." if per else
             "Every reply came from the generation cache."),
        ]
        if m["shortfall"]:
            lines.append("Short of the target: " + "; ".join(f"{t}: {s['kept']} of {s['wanted']} ({s['why']})"
                                                              for t, s in m["shortfall"].items()) + ".")
        if self.human is not None:
            h = self.human.meta["located"]
            lines.append(f"The team's own questions: {self.human.meta['kept']}, answers located exactly {h['exact']}, "
                         f"after normalising {h['normalised']}, by offsets {h['offsets']}, not found {h['not_found']} "
                         f"(document-level relevance only).")
        lines.append("Synthetic questions are a draft: a person reviews them (the review file beside the CSV) "
                     "before a study trusts them.")
        return "\n\n".join(lines)

    def write(self, out_dir: Path) -> None:
        import json

        from lab.io import write_text

        out_dir = Path(out_dir)
        self.generated.write(out_dir / TESTSET_FILE)
        # always written (header only without a questions file), so the stage's outputs are fixed
        human = self.human or TestsetResult([], {"generator": "human", "source_file": None, "kept": 0})
        human.write(out_dir / HUMAN_FILE)
        write_text(out_dir / "metrics.json", json.dumps(self.metrics(), indent=2, sort_keys=True) + "\n")
        write_text(out_dir / "run_stats.json", json.dumps(self.run_stats(), indent=2, sort_keys=True) + "\n")

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        import pandas as pd

        m = self.generated.meta
        filtered = pd.DataFrame([{"filter": f, **{t: c[f] for t, c in m["filtered_by_type"].items()}}
                                 for f in m["filtered"]]).set_index("filter")
        sample = pd.DataFrame(self.generated.rows)[["question_type", "question", "answer", "corpus_id", "split"]] \
            if self.generated.rows else "no questions kept"
        sections: list[tuple[str, Any]] = [
            ("Filtered, per filter and type (a candidate counts once, at its first failing filter)", filtered),
            ("Questions kept (first 30)", sample.groupby("question_type").head(10) if not isinstance(sample, str)
             else sample),
        ]
        if self.human is not None:
            nf = self.human.meta["not_found"]
            sections.append(("Own questions whose answer was not found", pd.DataFrame(nf) if nf else "none"))
        return sections


@stage("testset")
def run(cfg: Any, paths: StagePaths, *, client: Any = None, identity: dict[str, Any] | None = None,
        cache_dir: Path | None = None) -> TestsetStageResult:
    """Generate the test set of ``cfg`` (:class:`lab.config.TestsetConfig`); ``client``, ``identity``
    and ``cache_dir`` let tests run it with a fake backend and a private cache."""
    generated = generate_testset(paths.of(cfg.corpus_dir), cfg.n, seed=cfg.seed, types=cfg.types,
                                 settings=cfg, client=client, identity=identity, cache_dir=cache_dir,
                                 root=paths.root)
    human = import_questions(paths.of(cfg.questions), paths.of(cfg.corpus_dir), seed=cfg.seed, settings=cfg) \
        if cfg.questions else None
    return TestsetStageResult(generated, human)
