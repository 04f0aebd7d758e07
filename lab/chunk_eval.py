"""Chunking evaluation as in Chroma's report: chunk a pooled collection, retrieve, score ranges.

Input is any corpus folder (one document per file; the file stem is the ``corpus_id``) and a
questions CSV in the format of Chroma's ``questions_df.csv`` (question, references as a JSON list
of ``{content, start_index, end_index}``, corpus_id), or CUAD's clause table turned into the same
shape (:func:`cuad_questions`). All documents' chunks go into ONE collection (the report pooled its
five corpora, so chunks of other corpora compete and dilute precision); questions are embedded with
the same embedder and the top-k chunks found by exact cosine similarity. Scores per question for
k = "min" (the number of chunks touching a reference, capped at 20), 5 and 10, by
:mod:`lab.metrics.chunk`; per-corpus rows are subsets of the pooled run.
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

METRICS = ("recall", "precision", "precision_omega", "iou")
K = int | str


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
        return {"chunks": int(len(t)), "tokens_mean": float(t.mean()) if len(t) else 0.0,
                "tokens_std": float(t.std(ddof=0)) if len(t) else 0.0,
                "tokens_max": int(t.max()) if len(t) else 0}


def chunk_documents(chunker: Chunker, documents: dict[str, str], progress: bool = False) -> list[Chunk]:
    """All chunks of all documents, in document order."""
    from tqdm.auto import tqdm

    out: list[Chunk] = []
    for doc_id in tqdm(sorted(documents), desc=f"chunking ({chunker.name})", disable=not progress):
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

    refs = [[Located(q.doc_id or "", r.start, r.end) for r in q.references] for q in bench.questions]
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
        return out

    def run_stats(self) -> dict[str, float]:
        """Figures of this run that depend on machine state (cache warmth), for MLflow only."""
        return {f"embedding_store.{k}": v for k, v in self.store_stats.items()}

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
                       {n: b.notes for n, b in benches.items()}, context)
