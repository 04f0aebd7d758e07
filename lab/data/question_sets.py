"""A question set over a corpus folder, read for retrieval scoring: checked, unanswerable rows
skipped and counted, references kept where chunk-level scoring can use them.

Two formats:

- ``chroma``: Chroma's ``questions_df.csv`` and the test-set files built on it (question,
  references as a JSON list of ``{content, start_index, end_index}`` char offsets, corpus_id, any
  extra columns). A blank or ``[]`` ``references`` cell is an unanswerable row. A reference may
  carry its own ``corpus_id`` (a multi-passage item); it is checked against that document, but
  chunk-level scoring (:func:`lab.retrieval.sets.chroma_excerpts`) judges a question against its
  row's document only, so references into other documents are dropped and counted.
- ``squad``: SQuAD-style QA lines (question, answers as strings or ``{"text": ...}`` objects, and
  the document as ``corpus_id`` or ``title``). These carry no offsets: the reference is the first
  answer that occurs in the document, at its first occurrence there (which may not be the
  annotated one); a question without a located answer is dropped and counted, and so is one whose
  document is not in the folder (a SQuAD file spans more articles than a corpus of a few).

Bad input is a :class:`~lab.errors.DataError` naming the file and the row (CSV data row, 1-based,
header not counted) or line.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.qa import ChromaItem, Span, _csv, _get
from lab.errors import DataError
from lab.io import iter_jsonl

FORMATS = ("auto", "chroma", "squad")


@dataclass
class QuestionSet:
    """The answerable questions of a file, checked against a corpus, and what was left out.

    Attributes
    ----------
    path:
        The file read.
    items:
        Questions with at least one reference into their row's document, references checked
        (``id`` = ``row<N>`` / ``line<N>`` of the file, ``source`` = ``path:row N``).
    counts:
        ``rows`` (records read), ``unanswerable`` (no references), ``references_other_document``
        (references into another document, dropped), ``answer_not_located`` and ``not_in_corpus``
        (``squad`` format), ``kept``.
    generators:
        Distinct non-empty values of a ``generator`` column (test-set files), sorted.
    types:
        Count of each ``question_type`` value over all rows (test-set files).
    """

    path: Path
    items: list[ChromaItem]
    counts: dict[str, int]
    generators: list[str] = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)


def detect_format(path: Path) -> str:
    """``chroma`` for ``.csv``, ``squad`` for ``.jsonl``/``.json``; DataError otherwise."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "chroma"
    if suffix in (".jsonl", ".json"):
        return "squad"
    raise DataError(f"{path}: cannot tell the question format from the suffix {suffix!r}; "
                    "name it (chroma: a questions_df.csv-style CSV; squad: QA lines)")


def read_question_set(path: str | Path, documents: dict[str, str], fmt: str = "auto") -> QuestionSet:
    """The questions of ``path`` (format ``chroma``, ``squad`` or ``auto`` by suffix) over
    ``documents`` (corpus id -> text, e.g. :func:`lab.data.benchmarks.load_corpus_folder`).

    Raises
    ------
    DataError
        A missing or unreadable file, a malformed row, an unknown corpus_id, a reference whose
        offsets do not match its document (the message names the file, the row and the offsets),
        or no answerable question at all.
    """
    p = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if not p.is_file():
        raise DataError(f"{p}: question file not found")
    fmt = detect_format(p) if fmt == "auto" else fmt
    qs = _read_chroma(p, documents) if fmt == "chroma" else _read_squad(p, documents)
    qs.counts["kept"] = len(qs.items)
    if not qs.items:
        raise DataError(f"{p}: no answerable question over this corpus ({qs.counts}); a retrieval "
                        "ranking needs questions with references")
    return qs


def _unknown_doc(where: str, doc_id: str, documents: dict[str, str]) -> DataError:
    some = ", ".join(sorted(documents)[:8])
    return DataError(f"{where}: corpus_id {doc_id!r} is not a document of the corpus folder (ids are file "
                     f"paths relative to it without their suffix; {len(documents)} documents, e.g. {some})")


def _checked_span(ref: Any, where: str, documents: dict[str, str], row_doc: str) -> tuple[str, Span]:
    """``(doc id, span)`` of one reference object, its offsets checked against its document."""
    if not isinstance(ref, dict):
        raise DataError(f"{where}: expected an object with content, start_index, end_index, got {ref!r:.80}")
    start, end = _get(ref, "start_index", where, int), _get(ref, "end_index", where, int)
    content = _get(ref, "content", where)
    doc = ref.get("corpus_id") or row_doc
    if not isinstance(doc, str):
        raise DataError(f"{where}: field 'corpus_id' must be str, got {type(doc).__name__}")
    if doc not in documents:
        raise _unknown_doc(where, doc, documents)
    text = documents[doc]
    if not (0 <= start <= end <= len(text)) or text[start:end] != content:
        found = text.find(content)
        hint = (f"the content occurs at {found}..{found + len(content)}" if found >= 0
                else "the content does not occur in the document")
        raise DataError(f"{where}: offsets {start}..{end} do not match the text of {doc!r} ({hint})")
    return doc, Span(start, end, content)


def _read_chroma(path: Path, documents: dict[str, str]) -> QuestionSet:
    df = _csv(path, ["question", "references", "corpus_id"])
    counts = Counter(rows=len(df), unanswerable=0, references_other_document=0)
    items: list[ChromaItem] = []
    for i, row in enumerate(df.to_dict("records"), start=1):
        where = f"{path}:row {i}"
        question, cell, doc = row["question"].strip(), row["references"].strip(), row["corpus_id"].strip()
        if not question:
            raise DataError(f"{where}: field 'question' is empty")
        try:
            refs = json.loads(cell) if cell else []
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field 'references' is not valid JSON ({exc.msg})") from None
        if not isinstance(refs, list):
            raise DataError(f"{where}: field 'references' must be a JSON list, got {type(refs).__name__}")
        if not refs:
            counts["unanswerable"] += 1
            continue
        if not doc:
            raise DataError(f"{where}: field 'corpus_id' is empty but the row has references")
        if doc not in documents:
            raise _unknown_doc(where, doc, documents)
        spans = []
        for j, ref in enumerate(refs):
            ref_doc, span = _checked_span(ref, f"{where}: references[{j}]", documents, doc)
            if ref_doc == doc:
                spans.append(span)
            else:
                counts["references_other_document"] += 1
        if not spans:
            raise DataError(f"{where}: no reference points into the row's corpus_id {doc!r}; the row's "
                            "corpus_id must be the document of its first reference")
        items.append(ChromaItem(f"row{i}", question, doc, where, tuple(spans)))
    generators = sorted({g.strip() for g in df["generator"] if g.strip()}) if "generator" in df.columns else []
    types = dict(Counter(df["question_type"])) if "question_type" in df.columns else {}
    return QuestionSet(path, items, dict(counts), generators, types)


def _answer_texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise DataError(f"{where}: field 'answers' must be a list, got {type(value).__name__}")
    out = []
    for a in value:
        text = a.get("text") if isinstance(a, dict) else a
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'answers' must hold strings or {{\"text\": ...}} objects, got {a!r:.80}")
        out.append(text)
    return out


def _read_squad(path: Path, documents: dict[str, str]) -> QuestionSet:
    counts = Counter(rows=0, unanswerable=0, answer_not_located=0, not_in_corpus=0)
    items: list[ChromaItem] = []
    for line in iter_jsonl(path):
        where, rec = line.where, line.record
        counts["rows"] += 1
        question = _get(rec, "question", where).strip()
        if not question:
            raise DataError(f"{where}: field 'question' is empty")
        doc = rec.get("corpus_id") or rec.get("title")
        if not isinstance(doc, str) or not doc:
            raise DataError(f"{where}: the document is named by 'corpus_id' or 'title'; neither is a non-empty "
                            f"string (fields present: {sorted(rec)})")
        answers = [a for a in _answer_texts(rec.get("answers", []), where) if a.strip()]
        if not answers:
            counts["unanswerable"] += 1
            continue
        if doc not in documents:
            counts["not_in_corpus"] += 1
            continue
        text = documents[doc]
        span = next((Span(at, at + len(a), a) for a in answers if (at := text.find(a)) >= 0), None)
        if span is None:
            counts["answer_not_located"] += 1
            continue
        items.append(ChromaItem(f"line{line.line}", question, doc, where, (span,)))
    return QuestionSet(path, items, dict(counts))


def write_chroma_questions(items: list[ChromaItem], path: str | Path) -> Path:
    """``items`` as a Chroma-format CSV (question, references, corpus_id), in order; returns the path."""
    import pandas as pd

    from lab.io import write_csv

    rows = [{"question": q.question, "corpus_id": q.doc_id,
             "references": json.dumps([{"content": s.content, "start_index": s.start, "end_index": s.end}
                                       for s in q.references], ensure_ascii=False)} for q in items]
    return write_csv(path, pd.DataFrame(rows, columns=["question", "references", "corpus_id"]))
