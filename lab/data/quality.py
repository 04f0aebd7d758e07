"""Data-quality profile of the corpora and QA sets named in the ``data_quality`` section.

(Over 500 lines on purpose: every check below feeds one report from one pass per corpus and one per
QA set, and the module docstring is the report's definition of each number; split by check, the
passes and that definition would be spread over several files that only make sense together.)

What is checked, and how (each choice is the one the numbers in the report mean):

Corpora
    Token counts use :func:`lab.tokens.get_encoding` (``cfg.tokenizer``). *Exact duplicates*:
    documents whose whitespace-normalised text (runs of whitespace -> one space, trimmed) has the
    same sha1 as an earlier document; each later copy counts once. *Near duplicates*: MinHash LSH
    (datasketch) over the set of word ``shingle_size``-grams of the lower-cased ``\\w+`` words,
    at ``near_duplicate_threshold``; every LSH candidate pair is verified with the exact Jaccard
    of the two shingle sets, so each reported pair is truly >= the threshold (LSH may still miss
    a pair: recall is probabilistic, precision is exact). Only the first copy of each group of
    exact duplicates takes part, so exact copies are counted as exact duplicates only.
    *Encoding*: files skipped as invalid UTF-8 (report mode), documents containing U+FFFD (text
    replaced before it reached us), documents that ftfy would change with only its encoding
    repairs enabled (``fix_encoding``, ``decode_inconsistent_utf8``, ``restore_byte_a0``,
    ``replace_lossy_sequences``, ``fix_c1_controls``: i.e. mojibake that ftfy can undo; its quote,
    width, ligature and line-break normalisations are off so ordinary typography is not flagged),
    and documents with control characters other than ``\\n``, ``\\r``, ``\\t`` (form feeds of
    page breaks included). A U+FFFD or mojibake count is a lower bound: ftfy does not catch every
    mis-decoding, and text that was decoded wrongly into valid-looking letters cannot be seen.

Ingested corpora
    A corpus source with a ``manifest`` (the output of ``lab ingest``) also gets the extraction
    checks of :mod:`lab.data.extraction_quality`, each finding naming the file and page; its files
    are loaded in report mode whatever ``on_bad_file`` says (an empty text file is a scanned PDF).

QA sets
    Every set gets items, empty questions, duplicate questions (same document and same
    whitespace/case-normalised question: CUAD and SQuAD legitimately repeat a question across
    documents), items whose document is not in the corpus (``missing_doc_items``; if the corpus was
    cut by ``max_docs_per_corpus`` such items are ``unchecked_items`` instead), and
    ``references`` / ``reference_not_found`` / ``reference_not_found_rate``, where a reference is
    a chroma span, a SQuAD answer, a CUAD excerpt, a HaluEval-QA right answer (looked for in its
    knowledge) or a HaluEval-general hallucinated span (looked for in the response). "Not found"
    is exact (chroma: ``text[start:end] != content`` or offsets out of range; others: not an exact
    substring); ``reference_not_found_normalised`` repeats the search after whitespace/case
    normalisation. A CUAD excerpt made of parts joined by ``<omitted>`` (the annotators' mark of a
    gap) is found when every part is. References of an item whose document is missing count as
    not found. HaluEval sets are also read by the judge stage's strict reader
    (:func:`lab.data.halueval.scan_judged`): each record it rejects (a label other than exactly
    ``"yes"``/``"no"``, an empty field...) is a ``judge_rejects`` problem naming the file and line,
    so a file this stage passes without such problems is one the judge stage accepts.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.config import CorpusSource, DataQualityConfig, QASetSource
from lab.data.corpus import CorpusLoad, Document, load_corpus
from lab.data.halueval import scan_judged
from lab.data.qa import (
    ChromaItem,
    CuadItem,
    HaluEvalGeneralItem,
    HaluEvalQAItem,
    QAItem,
    SquadItem,
    load_qa_set,
)
from lab.data.textchecks import mojibake, near_duplicates, word_shingles
from lab.io import write_text
from lab.paths import resolve_path

if TYPE_CHECKING:
    import pandas as pd

    from lab.data.extraction_quality import ExtractionReport

_PROBLEM_COLUMNS = ("scope", "where", "kind", "record", "detail", "source")

#: Problem rows kept per (corpus or QA set, kind); the true counts are kept in ``problem_counts``.
MAX_PROBLEMS_PER_KIND = 200

# C0 and C1 control characters except \t \n \r (and DEL): never meaningful inside prose
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def normalise(text: str) -> str:
    """Whitespace runs -> one space, trimmed, case-folded: the looser match of the QA checks."""
    return " ".join(text.split()).casefold()


# --------------------------------------------------------------------------- problems


@dataclass
class _Problems:
    """Problem rows, capped per (where, kind), with the true count of each (where, kind)."""

    #: sources under these folders (the project, as given and resolved) are written relative to it, so the
    #: committed ``problems.csv`` is the same on every machine
    roots: tuple[str, ...] = ()
    cap: int = MAX_PROBLEMS_PER_KIND
    rows: list[dict[str, str]] = field(default_factory=list)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, scope: str, where: str, kind: str, record: str, detail: str, source: str = "") -> None:
        key = (scope, where, kind)
        self.counts[key] += 1
        for r in self.roots:
            if source.startswith(f"{r}/"):
                source = source[len(r) + 1:]
                break
        if self.counts[key] <= self.cap:
            self.rows.append({"scope": scope, "where": where, "kind": kind, "record": record,
                              "detail": detail, "source": source})


# --------------------------------------------------------------------------- report


@dataclass
class QualityReport:
    """Tables of a data-quality profile (see the module docstring for what each number means).

    Attributes
    ----------
    corpora:
        One row per corpus.
    qa_sets:
        One row per QA set; format-specific columns are NaN for other formats.
    problems:
        One row per problem instance (scope, where, kind, record, detail, source), at most
        :data:`MAX_PROBLEMS_PER_KIND` per (where, kind).
    problem_counts:
        True number of problems per (scope, where, kind), with how many rows ``problems`` shows.
    doc_tokens:
        (corpus, doc_id, tokens) per document, for histograms.
    near_duplicate_pairs:
        (corpus, doc_a, doc_b, jaccard) per verified near-duplicate pair.
    extraction:
        Extraction findings per file and page of the ingested corpora (sources with a ``manifest``);
        None when there is none, and then nothing below mentions extraction.
    """

    corpora: pd.DataFrame
    qa_sets: pd.DataFrame
    problems: pd.DataFrame
    problem_counts: pd.DataFrame
    doc_tokens: pd.DataFrame
    near_duplicate_pairs: pd.DataFrame
    extraction: ExtractionReport | None = None

    def metrics(self) -> dict[str, float | int]:
        """Flat metrics: ``corpus.<name>.<column>``, ``qa.<name>.<column>`` and ``total.*``.

        NaN values (a column that does not apply) are left out: JSON has no NaN.
        """
        out: dict[str, float | int] = {}
        for prefix, df, key in (("corpus", self.corpora, "corpus"), ("qa", self.qa_sets, "qa_set")):
            for row in df.to_dict("records"):
                for col, value in row.items():
                    number = _number(value)
                    if col != key and number is not None:
                        out[f"{prefix}.{row[key]}.{col}"] = number
        out["total.corpora"] = len(self.corpora)
        out["total.documents"] = int(self.corpora["documents"].sum()) if len(self.corpora) else 0
        out["total.tokens"] = int(self.corpora["tokens_total"].sum()) if len(self.corpora) else 0
        out["total.qa_sets"] = len(self.qa_sets)
        out["total.qa_items"] = int(self.qa_sets["items"].sum()) if len(self.qa_sets) else 0
        out["total.problems"] = int(self.problem_counts["count"].sum()) if len(self.problem_counts) else 0
        if self.extraction is not None:
            out.update(self.extraction.metrics())
        return out

    def finding(self) -> str:
        """A few sentences of Markdown for the top of the report: sizes, problems by kind, and the
        QA set with the highest share of references not found."""
        m = self.metrics()
        text = [f"**{m['total.documents']:,} documents** in {m['total.corpora']} corpora "
                f"({m['total.tokens']:,} tokens) and **{m['total.qa_items']:,} QA items** in "
                f"{m['total.qa_sets']} sets; **{m['total.problems']:,} problems** found."]
        if self.extraction is not None:
            text.append(self.extraction.finding())
        if len(self.problem_counts):
            kinds = self.problem_counts.groupby("kind")["count"].sum().sort_values(ascending=False)
            text.append("By kind: " + ", ".join(f"{k} {int(v):,}" for k, v in kinds.items()) + ".")
        if len(self.qa_sets) and "reference_not_found_rate" in self.qa_sets:
            rates = self.qa_sets.set_index("qa_set")["reference_not_found_rate"].dropna()
            if len(rates) and rates.max() > 0:
                worst = rates.idxmax()
                text.append(f"Highest share of references not found in their document: {worst} "
                            f"({rates[worst]:.1%}).")
            elif len(rates):
                text.append("Every reference was found in its document.")
        return " ".join(text)

    def write(self, out_dir: Path) -> list[Path]:
        """Write the report under ``out_dir``; each file atomically (temp file + ``os.replace``).

        Files: ``metrics.json``, ``corpora.csv``, ``qa_sets.csv``, ``problems.csv``,
        ``problem_counts.csv``, ``near_duplicate_pairs.csv`` and, for DVC plots,
        ``plots/doc_tokens.csv`` (corpus, doc_id, tokens), ``plots/qa_not_found.csv`` (qa_set,
        not_found_rate) and ``plots/corpus_tokens.csv`` (corpus, documents, tokens_total,
        tokens_mean). Returns the paths written.
        """
        import pandas as pd

        out_dir = Path(out_dir)
        qa_plot = pd.DataFrame({
            "qa_set": self.qa_sets["qa_set"] if len(self.qa_sets) else [],
            "not_found_rate": self.qa_sets["reference_not_found_rate"] if len(self.qa_sets) else [],
        })
        corpus_plot = self.corpora.reindex(columns=["corpus", "documents", "tokens_total", "tokens_mean"])
        files: dict[str, str] = {
            "metrics.json": json.dumps(self.metrics(), indent=2, sort_keys=True) + "\n",
            "corpora.csv": self.corpora.to_csv(index=False),
            "qa_sets.csv": self.qa_sets.to_csv(index=False),
            "problems.csv": self.problems.to_csv(index=False),
            "problem_counts.csv": self.problem_counts.to_csv(index=False),
            "near_duplicate_pairs.csv": self.near_duplicate_pairs.to_csv(index=False),
            "plots/doc_tokens.csv": self.doc_tokens.to_csv(index=False),
            "plots/qa_not_found.csv": qa_plot.to_csv(index=False),
            "plots/corpus_tokens.csv": corpus_plot.to_csv(index=False),
        }
        if self.extraction is not None:
            files["extraction_findings.csv"] = self.extraction.findings.to_csv(index=False)
            files["extraction_documents.csv"] = self.extraction.documents.to_csv(index=False)
        written = []
        for rel, text in files.items():
            path = out_dir / rel
            write_text(path, text)
            written.append(path)
        return written


def _number(value: Any) -> float | int | None:
    """A metric value, or None for NaN/NA and non-numbers (bools become 0/1)."""
    import math

    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):  # numpy scalar -> Python scalar
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return None


# --------------------------------------------------------------------------- profile


def profile(cfg: DataQualityConfig, root: Path) -> QualityReport:
    """Profile every corpus and QA set of ``cfg`` (paths relative to ``root``).

    Parameters
    ----------
    cfg:
        The ``data_quality`` section. ``max_docs_per_corpus`` / ``max_items_per_qa_set`` cap what
        is read (0 = all); ``on_bad_file`` decides whether a bad file raises or is counted.
    root:
        Folder relative paths are resolved against (the folder of ``params.yaml``).

    Raises
    ------
    DataError
        A corpus or QA file cannot be read (or, with ``on_bad_file: error``, is badly encoded or
        empty); the message names the file and the fix.
    """
    import pandas as pd

    from lab.tokens import get_encoding

    encoding = get_encoding(cfg.tokenizer)  # fail on a bad tokenizer before reading any data
    problems = _Problems(roots=tuple({str(Path(root).absolute()), str(Path(root).resolve())}))
    corpus_rows, token_rows, pair_rows = [], [], []
    loads: dict[str, CorpusLoad] = {}
    extraction = []
    for src in cfg.corpora:
        # an ingested corpus's empty text file is a scanned PDF: an extraction finding, not a stop
        on_bad_file = "report" if src.manifest else cfg.on_bad_file
        load = load_corpus(src, root, on_bad_file=on_bad_file, limit=cfg.max_docs_per_corpus)
        if src.manifest:
            from lab.data.extraction_quality import check_ingested

            extraction.append(check_ingested(src, load.documents, load.truncated, resolve_path(src.path, root),
                                             resolve_path(src.manifest, root), cfg))
        loads[src.name] = load
        row, tokens, pairs = _profile_corpus(src, load, cfg, encoding.encode_ordinary, problems)
        corpus_rows.append(row)
        token_rows += tokens
        pair_rows += pairs

    qa_rows = []
    for qa in cfg.qa_sets:
        items = load_qa_set(qa, root, limit=cfg.max_items_per_qa_set)
        _judge_rejects(qa, root, problems)
        qa_rows.append(_profile_qa(qa, items, loads.get(qa.corpus) if qa.corpus else None, problems))

    counts = [{"scope": s, "where": w, "kind": k, "count": n, "shown": min(n, problems.cap)}
              for (s, w, k), n in problems.counts.items()]
    return QualityReport(
        corpora=_frame(corpus_rows, _CORPUS_COLUMNS),
        qa_sets=_frame(qa_rows, _qa_columns(qa_rows)),
        problems=pd.DataFrame(problems.rows, columns=list(_PROBLEM_COLUMNS)),
        problem_counts=pd.DataFrame(counts, columns=["scope", "where", "kind", "count", "shown"]),
        doc_tokens=pd.DataFrame(token_rows, columns=["corpus", "doc_id", "tokens"]),
        near_duplicate_pairs=pd.DataFrame(pair_rows, columns=["corpus", "doc_a", "doc_b", "jaccard"]),
        extraction=_extraction_report(extraction),
    )


def _extraction_report(checks: list[Any]) -> ExtractionReport | None:
    if not checks:
        return None
    from lab.data.extraction_quality import ExtractionReport

    return ExtractionReport(checks)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """DataFrame of ``rows``; count columns with gaps stay integers (nullable Int64, not float)."""
    import pandas as pd

    df = pd.DataFrame(rows).reindex(columns=columns)
    for col in columns:
        values = [r[col] for r in rows if col in r and r[col] == r[col]]  # NaN != NaN
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            df[col] = df[col].astype("Int64")
    return df


# --------------------------------------------------------------------------- corpora

_CORPUS_COLUMNS = [
    "corpus", "format", "path", "documents", "truncated", "files_skipped",
    "tokens_total", "tokens_mean", "tokens_median", "tokens_min", "tokens_max",
    "chars_total", "chars_mean", "chars_median", "chars_min", "chars_max",
    "empty_docs", "exact_duplicate_docs", "near_duplicate_pairs", "near_duplicate_docs",
    "invalid_utf8_files", "bom_files", "replacement_char_docs", "mojibake_docs", "control_char_docs",
    "encoding_problems",
]


def _stats(prefix: str, values: Sequence[int]) -> dict[str, float | int]:
    import numpy as np

    if not values:
        nan = float("nan")
        return {f"{prefix}_total": 0, f"{prefix}_mean": nan, f"{prefix}_median": nan,
                f"{prefix}_min": nan, f"{prefix}_max": nan}
    arr = np.asarray(values)
    return {f"{prefix}_total": int(arr.sum()), f"{prefix}_mean": float(arr.mean()),
            f"{prefix}_median": float(np.median(arr)), f"{prefix}_min": int(arr.min()),
            f"{prefix}_max": int(arr.max())}


def _profile_corpus(
    src: CorpusSource,
    load: CorpusLoad,
    cfg: DataQualityConfig,
    encode: Callable[[str], list[int]],
    problems: _Problems,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """One corpus row, its per-document token rows and its near-duplicate pairs."""
    from lab.progress import bar

    name = src.name
    skipped = Counter()
    for fp in load.problems:
        # the record is the file (folder corpora) or the line (JSONL: source is "path:line N")
        _, sep, line = fp.source.rpartition(":line ")
        record = f"line {line}" if sep else Path(fp.source).name
        problems.add("corpus", name, fp.kind, record, fp.detail, fp.source)
        skipped[fp.kind] += 1

    tokens, chars, token_rows, shingles = [], [], [], []
    first_by_hash: dict[str, str] = {}
    hashes: list[str] = []
    flags = Counter()
    for doc in bar(load.documents, desc=f"profile {name}", unit="doc", leave=False):
        n = len(encode(doc.text))
        tokens.append(n)
        chars.append(len(doc.text))
        token_rows.append({"corpus": name, "doc_id": doc.id, "tokens": n})
        digest = hashlib.sha1(" ".join(doc.text.split()).encode("utf-8")).hexdigest()
        hashes.append(digest)
        if digest in first_by_hash:
            flags["exact_duplicate_docs"] += 1
            problems.add("corpus", name, "exact_duplicate", doc.id,
                         f"same whitespace-normalised text as {first_by_hash[digest]!r}", doc.source)
        else:
            first_by_hash[digest] = doc.id
        _encoding_checks(name, doc, problems, flags)
        shingles.append(word_shingles(doc.text, cfg.shingle_size))

    pairs = near_duplicates(load.documents, shingles, hashes, cfg.near_duplicate_threshold, cfg.num_perm)
    for a, b, jac in pairs:
        problems.add("corpus", name, "near_duplicate", a, f"Jaccard {jac:.3f} with {b!r}")
    encoding_problems = (skipped["invalid_utf8"] + flags["replacement_char_docs"] + flags["mojibake_docs"]
                         + flags["control_char_docs"])
    row = {
        "corpus": name, "format": src.format, "path": src.path, "documents": len(load.documents),
        "truncated": load.truncated,
        "files_skipped": sum(n for kind, n in skipped.items() if kind != "utf8_bom"),
        **_stats("tokens", tokens), **_stats("chars", chars),
        "empty_docs": skipped["empty"],
        "exact_duplicate_docs": flags["exact_duplicate_docs"],
        "near_duplicate_pairs": len(pairs),
        "near_duplicate_docs": len({d for a, b, _ in pairs for d in (a, b)}),
        "invalid_utf8_files": skipped["invalid_utf8"], "bom_files": skipped["utf8_bom"],
        "replacement_char_docs": flags["replacement_char_docs"], "mojibake_docs": flags["mojibake_docs"],
        "control_char_docs": flags["control_char_docs"], "encoding_problems": encoding_problems,
    }
    pair_rows = [{"corpus": name, "doc_a": a, "doc_b": b, "jaccard": jac} for a, b, jac in pairs]
    return row, token_rows, pair_rows


def _encoding_checks(name: str, doc: Document, problems: _Problems, flags: Counter) -> None:
    """U+FFFD, ftfy-repairable mojibake and stray control characters of one document."""
    n_repl = doc.text.count("\ufffd")
    if n_repl:
        flags["replacement_char_docs"] += 1
        at = doc.text.index("\ufffd")
        problems.add("corpus", name, "replacement_char", doc.id,
                     f"{n_repl} U+FFFD replacement character(s); first at char {at}: "
                     f"{doc.text[max(0, at - 20) : at + 20]!r}", doc.source)
    why = mojibake(doc.text)
    if why:
        flags["mojibake_docs"] += 1
        problems.add("corpus", name, "mojibake", doc.id, why, doc.source)
    controls = Counter(_CONTROL.findall(doc.text))
    if controls:
        flags["control_char_docs"] += 1
        listed = ", ".join(
            f"U+{ord(c):04X} {unicodedata.name(c, 'control')} x{n}" for c, n in controls.most_common()
        )
        problems.add("corpus", name, "control_chars", doc.id, f"control characters: {listed}", doc.source)


# --------------------------------------------------------------------------- QA sets

_QA_COMMON = [
    "qa_set", "format", "corpus", "items", "empty_questions", "duplicate_questions", "missing_doc_items",
    "unchecked_items", "references", "reference_not_found", "reference_not_found_rate",
    "reference_not_found_normalised",
]


#: The common columns that are plain counts kept by :class:`_QAContext`.
_QA_COUNTS = ("empty_questions", "duplicate_questions", "missing_doc_items", "unchecked_items", "references",
              "reference_not_found")


def _qa_columns(rows: list[dict[str, Any]]) -> list[str]:
    extra = [c for row in rows for c in row if c not in _QA_COMMON]
    return _QA_COMMON + list(dict.fromkeys(extra))


class _QAContext:
    """What a format check needs: the set's name, its corpus documents and the problem sink."""

    def __init__(self, src: QASetSource, load: CorpusLoad | None, problems: _Problems) -> None:
        self.src, self.load, self.problems = src, load, problems
        self.docs = {d.id: d.text for d in load.documents} if load else {}
        self._normalised: dict[str, str] = {}
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, item: QAItem, detail: str) -> None:
        self.problems.add("qa_set", self.src.name, kind, item.id, detail, item.source)

    def normalised(self, key: str, text: str) -> str:
        """``normalise(text)``, cached under ``key`` (a document is searched once per reference)."""
        if key not in self._normalised:
            self._normalised[key] = normalise(text)
        return self._normalised[key]

    def document(self, item: QAItem, n_refs: int) -> str | None:
        """The item's document text; None when absent (its ``n_refs`` count as not found) or when
        it cannot be checked (no corpus, or a corpus cut by ``max_docs_per_corpus``)."""
        if item.doc_id is not None and item.doc_id in self.docs:
            return self.docs[item.doc_id]
        if self.load is None or self.load.truncated:
            self.counts["unchecked_items"] += 1  # a truncated corpus may hold it beyond the limit
        else:
            self.counts["missing_doc_items"] += 1
            self.counts["references"] += n_refs
            self.counts["reference_not_found"] += n_refs
            self.counts["reference_not_found_normalised"] += n_refs
            self.add("missing_doc", item, f"no document {item.doc_id!r} in corpus {self.load.name!r} "
                                          f"({len(self.docs)} documents loaded)")
        return None

    def find(
        self, item: QAItem, key: str, text: str, ref: str, what: str, pieces: list[str] | None = None
    ) -> None:
        """Count one reference string looked for in ``text`` (exact, then normalised).

        ``key`` names ``text`` for the cache of normalised texts (``doc:<id>`` or ``item:<id>``).
        ``pieces``: the reference is found when each piece is (CUAD's ``<omitted>``-joined parts).
        """
        self.counts["references"] += 1
        parts = pieces if pieces is not None else [ref]
        if all(p in text for p in parts):
            return
        self.counts["reference_not_found"] += 1
        norm_text = self.normalised(key, text)
        found_norm = all(normalise(p) in norm_text for p in parts)
        if not found_norm:
            self.counts["reference_not_found_normalised"] += 1
        how = ("found after whitespace/case normalisation" if found_norm
               else "not found even after normalisation")
        self.add("reference_not_found", item, f"{what} {ref[:120]!r} not an exact substring ({how})")


def _profile_qa(
    src: QASetSource, items: list[QAItem], load: CorpusLoad | None, problems: _Problems
) -> dict[str, Any]:
    """One QA-set row: the checks common to every format, then the format's own."""
    ctx = _QAContext(src, load, problems)
    seen: dict[tuple[str | None, str], str] = {}
    for item in items:
        if not item.question.strip():
            ctx.counts["empty_questions"] += 1
            ctx.add("empty_question", item, "question is empty")
            continue
        key = (item.doc_id, normalise(item.question))
        if key in seen:
            ctx.counts["duplicate_questions"] += 1
            ctx.add("duplicate_question", item, f"same question (and document) as {seen[key]!r}")
        else:
            seen[key] = item.id
    extra = _QA_CHECKS[src.format](ctx, items) if src.format in _QA_CHECKS else {}
    if src.format in _NEEDS_CORPUS and load is None:
        problems.add("qa_set", src.name, "no_corpus", "-",
                     "qa set has no `corpus`: set it to check its references against documents", src.path)
    refs = ctx.counts["references"]
    row = {
        "qa_set": src.name, "format": src.format, "corpus": src.corpus or "", "items": len(items),
        **{c: ctx.counts[c] for c in _QA_COUNTS},
        "reference_not_found_rate": ctx.counts["reference_not_found"] / refs if refs else float("nan"),
        "reference_not_found_normalised": ctx.counts["reference_not_found_normalised"],
    }
    row.update(extra)
    return row


def _check_chroma(ctx: _QAContext, items: list[QAItem]) -> dict[str, Any]:
    c = Counter()
    for item in items:
        assert isinstance(item, ChromaItem)
        text = ctx.document(item, len(item.references))
        if text is None:
            continue
        for k, span in enumerate(item.references):
            ctx.counts["references"] += 1
            in_range = 0 <= span.start <= span.end <= len(text)
            if in_range and text[span.start : span.end] == span.content:
                continue
            ctx.counts["reference_not_found"] += 1
            c["ref_offset_out_of_range" if not in_range else "ref_offset_mismatch"] += 1
            at = text.find(span.content) if span.content else -1
            norm_found = at >= 0 or bool(
                span.content and normalise(span.content) in ctx.normalised(f"doc:{item.doc_id}", text))
            if not norm_found:
                ctx.counts["reference_not_found_normalised"] += 1
            if at >= 0:
                c["ref_found_elsewhere"] += 1
                where = f"content found at [{at}, {at + len(span.content)})"
            else:
                c["ref_not_found_anywhere"] += 1
                where = "content not found anywhere in the document" + (
                    " (found after whitespace/case normalisation)" if norm_found else "")
            problem = "out of range" if not in_range else "do not hold the content"
            ctx.add("ref_offset_out_of_range" if not in_range else "ref_offset_mismatch", item,
                    f"references[{k}] offsets [{span.start}, {span.end}) {problem} "
                    f"(document has {len(text)} chars); {where}")
    keys = ["ref_offset_out_of_range", "ref_offset_mismatch", "ref_found_elsewhere", "ref_not_found_anywhere"]
    return {k: c[k] for k in keys}


def _check_substrings(ctx: _QAContext, items: list[QAItem]) -> dict[str, Any]:
    """SQuAD answers in their paragraph, CUAD excerpts in their contract (each ``<omitted>`` part)."""
    joined = 0
    for item in items:
        assert isinstance(item, (SquadItem, CuadItem))
        refs = item.answers if isinstance(item, SquadItem) else item.excerpts
        what = "answer" if isinstance(item, SquadItem) else f"{item.category} excerpt"
        text = ctx.document(item, len(refs))
        if text is None:
            continue
        for ref in refs:
            pieces = CuadItem.pieces(ref) if isinstance(item, CuadItem) else None
            joined += pieces is not None and len(pieces) > 1
            ctx.find(item, f"doc:{item.doc_id}", text, ref, what, pieces)
    return {"multi_part_excerpts": joined} if items and isinstance(items[0], CuadItem) else {}


#: QA formats the judge stage also reads, with the format name of :mod:`lab.data.halueval`.
_JUDGE_FORMATS = {"halueval_qa": "grounded", "halueval_general": "general"}


def _judge_rejects(src: QASetSource, root: Path, problems: _Problems) -> None:
    """Report (kind ``judge_rejects``, by file and line) the records of a HaluEval set that the
    judge stage's strict reader rejects: the QA loader leaves them out, so without this row a file
    could pass this stage and fail the judge stage."""
    if src.format not in _JUDGE_FORMATS:
        return
    path = resolve_path(src.path, root)
    for line, why in scan_judged(path, fmt=_JUDGE_FORMATS[src.format]).rejected:
        problems.add("qa_set", src.name, "judge_rejects", f"line{line}",
                     f"{why}; the judge stage's reader (lab.data.halueval) rejects this record: fix it",
                     f"{path}:line {line}")


def _check_halueval_qa(ctx: _QAContext, items: list[QAItem]) -> dict[str, Any]:
    empty = 0
    for item in items:
        assert isinstance(item, HaluEvalQAItem)
        fields = ("knowledge", "right_answer", "hallucinated_answer")
        blank = [f for f in fields if not getattr(item, f).strip()]
        if blank:
            empty += 1
            ctx.add("empty_field", item, f"empty field(s): {blank}")
        # the knowledge is this item's own document
        ctx.find(item, f"item:{item.id}", item.knowledge, item.right_answer, "right_answer (in knowledge)")
    n, miss = ctx.counts["references"], ctx.counts["reference_not_found_normalised"]
    return {"empty_field_items": empty, "right_answer_in_knowledge": n - miss,
            "right_answer_in_knowledge_rate": (n - miss) / n if n else float("nan")}


def _check_halueval_general(ctx: _QAContext, items: list[QAItem]) -> dict[str, Any]:
    c = Counter()
    for item in items:
        assert isinstance(item, HaluEvalGeneralItem)
        c["label_yes" if item.hallucination else "label_no"] += 1
        if item.spans is None:
            c["spans_unparseable"] += 1
            ctx.add("spans_unparseable", item, f"hallucination_spans {item.spans_error}")
            continue
        if item.hallucination and not item.spans:
            c["yes_without_spans"] += 1
            ctx.add("label_span_mismatch", item, "labelled hallucination 'yes' but no spans given")
        elif not item.hallucination and item.spans:
            c["no_with_spans"] += 1
            ctx.add("label_span_mismatch", item, f"labelled 'no' but {len(item.spans)} span(s) given")
        for span in item.spans:
            ctx.find(item, f"item:{item.id}", item.response, span, "hallucination span (in response)")
    n = c["label_yes"] + c["label_no"]
    return {"label_yes": c["label_yes"], "label_no": c["label_no"],
            "label_yes_rate": c["label_yes"] / n if n else float("nan"),
            "spans_unparseable": c["spans_unparseable"], "yes_without_spans": c["yes_without_spans"],
            "no_with_spans": c["no_with_spans"]}


_QA_CHECKS: dict[str, Callable[[_QAContext, list[QAItem]], dict[str, Any]]] = {
    "chroma": _check_chroma,
    "squad": _check_substrings,
    "cuad": _check_substrings,
    "halueval_qa": _check_halueval_qa,
    "halueval_general": _check_halueval_general,
}
#: Formats whose references point into a corpus document.
_NEEDS_CORPUS = {"chroma", "squad", "cuad"}
