"""Retrieval sets in BEIR's shape: a corpus, queries and graded qrels, loaded or built.

A :class:`RetrievalDataset` is what every BEIR benchmark is (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``), so any BEIR set loads unchanged with :func:`load_beir`, and sets built
here from the bundled data can be written back with :meth:`RetrievalDataset.save_beir`:

- :func:`lab.data.squad.squad_paragraphs`: SQuAD v1.1 dev, question -> its paragraph.
- :mod:`lab.retrieval.sets`: chunk-level sets (a chunker decides the docs): SQuAD's answers or
  Chroma's excerpts mapped to the chunks that hold them.

What :func:`load_beir` accepts and what it drops (drops are counted in :meth:`~RetrievalDataset.stats`):

* Malformed input is a :class:`~lab.errors.DataError` naming the file, the line and the field:
  bad JSON, a non-object line, invalid UTF-8, a missing or empty ``_id``, a missing ``text``,
  a duplicate ``_id`` (both lines named), a qrels row without three columns or with a
  non-integer score.
* Tolerated as BEIR's own loader does: docs without ``title`` (title ""), extra fields (ignored),
  ids written as JSON integers (made strings), a qrels file without its header line (BEIR's loader
  would silently skip its first judgement; here the first row counts when its score is a number),
  four-column TREC qrels (``qid iter docid score``).
* Dropped and counted, because real BEIR sets contain them: qrels rows whose doc is not in the
  corpus (``qrels_dropped_missing_doc``) or whose query is not in ``queries.jsonl``
  (``qrels_dropped_missing_query``); queries with no qrels row (``queries_without_qrels``: BEIR
  evaluates only queries that have judgements) and queries whose judgements are all 0
  (``queries_without_relevant``: recall is undefined for them). A repeated (query, doc) row keeps
  the last score, as BEIR's loader does (``qrels_duplicate``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.io import decode_line, iter_jsonl, iter_lines, write_lines

QRELS_HEADER = ("query-id", "corpus-id", "score")

#: Count keys every :meth:`RetrievalDataset.stats` carries (0 when nothing was dropped).
DROP_KEYS = (
    "qrels_dropped", "qrels_dropped_missing_doc", "qrels_dropped_missing_query", "qrels_duplicate",
    "queries_without_qrels", "queries_without_relevant",
)


def sample_query_ids(query_ids: Iterable[str], n_queries: int, seed: int = 0) -> set[str]:
    """The ``n_queries`` ids (all when fewer) first in the order of ``sha256(f"{seed}:{query_id}")``:
    the seeded query sample of :meth:`RetrievalDataset.subset`, the same on every machine and
    nested (with one seed, the first 100 are among the first 200)."""
    if isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries <= 0:
        raise ValueError(f"n_queries must be a positive integer, got {n_queries!r}")

    def key(qid: str) -> str:
        return hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()

    return set(sorted(query_ids, key=key)[:n_queries])


@dataclass
class RetrievalDataset:
    """A retrieval benchmark in BEIR's shape.

    Attributes
    ----------
    name:
        Set name (the folder name for :func:`load_beir`).
    corpus:
        Doc id -> ``{"title": ..., "text": ...}`` (title "" when the doc has none).
    queries:
        Query id -> text; only queries with at least one relevant doc (evaluable).
    qrels:
        Query id -> doc id -> relevance grade (> 0 relevant; 0 rows of BEIR files are kept).
    counts:
        What loading or building dropped and why (see the module docstring); merged into
        :meth:`stats`. Not part of equality: a saved and reloaded set equals its original.
    """

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    counts: dict[str, int] = field(default_factory=dict, compare=False)

    def doc_texts(self, with_title: bool = True) -> tuple[list[str], list[str]]:
        """``(ids, texts)`` in corpus order; with ``with_title`` a titled doc is ``"title\\n\\ntext"``."""
        ids, texts = [], []
        for doc_id, doc in self.corpus.items():
            title, text = doc.get("title") or "", doc.get("text") or ""
            ids.append(doc_id)
            texts.append(f"{title}\n\n{text}" if with_title and title else text)
        return ids, texts

    def subset(self, n_queries: int, seed: int = 0) -> RetrievalDataset:
        """``n_queries`` queries (all when fewer exist) with their qrels, and the whole corpus.

        The sample orders queries by ``sha256(f"{seed}:{query_id}")``, so it is the same on every
        machine and Python version, and nested: with one seed, the first 100 are among the first 200.
        Queries keep their original order.
        """
        chosen = sample_query_ids(self.queries, n_queries, seed)
        queries = {q: t for q, t in self.queries.items() if q in chosen}
        return RetrievalDataset(
            f"{self.name}[{len(queries)}q,seed={seed}]", self.corpus, queries,
            {q: dict(self.qrels[q]) for q in queries if q in self.qrels}, dict(self.counts),
        )

    def save_beir(self, folder: str | Path, split: str = "test") -> None:
        """Write ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` under ``folder``.

        Each file is written to a temp file beside it and renamed, so a reader never sees half a
        file. Raises DataError for ids that a TSV cannot hold (tab or newline inside).
        """
        folder = Path(folder)
        for qid, rels in self.qrels.items():
            for doc_id in (qid, *rels):
                if any(ch in doc_id for ch in "\t\r\n"):
                    raise DataError(f"{self.name}: id {doc_id!r} contains a tab or newline; "
                                    "qrels/*.tsv cannot hold it; rename the id")
        write_lines(folder / "corpus.jsonl", (
            json.dumps({"_id": i, "title": d.get("title") or "", "text": d.get("text") or ""},
                       ensure_ascii=False) + "\n" for i, d in self.corpus.items()))
        write_lines(folder / "queries.jsonl", (
            json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, t in self.queries.items()))
        write_lines(folder / "qrels" / f"{split}.tsv", (
            "\t".join(QRELS_HEADER) + "\n",
            *(f"{q}\t{d}\t{s}\n" for q, rels in self.qrels.items() for d, s in rels.items())))

    def stats(self) -> dict[str, Any]:
        """Sizes, means and the drop counts (:data:`DROP_KEYS` always present, plus builder counts)."""
        rel = [sum(1 for s in r.values() if s > 0) for q, r in self.qrels.items() if q in self.queries]
        n_docs = len(self.corpus)
        out: dict[str, Any] = {
            "name": self.name,
            "docs": n_docs,
            "queries": len(self.queries),
            "qrels": sum(len(r) for r in self.qrels.values()),
            "qrels_relevant": sum(rel),
            "relevant_per_query_mean": sum(rel) / len(rel) if rel else 0.0,
            "relevant_per_query_max": max(rel, default=0),
            "docs_without_title": sum(1 for d in self.corpus.values() if not d.get("title")),
            "doc_chars_mean": (sum(len(d.get("text") or "") for d in self.corpus.values()) / n_docs
                               if n_docs else 0.0),
            "query_chars_mean": (sum(len(t) for t in self.queries.values()) / len(self.queries)
                                 if self.queries else 0.0),
        }
        out.update(dict.fromkeys(DROP_KEYS, 0))
        out.update(self.counts)
        return out


# --------------------------------------------------------------------------- file helpers


def _id(rec: dict[str, Any], key: str, where: str) -> str:
    """``rec[key]`` as a non-empty string id (JSON integers accepted)."""
    if key not in rec:
        raise DataError(f"{where}: field {key!r} is missing (fields present: {sorted(rec)}); "
                        f"every record needs a unique {key!r}")
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise DataError(f"{where}: field {key!r} must be a non-empty string or integer, got {value!r:.80}")
    return str(value)


def _str(rec: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    """``rec[key]`` as a string; absent or null gives "" unless ``required``."""
    value = rec.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: field {key!r} is missing or null (fields present: {sorted(rec)})")
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {key!r} must be a string, got {type(value).__name__} ({value!r:.80})"
        )
    return value


# --------------------------------------------------------------------------- BEIR folders


def load_beir(folder: str | Path, split: str = "test") -> RetrievalDataset:
    """Load a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Files are streamed line by line (a progress bar shows for the corpus on a terminal). What is
    an error, what is tolerated and what is dropped and counted is in the module docstring.

    Raises
    ------
    DataError
        A missing file (the qrels message lists the splits present) or a malformed line.
    """
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (folder / "corpus.jsonl", folder / "queries.jsonl"):
        if not path.is_file():
            raise DataError(f"{path} is missing; a BEIR folder holds corpus.jsonl, queries.jsonl and "
                            "qrels/<split>.tsv")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DataError(f"{qrels_path} is missing; splits present in {folder / 'qrels'}: "
                        f"{', '.join(splits) or 'none'}; pass split= one of them")

    corpus: dict[str, dict[str, str]] = {}
    first_line: dict[str, int] = {}
    for row in iter_jsonl(folder / "corpus.jsonl", desc=f"corpus {folder.name}"):
        lineno, where, rec = row.line, row.where, row.record
        doc_id = _id(rec, "_id", where)
        if doc_id in corpus:
            raise DataError(f"{where}: duplicate _id {doc_id!r} (first on line {first_line[doc_id]}); "
                            "doc ids must be unique: qrels point at them")
        first_line[doc_id] = lineno
        corpus[doc_id] = {"title": _str(rec, "title", where, required=False),
                          "text": _str(rec, "text", where, required=True)}
    del first_line

    all_queries: dict[str, str] = {}
    query_line: dict[str, int] = {}
    for row in iter_jsonl(folder / "queries.jsonl"):
        lineno, where, rec = row.line, row.where, row.record
        qid = _id(rec, "_id", where)
        if qid in all_queries:
            raise DataError(f"{where}: duplicate _id {qid!r} (first on line {query_line[qid]}); "
                            "query ids must be unique")
        query_line[qid] = lineno
        all_queries[qid] = _str(rec, "text", where, required=True)

    counts = dict.fromkeys(DROP_KEYS, 0)
    qrels: dict[str, dict[str, int]] = {}
    for qid, doc_id, score in _qrels_rows(qrels_path):
        if qid not in all_queries:
            counts["qrels_dropped_missing_query"] += 1
        elif doc_id not in corpus:
            counts["qrels_dropped_missing_doc"] += 1
        else:
            rels = qrels.setdefault(qid, {})
            if doc_id in rels:
                counts["qrels_duplicate"] += 1
            rels[doc_id] = score
    counts["qrels_dropped"] = counts["qrels_dropped_missing_query"] + counts["qrels_dropped_missing_doc"]

    queries: dict[str, str] = {}
    for qid, text in all_queries.items():
        if qid not in qrels:
            counts["queries_without_qrels"] += 1
        elif not any(s > 0 for s in qrels[qid].values()):
            counts["queries_without_relevant"] += 1
            del qrels[qid]
        else:
            queries[qid] = text
    return RetrievalDataset(folder.name, corpus, queries, qrels, counts)


def _qrels_rows(path: Path) -> Iterator[tuple[str, str, int]]:
    """``(query id, doc id, score)`` per row of a BEIR (3 columns, tab) or TREC (4 columns) qrels file.

    The first row is a header when its score column is not a number (BEIR writes
    ``query-id corpus-id score``); otherwise it is a judgement like the others.
    """
    for lineno, raw in iter_lines(path):
        line = decode_line(path, lineno, raw).rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{path}:line {lineno}"
        parts = line.split("\t")
        if len(parts) == 1:
            parts = line.split()  # space-separated (TREC style)
        if len(parts) == 4:
            parts = [parts[0], parts[2], parts[3]]  # TREC: qid iteration docid score
        if len(parts) != 3:
            raise DataError(f"{where}: expected 3 tab-separated columns query-id, corpus-id, score "
                            f"(or TREC's 4), got {len(parts)}: {line!r:.120}")
        qid, doc_id, raw = (p.strip() for p in parts)
        try:
            score = int(raw)
        except ValueError:
            try:
                as_float = float(raw)
            except ValueError:
                if lineno == 1:
                    continue  # the header line
                raise DataError(f"{where}: column 'score' must be an integer, got {raw!r}; "
                                "write the relevance grade (0 = not relevant, 1 or more = relevant)") from None
            if not as_float.is_integer():
                raise DataError(f"{where}: column 'score' must be an integer grade, got {raw!r}") from None
            score = int(as_float)
        if not qid or not doc_id:
            raise DataError(f"{where}: empty query-id or corpus-id: {line!r:.120}")
        yield qid, doc_id, score
