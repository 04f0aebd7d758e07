"""Chunking evaluation as in Chroma's report: chunk a pooled collection, retrieve, score ranges.

Input is any corpus folder (one document per file; the file stem is the ``corpus_id``) and a
questions CSV in the format of Chroma's ``questions_df.csv`` (question, references as a JSON list
of ``{content, start_index, end_index}``, corpus_id), or CUAD's clause table turned into the same
shape (:func:`cuad_questions`). All documents' chunks go into ONE collection (the report pooled its
five corpora, so chunks of other corpora compete and dilute precision); questions are embedded with
the same embedder and the top-k chunks found by exact cosine similarity. Scores per question for
k = "min" (the number of chunks touching a reference, capped at 20), 5 and 10, by
:mod:`lab.metrics.chunk`; per-corpus rows are subsets of the pooled run.

Differences of a point or two between chunkers on ~130 questions are within noise, so the study
also reports uncertainty over questions (:mod:`lab.metrics.stats`): a percentile-bootstrap CI of
each mean (:meth:`StudyResult.ci_table`) and a paired, per-question comparison of every chunker
with a baseline chunker (:meth:`StudyResult.paired`), summarised in words by
:meth:`StudyResult.finding`.

(Over 500 lines on purpose: one study is one module, and no study imports another; evaluation,
its uncertainty tables and its report share the per-question results held here.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab.chunking.base import Chunk, Chunker
from lab.data.benchmarks import Benchmark, load_benchmark
from lab.errors import DataError
from lab.metrics.chunk import MIN_K_CAP, Located, precision_omega, retrieval_scores
from lab.metrics.stats import bootstrap_ci, paired_comparison
from lab.stage import StagePaths, stage

METRICS = ("recall", "precision", "precision_omega", "iou")
K = int | str
#: Metrics given CIs and paired comparisons by default (precision mostly follows chunk size).
CI_METRICS = ("recall", "iou")
#: The label of ``{chunker: token, size: 512, overlap: 50}``, the default of ChunkingStudyConfig.baseline.
DEFAULT_BASELINE = "token-512-50"
#: Columns of StudyResult.paired (also when it is empty: a study of the baseline alone).
PAIRED_COLUMNS = ["benchmark", "chunker", "baseline", "k_label", "metric", "n", "mean", "baseline_mean",
                  "diff", "ci_low", "ci_high", "p_value", "wins", "ties", "losses", "significant", "verdict"]


# --------------------------------------------------------------------------- evaluation


@dataclass
class ChunkEvalResult:
    """Per-question scores of one chunker on one pooled collection, plus chunk statistics."""

    chunker: str
    params: dict[str, Any]
    per_question: pd.DataFrame          # question, corpus, k_label, k, recall, precision, precision_omega, iou
    chunk_tokens: pd.DataFrame          # corpus, tokens (one row per chunk)

    def summary(self, by: str | None = None) -> pd.DataFrame:
        """Mean and population std (as the report) in percent per k, optionally per ``by`` (``corpus``)."""
        keys = ["k_label"] + ([by] if by else [])
        g = self.per_question.groupby(keys, sort=False)[list(METRICS)]
        mean, std = g.mean() * 100, g.std(ddof=0) * 100
        out = mean.join(std, lsuffix="", rsuffix="_std").reset_index()
        out.insert(0, "chunker", self.chunker)
        out["n_queries"] = g.size().values
        return out

    def chunk_stats(self) -> dict[str, float]:
        t = self.chunk_tokens["tokens"]
        return {"chunks": len(t), "tokens_mean": float(t.mean()) if len(t) else 0.0,
                "tokens_std": float(t.std(ddof=0)) if len(t) else 0.0,
                "tokens_max": int(t.max()) if len(t) else 0}


def chunk_documents(chunker: Chunker, documents: dict[str, str], progress: bool = False) -> list[Chunk]:
    """All chunks of all documents, in document order."""
    from lab.progress import bar

    out: list[Chunk] = []
    for doc_id in bar(sorted(documents), desc=f"chunking ({chunker.name})", enable=progress, leave=False):
        out.extend(chunker.chunk(documents[doc_id], doc_id))
    return out


def evaluate(
    chunker: Chunker,
    bench: Benchmark,
    embed: Callable[[list[str]], np.ndarray],
    ks: Sequence[K] = ("min", 5, 10),
    *,
    tokenizer: str = "cl100k_base",
    progress: bool = False,
    scope: str = "pooled",
) -> ChunkEvalResult:
    """Chunk ``bench.documents`` into one pooled collection, retrieve for each question, score.

    ``embed`` maps texts to L2-normalised rows (a :class:`lab.embed.CachedEmbedder`: chunks seen
    before are not embedded again). Ties in similarity are broken by collection order.
    ``scope="document"`` retrieves only among the chunks of the question's own document: the
    setting of questions that do not name their document (CUAD's "highlight the X clause" asked of
    each contract), where a pooled search measures document identification instead of chunking.
    """
    if scope not in ("pooled", "document"):
        raise ValueError(f"scope must be 'pooled' or 'document', got {scope!r}")
    from lab.tokens import count_tokens_many

    chunks = chunk_documents(chunker, bench.documents, progress)
    if not chunks:
        raise DataError(f"{bench.name}: the chunker {chunker.name!r} produced no chunks")
    if not bench.questions:
        raise DataError(f"{bench.name}: no questions to evaluate")
    chunk_vecs = np.asarray(embed([c.text for c in chunks]), dtype=np.float32)
    query_vecs = np.asarray(embed([q.question for q in bench.questions]), dtype=np.float32)
    doc_ranges: dict[str, np.ndarray] = {}
    for doc in {c.doc_id for c in chunks}:
        doc_ranges[doc] = np.array([(c.start, c.end) for c in chunks if c.doc_id == doc], dtype=np.int64)

    refs = [[Located(r.doc_id or q.doc_id or "", r.start, r.end) for r in q.references] for q in bench.questions]
    omega_k = [precision_omega(r, doc_ranges) for r in refs]
    depth = max([int(k) for k in ks if k != "min"] + [min(MIN_K_CAP, max(m for _, m in omega_k))])
    depth = min(depth, len(chunks))
    scores = query_vecs @ chunk_vecs.T
    if scope == "document":
        chunk_docs = np.array([c.doc_id for c in chunks])
        question_docs = np.array([q.doc_id or "" for q in bench.questions])
        scores = np.where(chunk_docs[None, :] == question_docs[:, None], scores, -np.inf)
    # stable top-`depth`: sort by (-score, index)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]

    rows = []
    for qi, q in enumerate(bench.questions):
        omega, min_k = omega_k[qi]
        for label in ks:
            k = min(min_k, MIN_K_CAP) if label == "min" else int(label)
            picked = [j for j in top[qi, :k] if np.isfinite(scores[qi, j])]  # document scope: its own chunks only
            got = [Located(chunks[j].doc_id, chunks[j].start, chunks[j].end) for j in picked]
            s = retrieval_scores(refs[qi], got) if k > 0 else {"recall": 0.0, "precision": 0.0, "iou": 0.0}
            rows.append({"question": q.id, "corpus": q.doc_id, "k_label": str(label), "k": k,
                         **s, "precision_omega": omega})
    tokens = count_tokens_many([c.text for c in chunks], tokenizer)
    return ChunkEvalResult(
        chunker=chunker.name, params=chunker.params(),
        per_question=pd.DataFrame(rows),
        chunk_tokens=pd.DataFrame({"corpus": [c.doc_id for c in chunks], "tokens": tokens}),
    )


# --------------------------------------------------------------------------- the study


@dataclass
class StudyResult:
    """Every (benchmark, chunker) evaluation of a chunking study, as tables."""

    results: list[tuple[str, str, ChunkEvalResult]]   # (benchmark, chunker label, result)
    store_stats: dict[str, int]                        # this run's embedding-store counters
    skipped: dict[str, list[str]]                      # per benchmark: dropped questions and why
    notes: dict[str, dict[str, int]]                   # per benchmark: counted caveats
    context: dict[str, Any]                            # what every configuration shared (embedder, ks...)
    baseline: str = DEFAULT_BASELINE                   # chunker label the paired comparisons are against
    n_resamples: int = 1000                            # bootstrap resamples (and sign flips) per CI

    def table(self, by: str | None = None) -> pd.DataFrame:
        """Mean/std (percent) per benchmark, chunker and k (and ``by``), with chunk statistics."""
        frames = []
        for bench, label, res in self.results:
            df = res.summary(by)
            df.insert(0, "benchmark", bench)
            df["chunker"] = label
            for key, value in res.chunk_stats().items():
                df[f"chunk_{key}"] = value
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def chunk_tokens(self) -> pd.DataFrame:
        """One row per chunk: benchmark, chunker, tokens (for size histograms)."""
        return pd.concat([r.chunk_tokens.assign(benchmark=b, chunker=label) for b, label, r in self.results],
                         ignore_index=True)

    def metrics(self) -> dict[str, float]:
        """Flat metrics ``<benchmark>.<chunker>.k<k>.<metric>``, chunk counts and skipped questions.

        Deterministic given params and data (this file is tracked in git and compared by
        ``dvc exp show``); the embedding store's counters depend on cache state: :meth:`run_stats`.
        """
        out: dict[str, float] = {}
        for row in self.table().to_dict("records"):
            base = f"{row['benchmark']}.{row['chunker']}.k{row['k_label']}"
            for m in METRICS:
                out[f"{base}.{m}"] = round(float(row[m]), 3)
        for bench, label, res in self.results:
            out[f"{bench}.{label}.chunks"] = res.chunk_stats()["chunks"]
        for bench, skipped in self.skipped.items():
            out[f"{bench}.questions_skipped"] = len(skipped)
            out[f"{bench}.questions"] = self.context["n_questions"][bench]
            for key, value in self.notes.get(bench, {}).items():
                out[f"{bench}.{key}"] = value
        out.update(self._uncertainty_metrics())
        return out

    def _uncertainty_metrics(self) -> dict[str, float]:
        """The CI and paired-comparison keys of :meth:`metrics` (95%, seed 0; omitted where undefined)."""
        def put(key: str, value: float, digits: int = 3) -> None:
            if np.isfinite(value):
                out[key] = round(float(value), digits) + 0.0   # + 0.0: no "-0.0" in the tracked file

        out: dict[str, float] = {}
        for row in self.ci_table().to_dict("records"):
            base = f"{row['benchmark']}.{row['chunker']}.k{row['k_label']}"
            for m in CI_METRICS:
                put(f"{base}.{m}_ci95_low", row[f"{m}_ci_low"])
                put(f"{base}.{m}_ci95_high", row[f"{m}_ci_high"])
        for row in self.paired().to_dict("records"):
            key = f"{row['benchmark']}.{row['chunker']}.k{row['k_label']}.{row['metric']}_vs_baseline"
            put(key, row["diff"])
            put(f"{key}_ci95_low", row["ci_low"])
            put(f"{key}_ci95_high", row["ci_high"])
            put(f"{key}_p", row["p_value"], 4)
        return out

    # ----------------------------------------------------------------------- uncertainty

    def ci_table(self, n_resamples: int | None = None, confidence: float = 0.95, seed: int = 0,
                 metrics: Sequence[str] = CI_METRICS) -> pd.DataFrame:
        """Mean (percent) of each metric with its percentile-bootstrap CI over questions.

        Parameters
        ----------
        n_resamples:
            Bootstrap resamples; ``None`` = :attr:`n_resamples` (the config's ``n_resamples``).
        confidence:
            Coverage of the intervals.
        seed:
            Every cell is resampled with this same seed, so a cell's CI does not depend on which
            other chunkers or benchmarks the study holds, and a rerun gives identical numbers.
        metrics:
            Per-question columns to cover (any of :data:`METRICS`).

        Returns
        -------
        DataFrame
            One row per (benchmark, chunker, k_label): ``n_queries`` and, per metric ``m``, ``m``
            (the mean, equal to :meth:`table`'s), ``m_ci_low`` and ``m_ci_high``, all in percent.
            The bounds are NaN with fewer than 2 questions.
        """
        n_resamples = self.n_resamples if n_resamples is None else n_resamples
        rows = []
        for bench, label, res in self.results:
            # the same groupby as ChunkEvalResult.summary, so the means equal table()'s to the bit
            groups = res.per_question.groupby("k_label", sort=False)
            means = groups[list(metrics)].mean() * 100
            for k_label, part in groups:
                row: dict[str, Any] = {"benchmark": bench, "chunker": label, "k_label": k_label,
                                       "n_queries": len(part)}
                for m in metrics:
                    low = high = float("nan")
                    if len(part) >= 2:
                        _, low, high = bootstrap_ci(part[m].to_numpy(), n_resamples, confidence, seed)
                    row.update({m: float(means.loc[k_label, m]), f"{m}_ci_low": low * 100,
                                f"{m}_ci_high": high * 100})
                rows.append(row)
        return pd.DataFrame(rows)

    def paired(self, baseline: str | None = None, n_resamples: int | None = None, confidence: float = 0.95,
               seed: int = 0, metrics: Sequence[str] = CI_METRICS) -> pd.DataFrame:
        """Every chunker against ``baseline`` on the same questions, per benchmark, k and metric.

        Scores are paired by question id within a ``k_label`` (k = "min" is each chunker's own
        number of chunks touching the references, so that row compares like with like per
        question, not equal k). The CI is a percentile bootstrap of the mean per-question
        difference, the p-value a two-sided sign-flip test (:func:`lab.metrics.stats.paired_comparison`).

        Parameters
        ----------
        baseline:
            A chunker label; ``None`` = :attr:`baseline` (the config's ``baseline``).
        n_resamples, confidence, seed, metrics:
            As :meth:`ci_table`; ``n_resamples`` also counts the sign flips of the test.

        Returns
        -------
        DataFrame
            One row per (benchmark, chunker other than the baseline, k_label, metric): ``baseline``,
            ``n`` (questions scored by both), ``mean`` and ``baseline_mean`` (percent), ``diff``
            (chunker minus baseline, percent points) with ``ci_low``/``ci_high``, ``p_value``,
            ``wins``/``ties``/``losses`` (questions where the chunker scores higher/equal/lower),
            ``significant`` (the CI excludes 0) and ``verdict`` ("better", "worse",
            "indistinguishable"; "too few questions" below 2, where the statistics are NaN).

        Raises
        ------
        ValueError
            ``baseline`` is not a chunker of the study, or a benchmark has no baseline result.
        """
        baseline = baseline or self.baseline
        labels = list(dict.fromkeys(label for _, label, _ in self.results))
        if baseline not in labels:
            raise ValueError(f"baseline {baseline!r} is not a chunker of this study; "
                             f"chunkers: {', '.join(labels)}")
        base_res = {bench: res for bench, label, res in self.results if label == baseline}
        n_resamples = self.n_resamples if n_resamples is None else n_resamples
        rows = []
        for bench, label, res in self.results:
            if label == baseline:
                continue
            if bench not in base_res:
                raise ValueError(f"benchmark {bench!r} has no result of the baseline {baseline!r}")
            ours = res.per_question.set_index(["k_label", "question"])
            theirs = base_res[bench].per_question.set_index(["k_label", "question"])
            for k_label in res.per_question["k_label"].unique():
                a, b = ours.loc[k_label], theirs.loc[k_label]
                common = a.index.intersection(b.index, sort=False)
                for m in metrics:
                    row: dict[str, Any] = {"benchmark": bench, "chunker": label, "baseline": baseline,
                                           "k_label": k_label, "metric": m, "n": len(common)}
                    if len(common) >= 2:
                        r = paired_comparison(a.loc[common, m], b.loc[common, m], n_resamples, confidence,
                                              seed)
                        row.update(mean=r["mean_a"] * 100, baseline_mean=r["mean_b"] * 100,
                                   diff=r["mean_diff"] * 100, ci_low=r["ci_low"] * 100,
                                   ci_high=r["ci_high"] * 100, p_value=r["p_value"], wins=r["wins"],
                                   ties=r["ties"], losses=r["losses"])
                        better, worse = r["ci_low"] > 0, r["ci_high"] < 0
                        row.update(significant=bool(better or worse),
                                   verdict="better" if better else "worse" if worse else "indistinguishable")
                    else:
                        nan = float("nan")
                        row.update(mean=nan, baseline_mean=nan, diff=nan, ci_low=nan, ci_high=nan,
                                   p_value=nan, wins=0, ties=0, losses=0, significant=False,
                                   verdict="too few questions")
                    rows.append(row)
        return pd.DataFrame(rows, columns=PAIRED_COLUMNS)

    def finding(self, iou_k: K = 5, recall_k: K = 10, confidence: float = 0.95, seed: int = 0) -> str:
        """A few sentences of Markdown: the best chunkers and what the paired comparisons support.

        Per benchmark: the chunker with the highest mean IoU at ``iou_k`` and recall at
        ``recall_k`` (the first in config order on a tie) with its CI and its difference from the
        baseline, then every comparison with the baseline whose CI excludes 0, by direction and
        metric. A difference whose CI covers 0 is called indistinguishable, whatever its sign.
        """
        ci = self.ci_table(confidence=confidence, seed=seed)
        pairs = self.paired(confidence=confidence, seed=seed)
        level = f"{confidence * 100:g}%"
        names = {"iou": "IoU", "recall": "recall", "precision": "precision", "precision_omega": "precision-Ω"}
        paragraphs = []
        for bench in dict.fromkeys(b for b, _, _ in self.results):
            cib, pb = ci[ci.benchmark == bench], pairs[pairs.benchmark == bench]
            parts = [f"**{bench}** ({int(cib['n_queries'].max())} questions; baseline `{self.baseline}`):"]
            for metric, k in (("iou", iou_k), ("recall", recall_k)):
                rows = cib[cib.k_label == str(k)]
                if rows.empty:  # that k is not among the study's ks
                    continue
                best = rows.loc[rows[metric].idxmax()]
                head = (f"The highest {names[metric]} at k={k} is `{best.chunker}`'s, "
                        f"{_num(best[metric])}%{_ci(best, metric, level)}")
                if best.chunker == self.baseline:
                    parts.append(f"{head}: the baseline itself.")
                    continue
                p = pb[(pb.chunker == best.chunker) & (pb.k_label == str(k)) & (pb.metric == metric)].iloc[0]
                said = {"better": "significantly higher than", "worse": "significantly lower than"}.get(
                    p.verdict, "indistinguishable from")
                parts.append(f"{head}, {_signed(p['diff'])} points against the baseline's "
                             f"{_num(p.baseline_mean)}% (CI of the difference {_signed(p.ci_low)} to "
                             f"{_signed(p.ci_high)}, p = {p.p_value:.3f}): {said} the baseline.")
            tested = pb[pb.verdict != "too few questions"]
            if len(tested):
                n_sig = int(tested.significant.sum())
                parts.append(f"Of {len(tested)} comparisons with the baseline, {n_sig} have a {level} CI "
                             f"excluding 0.")
                for verdict in ("better", "worse"):
                    for metric, part in tested[tested.verdict == verdict].groupby("metric", sort=False):
                        who = ", ".join(
                            f"`{c}` ({', '.join(f'k={r.k_label} {_signed(r.diff)}' for r in g.itertuples())})"
                            for c, g in part.groupby("chunker", sort=False))
                        parts.append(f"{verdict.capitalize()} {names.get(metric, metric)}: {who}.")
                parts.append(f"The other {len(tested) - n_sig} are indistinguishable from the baseline."
                             if n_sig else "All are indistinguishable from the baseline.")
            paragraphs.append(" ".join(parts))
        if len(pairs):
            per_bench = int(pairs.groupby("benchmark").size().max())
            paragraphs.append(
                f"Intervals: {level} percentile bootstrap over questions ({self.n_resamples} resamples), "
                f"differences paired by question (points = percentage points). They are not corrected for "
                f"multiple comparisons: of {per_bench} comparisons per benchmark about "
                f"{per_bench * (1 - confidence):.1f} would exclude 0 by chance alone if no chunker differed.")
        return "\n\n".join(paragraphs)

    def run_stats(self) -> dict[str, float]:
        """Figures of this run that depend on machine state (cache warmth), for MLflow only."""
        return {f"embedding_store.{k}": v for k, v in self.store_stats.items()}

    def write(self, out_dir: Path) -> None:
        """``metrics.json`` (compared by ``dvc exp show``), ``run_stats.json`` (cache counters), the
        result tables, the k=5 plot data and the plots."""
        from lab import viz
        from lab.io import write_csv, write_json

        out_dir = Path(out_dir)
        table = self.table()
        write_json(out_dir / "metrics.json", self.metrics())
        write_json(out_dir / "run_stats.json", self.run_stats())
        write_csv(out_dir / "results.csv", table.round(2))
        write_csv(out_dir / "results_per_corpus.csv", self.table(by="corpus").round(2))
        k5 = table[table.k_label == "5"]
        write_csv(out_dir / "recall_precision_k5.csv", k5[["benchmark", "chunker", "recall", "precision", "iou"]])
        for bench, part in k5.groupby("benchmark"):
            fig = viz.scatter_labeled(part, "precision", "recall", "chunker",
                                      title=f"{bench}: recall vs precision, k=5", xlabel="precision (%)",
                                      ylabel="recall (%)")
            viz.save(fig, out_dir / "plots" / f"recall_precision_{bench}.png")
        for bench, part in table.groupby("benchmark"):
            fig = viz.bar_grouped(part, "chunker", "k_label", "iou", title=f"{bench}: IoU by chunker",
                                  ylabel="IoU (%)")
            viz.save(fig, out_dir / "plots" / f"iou_{bench}.png")
        fig = viz.hist_by_group(self.chunk_tokens(), "tokens", "chunker", title="Chunk size",
                                xlabel=f"tokens ({self.context['tokenizer']})", log_x=False)
        viz.save(fig, out_dir / "plots" / "chunk_tokens_hist.png")

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        cols = ["benchmark", "chunker", "k_label", "recall", "recall_std", "precision", "precision_omega", "iou",
                "iou_std", "n_queries", "chunk_chunks", "chunk_tokens_mean"]
        table = self.table()
        per_corpus = self.table(by="corpus")
        benches = sorted(table.benchmark.unique())
        return [
            ("Means with 95% bootstrap CIs", self.ci_table().round(1)),
            (f"Paired differences against {self.baseline}", self.paired().round(3)),
            ("Every chunker and k", table[cols].round(1)),
            *[(f"{b}: recall vs precision, k=5", out_dir / "plots" / f"recall_precision_{b}.png") for b in benches],
            *[(f"{b}: IoU by chunker", out_dir / "plots" / f"iou_{b}.png") for b in benches],
            ("Chunk size", out_dir / "plots" / "chunk_tokens_hist.png"),
            ("Chunk size per chunker", self.chunk_tokens().groupby(["benchmark", "chunker"])["tokens"]
             .describe().round(1)),
            ("Per corpus, k=5", per_corpus[per_corpus.k_label == "5"][
                ["benchmark", "corpus", "chunker", "recall", "precision", "iou", "n_queries"]].round(1)),
            ("This run", f"Embedding store this run: **{self.store_stats['misses']} embedded, "
                         f"{self.store_stats['hits']} reused**. Questions dropped: "
                         f"{ {b: len(s) for b, s in self.skipped.items()} }; caveats: {self.notes}."),
        ]

    def log_runs(self) -> list[str]:
        """The MLflow child runs (:meth:`log_child_runs`)."""
        return self.log_child_runs()

    def log_child_runs(self) -> list[str]:
        """One MLflow child run per (benchmark, chunker) under the stage's run."""
        from lab.tracking import child_run

        ids = []
        table = self.table()
        for bench, label, res in self.results:
            rows = table[(table.benchmark == bench) & (table.chunker == label)]
            metrics = {f"k{r['k_label']}.{m}": float(r[m]) for r in rows.to_dict("records") for m in METRICS}
            metrics.update({f"chunk_{k}": float(v) for k, v in res.chunk_stats().items()})
            params = {"benchmark": bench, "scope": self.context["scope"][bench],
                      "n_questions": self.context["n_questions"][bench], **res.params,
                      **{k: v for k, v in self.context.items() if k not in ("scope", "n_questions")}}
            ids.append(child_run(f"{bench}/{label}", params=params, metrics=metrics,
                                 tags={"lab.stage": "chunking_study", "lab.chunker": label}))
        return [i for i in ids if i]


@stage("chunking_study")
def run(cfg: Any, paths: StagePaths, *, progress: bool = True, store_dir: Path | None = None) -> StudyResult:
    """The chunking study of ``cfg`` (see :func:`run_study`)."""
    return run_study(cfg, paths.root, progress=progress, store_dir=store_dir)


def run_study(cfg: Any, root: Path, *, progress: bool = True, store_dir: Path | None = None) -> StudyResult:
    """Evaluate every chunker of a :class:`lab.config.ChunkingStudyConfig` on every benchmark.

    All chunkers are built before any data is read, so a bad chunker name or argument fails at once.
    One :class:`~lab.embed.CachedEmbedder` serves chunks, questions and the semantic chunkers' own
    sentence/piece embeddings, so a rerun of the study embeds nothing new.
    """
    from lab.chunking import make_chunker
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder

    cached = CachedEmbedder(make_embedder(cfg.embedder), EmbeddingStore(store_dir), progress=progress)
    chunkers = []
    for spec in cfg.chunkers:
        kwargs = spec.kwargs()
        if spec.chunker in ("semantic", "cluster"):
            kwargs["embed"] = cached
        # the llm chunker has no generation backend here: make_chunker says so and how to give one
        chunkers.append((spec.label, make_chunker(spec.chunker, **kwargs)))
    results, benches = [], {}
    for src in cfg.benchmarks:
        bench = load_benchmark(src, root, cfg.on_bad_reference, cfg.max_questions)
        benches[src.name] = bench
        for label, chunker in chunkers:
            results.append((src.name, label, evaluate(chunker, bench, cached, cfg.ks, tokenizer=cfg.tokenizer,
                                                      progress=progress, scope=src.scope)))
    context = {"embedder": cfg.embedder, "embedder_fingerprint": cached.fingerprint(), "ks": list(cfg.ks),
               "tokenizer": cfg.tokenizer, "max_questions": cfg.max_questions,
               "scope": {s.name: s.scope for s in cfg.benchmarks},
               "n_questions": {n: len(b.questions) for n, b in benches.items()}}
    return StudyResult(results, cached.store.stats.as_dict(), {n: b.skipped for n, b in benches.items()},
                       {n: b.notes for n, b in benches.items()}, context, baseline=cfg.baseline,
                       n_resamples=cfg.n_resamples)


def _num(x: float) -> str:
    """A percentage for prose: one decimal from 10 up, two below (IoU is often a few percent)."""
    return "n/a" if not np.isfinite(x) else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _signed(x: float) -> str:
    return "n/a" if not np.isfinite(x) else ("+" if x >= 0 else "\u2212") + _num(abs(x))


def _ci(row: pd.Series, metric: str, level: str) -> str:
    low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    return "" if not np.isfinite(low) else f" ({level} CI {_num(low)} to {_num(high)})"
