"""The test-set file: a CSV in Chroma's ``questions_df.csv`` format plus columns, and its meta.

Columns (CONTRACT.md): ``question``, ``references`` (JSON list of ``{content, start_index,
end_index, corpus_id[, page, section]}``, exact offsets into the document's text), ``corpus_id``
(the first reference's document; "" for an unanswerable question and for a question that has no
reference span), then ``id`` (a stable hash of the item), ``answer``, ``question_type`` (``single``,
``multi``, ``unanswerable`` or ``human``), ``generator`` and ``split`` (``train`` | ``heldout``).

Rows whose ``references`` is ``[]`` are read by the retrieval readers as follows
(:func:`lab.data.benchmarks.answerable`): ``corpus_id`` empty = unanswerable (skipped and counted);
``corpus_id`` set = document-level relevance only (the team's own question whose answer was not
found in its document: skipped by span metrics and counted, relevant at document level).

Beside the CSV, ``<file>.meta.json`` (``lab.versioned`` header ``lab.testset`` version 1). Both are
written atomically: an interrupted run leaves the previous files as they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError

#: The CSV's columns, in order.
COLUMNS = ("question", "references", "corpus_id", "id", "answer", "question_type", "generator", "split")
#: The meta file's format and version (:mod:`lab.versioned`).
META_FORMAT, META_VERSION = "lab.testset", 1


def meta_path(csv_path: str | Path) -> Path:
    """``FILE.meta.json`` beside ``FILE``."""
    p = Path(csv_path)
    return p.with_name(p.name + ".meta.json")


def item_id(question_type: str, question: str, references: Sequence[Mapping[str, Any]], corpus_id: str) -> str:
    """16 hex digits of sha256 over the type, the question, the document and every reference's
    document and offsets: stable across runs, different when any of them changes."""
    refs = [[r.get("corpus_id", corpus_id), r["start_index"], r["end_index"]] for r in references]
    blob = json.dumps([question_type, question, corpus_id, refs], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_row(*, question: str, references: Sequence[Mapping[str, Any]], corpus_id: str, answer: str,
             question_type: str, generator: str, split: str = "") -> dict[str, str]:
    """One CSV row (every value a string; ``references`` as JSON)."""
    return {"question": question, "references": json.dumps(list(references), ensure_ascii=False),
            "corpus_id": corpus_id, "id": item_id(question_type, question, references, corpus_id),
            "answer": answer, "question_type": question_type, "generator": generator, "split": split}


def assign_splits(rows: list[dict[str, str]], *, seed: int, heldout_fraction: float, by: str,
                  keys: Sequence[str] | None = None) -> dict[str, int]:
    """Set each row's ``split`` by :func:`lab.data.split.hash_split` (``fraction``: a key's side
    depends on its own hash only): ``by="document"`` splits the documents (``keys``, one per row;
    default the row's ``corpus_id``), so no passage of a held-out document is trained on;
    ``by="item"`` splits the rows by ``id``. Returns the counts per side."""
    from lab.data.split import hash_split

    if by not in ("document", "item"):
        raise ValueError(f"split by must be 'document' or 'item', got {by!r}")
    row_keys = [r["id"] for r in rows] if by == "item" else list(keys or [r["corpus_id"] for r in rows])
    unique = sorted(set(row_keys))
    heldout_keys = set()
    if unique:
        _, held = hash_split(unique, seed, fraction=heldout_fraction, salt="testset")
        heldout_keys = {unique[i] for i in held}
    for r, k in zip(rows, row_keys, strict=True):
        r["split"] = "heldout" if k in heldout_keys else "train"
    return {"train": sum(r["split"] == "train" for r in rows), "heldout": sum(r["split"] == "heldout" for r in rows)}


def write_rows(path: str | Path, rows: Sequence[Mapping[str, str]]) -> Path:
    """The rows as the test-set CSV, atomically."""
    import csv

    from lab.io import atomic_open

    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS), extrasaction="raise")
        w.writeheader()
        w.writerows(rows)
    return Path(path)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a test-set CSV, as strings; ``references`` stays JSON text.

    Raises
    ------
    DataError
        A column of :data:`COLUMNS` is missing (the message lists those present).
    """
    import csv

    p = Path(path)
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{p}: not a test-set file: column(s) {missing} missing "
                            f"(columns present: {reader.fieldnames})")
        return [dict(r) for r in reader]


@dataclass
class TestsetResult:
    """A test set: its rows (dicts with :data:`COLUMNS`) and its meta."""

    rows: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    __test__ = False   # not a pytest test class, whatever its name

    def write(self, path: str | Path) -> Path:
        """The CSV at ``path`` and ``path.meta.json`` beside it (the meta carries the CSV's sha256),
        each atomically; the CSV first, so a meta always describes a complete CSV."""
        from lab.versioned import write_versioned

        p = write_rows(path, self.rows)
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        write_versioned(meta_path(p), META_FORMAT, META_VERSION, {**self.meta, "csv_sha256": digest,
                                                                  "rows": len(self.rows)})
        return p

    def counts(self) -> dict[str, int]:
        """Rows per question type."""
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["question_type"]] = out.get(r["question_type"], 0) + 1
        return out


def read_meta(csv_path: str | Path) -> dict[str, Any]:
    """The meta beside a test-set CSV, its header checked."""
    from lab.versioned import read_versioned

    return read_versioned(meta_path(csv_path), META_FORMAT, META_VERSION, "lab testset generate")
