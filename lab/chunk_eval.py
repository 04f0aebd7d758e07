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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab.chunking.base import Chunk, Chunker
from lab.data.qa import ChromaItem, Span, load_chroma, load_cuad
from lab.errors import DataError
from lab.metrics.chunk import MIN_K_CAP, Located, precision_omega, retrieval_scores

METRICS = ("recall", "precision", "precision_omega", "iou")
K = int | str


@dataclass
class Benchmark:
    """Documents by id and the questions whose references point into them."""

    name: str
    documents: dict[str, str]
    questions: list[ChromaItem]
    skipped: list[str] = field(default_factory=list)  # why each dropped question/reference was dropped


def load_corpus_folder(corpus_dir: str | Path, glob: str = "*") -> dict[str, str]:
    """Documents of a folder by file stem, read as strict UTF-8 (a bad or empty file is a DataError)."""
    from lab.config import CorpusSource
    from lab.data.corpus import load_corpus

    folder = Path(corpus_dir)
    loaded = load_corpus(CorpusSource(name=folder.name, path=str(folder.resolve()), glob=glob), folder.parent)
    return {d.id: d.text for d in loaded.documents}


def check_references(name: str, documents: dict[str, str], questions: Sequence[ChromaItem],
                     on_bad_reference: str = "error") -> tuple[list[ChromaItem], list[str]]:
    """Keep questions whose corpus exists and whose every reference matches the text at its offsets.

    With ``on_bad_reference="error"`` the first problem raises a :class:`DataError` naming the row,
    the corpus and the offsets; with ``"skip"`` the question is dropped and the reason recorded.
    """
    if on_bad_reference not in ("error", "skip"):
        raise ValueError(f"on_bad_reference must be 'error' or 'skip', got {on_bad_reference!r}")
    kept, skipped = [], []
    for q in questions:
        problem = None
        text = documents.get(q.doc_id or "")
        if text is None:
            problem = (f"{q.source}: corpus_id {q.doc_id!r} has no document in {name} "
                       f"(available: {', '.join(sorted(documents)) or 'none'}); add the file "
                       f"<corpus_id>.<ext> to the corpus folder or drop the question")
        elif not q.references:
            problem = f"{q.source}: no references"
        else:
            for j, r in enumerate(q.references):
                if not (0 <= r.start <= r.end <= len(text)) or text[r.start:r.end] != r.content:
                    found = text.find(r.content)
                    hint = (f"the content occurs at {found}..{found + len(r.content)}" if found >= 0
                            else "the content does not occur in the document")
                    problem = (f"{q.source}: references[{j}] offsets {r.start}..{r.end} do not match the text "
                               f"of {q.doc_id!r} ({hint}); fix the offsets or set on_bad_reference: skip")
                    break
        if problem is None:
            kept.append(q)
        elif on_bad_reference == "error":
            raise DataError(problem)
        else:
            skipped.append(problem)
    return kept, skipped


def load_chroma_benchmark(corpus_dir: str | Path, questions_csv: str | Path, *, name: str | None = None,
                          on_bad_reference: str = "error") -> Benchmark:
    """A corpus folder plus a Chroma-format questions CSV, references checked against the text."""
    documents = load_corpus_folder(corpus_dir)
    questions = load_chroma(Path(questions_csv))
    kept, skipped = check_references(str(corpus_dir), documents, questions, on_bad_reference)
    return Benchmark(name or Path(corpus_dir).name, documents, kept, skipped)


def cuad_questions(master_csv: str | Path, contracts_dir: str | Path, *, name: str = "cuad") -> Benchmark:
    """CUAD's clause table as Chroma-style questions over the full contracts.

    One question per (contract, category) with at least one excerpt; each excerpt (its parts, where
    annotators joined passages with ``<omitted>``) is located by its first exact occurrence in the
    contract. Parts not found verbatim are dropped and recorded in ``skipped`` (not guessed).
    """
    documents = load_corpus_folder(contracts_dir, "*.txt")
    questions, skipped = [], []
    for item in load_cuad(Path(master_csv)):
        text = documents.get(item.doc_id or "")
        if text is None:
            skipped.append(f"{item.source}: contract {item.doc_id!r} not in {contracts_dir}")
            continue
        spans = []
        for excerpt in item.excerpts:
            for part in (p.strip() for p in excerpt.split("<omitted>")):
                if not part:
                    continue
                at = text.find(part)
                if at < 0:
                    skipped.append(f"{item.id}: excerpt part not found verbatim: {part[:60]!r}")
                    continue
                spans.append(Span(at, at + len(part), part))
        if spans:
            questions.append(ChromaItem(item.id, item.question, item.doc_id, item.source, tuple(spans)))
    return Benchmark(name, documents, questions, skipped)


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


def load_benchmark(src: Any, root: Path, on_bad_reference: str = "error", max_questions: int = 0) -> Benchmark:
    """A :class:`lab.config.BenchmarkSource` loaded: documents (``include`` filter) and checked questions."""
    corpus_dir, questions = root / src.corpus_dir, root / src.questions
    if src.format == "cuad":
        bench = cuad_questions(questions, corpus_dir, name=src.name)
    else:
        bench = load_chroma_benchmark(corpus_dir, questions, name=src.name, on_bad_reference=on_bad_reference)
    if src.include:
        unknown = sorted(set(src.include) - set(bench.documents))
        if unknown:
            raise DataError(f"benchmark {src.name!r}: include names {unknown}, not files of {corpus_dir} "
                            f"(available: {sorted(bench.documents)})")
        bench.documents = {k: v for k, v in bench.documents.items() if k in src.include}
        bench.questions = [q for q in bench.questions if q.doc_id in src.include]
    if max_questions:
        bench.questions = bench.questions[:max_questions]
    return bench


@dataclass
class StudyResult:
    """Every (benchmark, chunker) evaluation of a chunking study, as tables."""

    results: list[tuple[str, str, ChunkEvalResult]]   # (benchmark, chunker label, result)
    store_stats: dict[str, int]
    skipped: dict[str, list[str]]

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
        """Flat metrics ``<benchmark>.<chunker>.k<k>.<metric>`` plus the store's counters."""
        out: dict[str, float] = {}
        for row in self.table().to_dict("records"):
            base = f"{row['benchmark']}.{row['chunker']}.k{row['k_label']}"
            for m in METRICS:
                out[f"{base}.{m}"] = round(float(row[m]), 3)
        for bench, label, res in self.results:
            out[f"{bench}.{label}.chunks"] = res.chunk_stats()["chunks"]
        out.update({f"embedding_store.{k}": v for k, v in self.store_stats.items()})
        return out

    def log_child_runs(self) -> list[str]:
        """One MLflow child run per (benchmark, chunker) under the stage's run."""
        from lab.tracking import child_run

        ids = []
        table = self.table()
        for bench, label, res in self.results:
            rows = table[(table.benchmark == bench) & (table.chunker == label)]
            metrics = {f"k{r['k_label']}.{m}": float(r[m]) for r in rows.to_dict("records") for m in METRICS}
            metrics.update({f"chunk_{k}": float(v) for k, v in res.chunk_stats().items()})
            ids.append(child_run(f"{bench}/{label}", params={"benchmark": bench, **res.params}, metrics=metrics,
                                 tags={"lab.stage": "chunking_study", "lab.chunker": label}))
        return [i for i in ids if i]


def run_study(cfg: Any, root: Path, *, progress: bool = True, store_dir: Path | None = None) -> StudyResult:
    """Evaluate every chunker of a :class:`lab.config.ChunkingStudyConfig` on every benchmark.

    One :class:`~lab.embed.CachedEmbedder` serves chunks, questions and the semantic chunkers' own
    sentence/piece embeddings, so a rerun of the study embeds nothing new.
    """
    from lab.chunking import make_chunker
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
    from lab.errors import ConfigError

    cached = CachedEmbedder(make_embedder(cfg.embedder), EmbeddingStore(store_dir), progress=progress)
    results, skipped = [], {}
    for src in cfg.benchmarks:
        bench = load_benchmark(src, root, cfg.on_bad_reference, cfg.max_questions)
        skipped[src.name] = bench.skipped
        for spec in cfg.chunkers:
            kwargs = spec.kwargs()
            if spec.chunker in ("semantic", "cluster"):
                kwargs["embed"] = cached
            if spec.chunker == "llm" and "generate" not in kwargs:
                raise ConfigError("params.yaml: chunking_study.chunkers: the 'llm' chunker needs a generation "
                                  "backend, which this stage does not configure yet; remove it or use the "
                                  "chunker from Python with generate=...")
            chunker = make_chunker(spec.chunker, **kwargs)
            results.append((src.name, spec.label, evaluate(chunker, bench, cached, cfg.ks, tokenizer=cfg.tokenizer,
                                                             progress=progress, scope=src.scope)))
    return StudyResult(results, cached.store.stats.as_dict(), skipped)
