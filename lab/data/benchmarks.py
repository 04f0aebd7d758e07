"""Benchmarks for chunk retrieval: documents plus questions whose references are character ranges.

A :class:`Benchmark` comes from any corpus folder (one document per file; the file stem is the
``corpus_id``) and a questions CSV in the format of Chroma's ``questions_df.csv`` (question,
references as a JSON list of ``{content, start_index, end_index}``, corpus_id), or from CUAD's
clause table over its full contracts (:func:`cuad_questions`). References are checked against the
text: a mismatch is an error naming the row, or (``on_bad_reference="skip"``) a dropped and
counted question, never a silent one.

Rows without references (a generated test set's unanswerable questions, and the team's own questions
whose answer was not found) have no span to score: :func:`answerable` sets them aside and counts them
(``notes["unanswerable"]``: no document either; ``notes["document_level"]``: a ``corpus_id`` only).
A reference may name its own document (``Span.doc_id``: a multi-passage question).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.qa import ChromaItem, CuadItem, Span, load_chroma, load_cuad
from lab.errors import DataError


@dataclass
class Benchmark:
    """Documents by id and the questions whose references point into them."""

    name: str
    documents: dict[str, str]
    questions: list[ChromaItem]
    skipped: list[str] = field(default_factory=list)  # why each dropped question/reference was dropped
    notes: dict[str, int] = field(default_factory=dict)  # counted caveats (e.g. ambiguous CUAD spans)


def load_corpus_folder(corpus_dir: str | Path, glob: str = "**/*") -> dict[str, str]:
    """Documents of a folder and its subfolders by id (the path relative to the folder minus its last
    suffix: ``pdf/x.pdf.txt`` -> ``pdf/x.pdf``, as ``lab ingest`` writes them), read as strict UTF-8
    (a bad or empty file is a DataError)."""
    from lab.config import CorpusSource
    from lab.data.corpus import load_corpus

    folder = Path(corpus_dir)
    loaded = load_corpus(CorpusSource(name=folder.name, path=str(folder.resolve()), glob=glob), folder.parent)
    return {d.id: d.text for d in loaded.documents}


def corpus_documents(corpus_dir: str | Path) -> dict[str, dict[str, str]]:
    """Doc id -> ``{"title", "text"}`` of every file under ``corpus_dir`` (subfolders too; ids as
    :func:`load_corpus_folder` makes them: the relative path minus its last suffix), in id order.

    A document's title is the one the ingestion recorded (``manifest.json`` beside the folder, written
    by the ``ingest`` stage, read by :func:`lab.ingest.manifest.read_manifest_beside`) and otherwise
    its file name without suffixes (``pdf/sp800-37r2.pdf`` -> ``sp800-37r2``).

    Raises
    ------
    DataError
        A missing or empty folder, a bad file (:func:`load_corpus_folder`), or a manifest beside it of
        another format or version or with a malformed record (the message names the file and key).
    """
    from lab.ingest.manifest import read_manifest_beside

    folder = Path(corpus_dir)
    texts = load_corpus_folder(folder, glob="**/*")
    manifest = read_manifest_beside(folder)
    titles = {d.id: d.title for d in manifest.documents} if manifest is not None else {}
    return {doc_id: {"title": titles.get(doc_id) or Path(doc_id).name.split(".")[0] or doc_id, "text": texts[doc_id]}
            for doc_id in sorted(texts)}


def answerable(questions: Sequence[ChromaItem]) -> tuple[list[ChromaItem], dict[str, int]]:
    """The questions with at least one reference, and counts of those without: ``unanswerable``
    (no ``corpus_id`` either) and ``document_level`` (a ``corpus_id`` but no span); a count of 0 is
    left out (a benchmark of answerable questions reports no new keys)."""
    kept = [q for q in questions if q.references]
    rest = [q for q in questions if not q.references]
    counts = {"unanswerable": sum(not q.doc_id for q in rest), "document_level": sum(bool(q.doc_id) for q in rest)}
    return kept, {k: v for k, v in counts.items() if v}


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
        missing = [d for d in dict.fromkeys([q.doc_id or "", *(r.doc_id for r in q.references if r.doc_id)])
                   if d not in documents]
        if missing:
            problem = (f"{q.source}: corpus_id {missing[0]!r} has no document in {name} "
                       f"(available: {', '.join(sorted(documents)) or 'none'}); add the file "
                       f"<corpus_id>.<ext> to the corpus folder or drop the question")
        elif not q.references:
            problem = f"{q.source}: no references"
        else:
            for j, r in enumerate(q.references):
                text = documents[r.doc_id or q.doc_id or ""]
                if not (0 <= r.start <= r.end <= len(text)) or text[r.start:r.end] != r.content:
                    found = text.find(r.content)
                    hint = (f"the content occurs at {found}..{found + len(r.content)}" if found >= 0
                            else "the content does not occur in the document")
                    problem = (f"{q.source}: references[{j}] offsets {r.start}..{r.end} do not match the text "
                               f"of {r.doc_id or q.doc_id!r} ({hint}); fix the offsets or set on_bad_reference: skip")
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
    questions, without = answerable(load_chroma(Path(questions_csv)))
    kept, skipped = check_references(str(corpus_dir), documents, questions, on_bad_reference)
    return Benchmark(name or Path(corpus_dir).name, documents, kept, skipped, without)


def _merge_spans(text: str, spans: list[Span]) -> tuple[Span, ...]:
    """Overlapping or repeated spans of one question merged, so recall's denominator counts each char once."""
    merged: list[list[int]] = []
    for s in sorted(spans, key=lambda x: (x.start, x.end)):
        if merged and s.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s.end)
        else:
            merged.append([s.start, s.end])
    return tuple(Span(a, b, text[a:b]) for a, b in merged)


def cuad_questions(master_csv: str | Path, contracts_dir: str | Path, *, name: str = "cuad",
                   on_bad_reference: str = "error", include: Sequence[str] = ()) -> Benchmark:
    """CUAD's clause table as Chroma-style questions over the full contracts.

    One question per (contract, category) with at least one excerpt. Each excerpt's parts (annotators
    join passages with ``<omitted>``) are located by their first exact occurrence in the contract;
    parts that occur more than once are counted in ``notes["ambiguous_spans"]`` (the files carry no
    offsets). A part not found verbatim, or a contract without its file, is an error naming the row,
    or with ``on_bad_reference="skip"`` dropped and recorded in ``skipped``. Overlapping spans of one
    question are merged.
    """
    if on_bad_reference not in ("error", "skip"):
        raise ValueError(f"on_bad_reference must be 'error' or 'skip', got {on_bad_reference!r}")
    documents = load_corpus_folder(contracts_dir, "*.txt")
    if include:
        documents = {k: v for k, v in documents.items() if k in include}
    questions, skipped, ambiguous = [], [], 0
    for item in load_cuad(Path(master_csv)):
        if include and item.doc_id not in include:
            continue
        text = documents.get(item.doc_id or "")
        problems, spans = [], []
        if text is None:
            problems.append(f"{item.source}: contract {item.doc_id!r} has no file <name>.txt in {contracts_dir}")
        else:
            for part in (p for e in item.excerpts for p in CuadItem.pieces(e)):
                at = text.find(part)
                if at < 0:
                    problems.append(f"{item.source}: {item.category!r} excerpt not found verbatim in "
                                    f"{item.doc_id!r}: {part[:60]!r}")
                    continue
                ambiguous += text.find(part, at + 1) >= 0
                spans.append(Span(at, at + len(part), part))
        if problems and on_bad_reference == "error":
            raise DataError(problems[0] + "; fix the row or set on_bad_reference: skip")
        skipped.extend(problems)
        if spans and text is not None and not problems:
            questions.append(ChromaItem(item.id, item.question, item.doc_id, item.source, _merge_spans(text, spans)))
    return Benchmark(name, documents, questions, skipped, {"ambiguous_spans": ambiguous})


def load_benchmark(src: Any, root: Path, on_bad_reference: str = "error", max_questions: int = 0) -> Benchmark:
    """A :class:`lab.config.BenchmarkSource` loaded: the ``include`` filter first, then the checks."""
    corpus_dir, questions = root / src.corpus_dir, root / src.questions
    if src.format == "cuad":
        bench = cuad_questions(questions, corpus_dir, name=src.name, on_bad_reference=on_bad_reference,
                               include=src.include)
    else:
        documents = load_corpus_folder(corpus_dir)
        items = load_chroma(questions)
        if src.include:
            documents = {k: v for k, v in documents.items() if k in src.include}
            items = [q for q in items if (q.doc_id in src.include or not q.doc_id)
                     and all(r.doc_id in src.include for r in q.references if r.doc_id)]
        items, without = answerable(items)
        kept, skipped = check_references(str(corpus_dir), documents, items, on_bad_reference)
        bench = Benchmark(src.name, documents, kept, skipped, without)
    unknown = sorted(set(src.include) - set(bench.documents))
    if unknown:
        raise DataError(f"benchmark {src.name!r}: include names {unknown}, which are not files of {corpus_dir}")
    if max_questions:
        bench.questions = bench.questions[:max_questions]
    return bench
