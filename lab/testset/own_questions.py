"""The team's own questions, located in the corpus and written in the test-set format.

Input: a CSV (header row) or JSON Lines file (``.jsonl``/``.ndjson``) with ``question`` and
``answer`` and, optionally, ``source`` (a document id of the corpus folder, or its file name, with or
without ``.txt`` or the original suffix) and ``start_index``/``end_index`` (character offsets of the
reference excerpt in that document).

Each row's reference is found like this, and counted in the meta:

``offsets``     ``start_index``/``end_index`` given: the excerpt is the document's text there
``exact``       the answer occurs verbatim in the named document (or, without ``source``, in the
                first document in id order that holds it: ``ambiguous`` counts answers found in
                more than one document or more than once in one; the first occurrence is used)
``normalised``  the answer occurs once case and whitespace runs are ignored
``not_found``   nowhere: the row keeps its ``source`` document as ``corpus_id`` with ``references``
                ``[]``, i.e. document-level relevance (the span metrics of the chunking study and of
                ``chroma_excerpts`` skip and count it; ``chroma_excerpts(document_level=True)`` counts
                every chunk of the document as relevant); without ``source`` it has no document at all.
                Every such row is listed in the meta with its line.
``no_answer``   an empty answer and no offsets: a question the team expects the corpus not to answer

A malformed file is a :class:`lab.errors.DataError` naming the file, the line and the column (or the
missing column and the columns present). Rows are written with ``question_type`` and ``generator``
``human`` and a ``split`` like generated ones.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config import TestsetConfig
from lab.errors import DataError
from lab.testset.excerpts import Corpus, load_corpus
from lab.testset.io import TestsetResult, assign_splits, make_row
from lab.testset.text import locate

REQUIRED = ("question", "answer")
OPTIONAL = ("source", "start_index", "end_index")
HUMAN = "human"


@dataclass(frozen=True)
class _Row:
    line: int
    values: Mapping[str, Any]
    where: str


def _csv_rows(path: Path) -> Iterator[_Row]:
    import csv

    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file (expected a header row with columns {', '.join(REQUIRED)})")
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DataError(f"{path}:line 1: column(s) {', '.join(map(repr, missing))} missing "
                                f"(columns present: {', '.join(map(repr, header))})")
            last = reader.line_num
            for cells in reader:
                first = last + 1
                last = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise DataError(f"{path}:line {first}: {len(cells)} cells for {len(header)} columns "
                                    f"({', '.join(header)}); quote cells that hold commas")
                yield _Row(first, dict(zip(header, cells, strict=True)), f"{path}:line {first}")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}); re-encode it as UTF-8") from None
        except csv.Error as exc:
            raise DataError(f"{path}:line {reader.line_num}: not a readable CSV row ({exc})") from None


def _jsonl_rows(path: Path) -> Iterator[_Row]:
    from lab.io import iter_jsonl

    for rec in iter_jsonl(path):
        missing = [c for c in REQUIRED if c not in rec.record]
        if missing:
            raise DataError(f"{rec.where}: field(s) {', '.join(map(repr, missing))} missing "
                            f"(fields present: {', '.join(map(repr, rec.record)) or 'none'})")
        yield _Row(rec.line, rec.record, rec.where)


def read_questions(path: str | Path) -> Iterator[_Row]:
    """The rows of a questions file (CSV, or JSON Lines by its suffix), each with its line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found (give a CSV or JSONL of question, answer[, source, start_index, end_index])")
    return _jsonl_rows(p) if p.suffix.lower() in (".jsonl", ".ndjson") else _csv_rows(p)


def _text(row: _Row, column: str, *, required: bool) -> str:
    value = row.values.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"{row.where}: column {column!r} is empty")
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)             # a JSON number as an answer ("1889")
    if not isinstance(value, str):
        raise DataError(f"{row.where}: column {column!r} must be text, got {type(value).__name__} ({value!r:.60})")
    return value.strip()


def _offset(row: _Row, column: str) -> int | None:
    value = row.values.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        value = None
    elif isinstance(value, str):
        value = int(value.strip()) if value.strip().isdigit() else None
    if not isinstance(value, int) or value < 0:
        raise DataError(f"{row.where}: column {column!r} must be a non-negative integer (a character offset), "
                        f"got {row.values.get(column)!r:.60}")
    return value


def resolve_source(source: str, documents: Mapping[str, str], where: str) -> str:
    """The document id ``source`` names: the id itself, the id with ``.txt`` or one more suffix,
    or a file name that matches exactly one document.

    Raises
    ------
    DataError
        No or several documents match (the message lists the closest ids).
    """
    s = source.strip().replace("\\", "/")
    for cand in (s, s.removesuffix(".txt")):
        if cand in documents:
            return cand
    name = s.rsplit("/", 1)[-1].removesuffix(".txt")
    hits = [d for d in documents if d.rsplit("/", 1)[-1] in (name, name.rsplit(".", 1)[0])
            or d.rsplit("/", 1)[-1].rsplit(".", 1)[0] == name]
    if len(hits) == 1:
        return hits[0]
    close = difflib.get_close_matches(s, list(documents), n=5, cutoff=0.3)
    what = f"matches {len(hits)} documents ({', '.join(sorted(hits)[:5])})" if hits else "names no document"
    raise DataError(f"{where}: column 'source' {source!r} {what} of the corpus; "
                    f"closest ids: {', '.join(close) or ', '.join(sorted(documents)[:5])}")


def _find(answer: str, documents: Mapping[str, str], doc_ids: list[str]) -> tuple[str, int, int, str, bool] | None:
    """The first place the answer occurs (exact in any document first, then normalised), and
    whether it occurs elsewhere too."""
    for how in ("exact", "normalised"):
        hits = []
        for d in doc_ids:
            hit = locate(documents[d], answer)
            if hit is not None and hit[2] == how:
                hits.append((d, hit))
                if len(hits) > 1:
                    break
        if hits:
            d, (s, e, _) = hits[0]
            again = len(hits) > 1 or locate(documents[d], answer, start=e) is not None
            return d, s, e, how, again
    return None


def import_questions(path: str | Path, corpus_dir: str | Path, *, seed: int = 0,
                     settings: TestsetConfig | None = None) -> TestsetResult:
    """The questions of ``path`` located in the corpus folder ``corpus_dir`` (see the module docstring).

    Raises
    ------
    DataError
        A malformed file or row (file, line and column named), a ``source`` naming no document,
        offsets outside the document, or a file without rows.
    """
    cfg = settings or TestsetConfig()
    corpus: Corpus = load_corpus(corpus_dir)
    docs = corpus.documents
    ids = sorted(docs)
    rows: list[dict[str, str]] = []
    keys: list[str] = []
    counts: Counter[str] = Counter()
    not_found: list[dict[str, Any]] = []
    for row in read_questions(path):
        question = _text(row, "question", required=True)
        answer = _text(row, "answer", required=False)
        source = _text(row, "source", required=False)
        start, end = _offset(row, "start_index"), _offset(row, "end_index")
        doc = resolve_source(source, docs, row.where) if source else None
        refs: list[dict[str, Any]] = []
        if (start is None) != (end is None):
            raise DataError(f"{row.where}: give both 'start_index' and 'end_index' or neither")
        if start is not None and end is not None:
            if doc is None:
                if len(docs) != 1:
                    raise DataError(f"{row.where}: offsets need column 'source' (which document they point into)")
                doc = ids[0]
            if not start < end <= len(docs[doc]):
                raise DataError(f"{row.where}: offsets {start}..{end} are not a span of {doc!r} "
                                f"({len(docs[doc])} characters)")
            refs = [{"content": docs[doc][start:end], "start_index": start, "end_index": end, "corpus_id": doc}]
            counts["offsets"] += 1
        elif not answer:
            counts["no_answer"] += 1
        else:
            hit = _find(answer, docs, [doc] if doc else ids)
            if hit is None:
                counts["not_found"] += 1
                not_found.append({"line": row.line, "question": question[:200], "answer": answer[:200],
                                  "source": source or None})
            else:
                d, s, e, how, again = hit
                doc = d
                refs = [{"content": docs[d][s:e], "start_index": s, "end_index": e, "corpus_id": d}]
                counts[how] += 1
                counts["ambiguous"] += again
        if refs:
            page, section = corpus.place(refs[0]["corpus_id"], refs[0]["start_index"])
            if page is not None:
                refs[0]["page"] = page
            if section is not None:
                refs[0]["section"] = section
        rows.append(make_row(question=question, references=refs, corpus_id=doc or "", answer=answer,
                             question_type=HUMAN, generator=HUMAN))
        keys.append(doc or f"line{row.line}")
    if not rows:
        raise DataError(f"{path}: no questions (only a header or blank lines)")
    split = assign_splits(rows, seed=seed, heldout_fraction=cfg.heldout_fraction, by=cfg.split_by, keys=keys)
    meta = {
        "generator": HUMAN,
        "source_file": str(path),
        "source_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "seed": seed,
        "counts": {HUMAN: len(rows)},
        "kept": len(rows),
        "located": {k: counts.get(k, 0) for k in ("offsets", "exact", "normalised", "not_found", "no_answer",
                                                 "ambiguous")},
        "not_found": not_found,
        "corpus": corpus.identity(),
        "split": {"by": cfg.split_by, "heldout_fraction": cfg.heldout_fraction, **split},
    }
    return TestsetResult(rows, meta)
