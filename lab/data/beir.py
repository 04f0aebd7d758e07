"""Retrieval sets in BEIR's shape: a corpus, queries and graded qrels, loaded or built.

A :class:`RetrievalDataset` is what every BEIR benchmark is (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``), so any BEIR set loads unchanged with :func:`load_beir`, and sets built
here from the bundled data can be written back with :meth:`RetrievalDataset.save_beir`:

- :func:`squad_paragraphs`: SQuAD v1.1 dev, question -> its paragraph (paragraph retrieval).
- :func:`squad_chunks`: SQuAD v1.1 dev at chunk level, question -> the chunks holding an answer.
- :func:`chroma_excerpts`: Chroma's chunking questions, question -> the chunks touching an excerpt.

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

import bisect
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.errors import DataError

if TYPE_CHECKING:
    from lab.chunking.base import Chunk, Chunker

QRELS_HEADER = ("query-id", "corpus-id", "score")

#: Count keys every :meth:`RetrievalDataset.stats` carries (0 when nothing was dropped).
DROP_KEYS = (
    "qrels_dropped", "qrels_dropped_missing_doc", "qrels_dropped_missing_query", "qrels_duplicate",
    "queries_without_qrels", "queries_without_relevant",
)


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
        if isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries <= 0:
            raise ValueError(f"n_queries must be a positive integer, got {n_queries!r}")

        def key(qid: str) -> str:
            return hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()

        chosen = set(sorted(self.queries, key=key)[:n_queries])
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
        _atomic_lines(folder / "corpus.jsonl", (
            json.dumps({"_id": i, "title": d.get("title") or "", "text": d.get("text") or ""},
                       ensure_ascii=False) + "\n" for i, d in self.corpus.items()))
        _atomic_lines(folder / "queries.jsonl", (
            json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, t in self.queries.items()))
        _atomic_lines(folder / "qrels" / f"{split}.tsv", (
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


def _atomic_lines(path: Path, lines: Iterable[str]) -> None:
    """Stream ``lines`` into a temp file beside ``path``, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.writelines(lines)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lines(path: Path, desc: str | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, decoded line)`` per line of ``path``, streamed; strict UTF-8, BOM dropped.

    ``desc`` shows a tqdm bar over the file's bytes (hidden when not on a terminal).
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file")
    bar = None
    if desc is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=path.stat().st_size, desc=desc, unit="B", unit_scale=True, disable=None, leave=False)
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if bar is not None:
                    bar.update(len(raw))
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{path}:line {lineno}: not valid UTF-8 at byte {exc.start} of the line "
                        f"(bad bytes {raw[exc.start:exc.end]!r}); re-encode the file as UTF-8 "
                        "(e.g. `iconv -f latin1 -t utf-8 IN > OUT`)"
                    ) from None
                yield lineno, line
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    finally:
        if bar is not None:
            bar.close()


def _jsonl(path: Path, desc: str | None = None) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, "path:line N", record)`` per non-blank line; bad JSON is a DataError."""
    for lineno, line in _lines(path, desc):
        if not line.strip():
            continue
        where = f"{path}:line {lineno}"
        try:
            rec = json.loads(line.rstrip("\r\n"))  # so that colno counts within the line
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); each line must be one "
                "JSON object: fix or delete the line"
            ) from None
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        yield lineno, where, rec


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
    for lineno, where, rec in _jsonl(folder / "corpus.jsonl", desc=f"corpus {folder.name}"):
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
    for lineno, where, rec in _jsonl(folder / "queries.jsonl"):
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
    for lineno, line in _lines(path):
        line = line.rstrip("\r\n")
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


# --------------------------------------------------------------------------- SQuAD


@dataclass(frozen=True)
class _Paragraph:
    id: str
    title: str  # as in the file (underscores)
    text: str


def _read_paragraphs(path: Path) -> dict[str, _Paragraph]:
    paragraphs: dict[str, _Paragraph] = {}
    for _, where, rec in _jsonl(Path(path)):
        pid = _id(rec, "paragraph_id", where)
        if pid in paragraphs:
            raise DataError(f"{where}: duplicate paragraph_id {pid!r}; paragraph ids must be unique")
        paragraphs[pid] = _Paragraph(pid, _str(rec, "title", where, required=True),
                                     _str(rec, "text", where, required=True))
    if not paragraphs:
        raise DataError(f"{path}: no paragraphs; expected one JSON object per line "
                        "(paragraph_id, title, text)")
    return paragraphs


def _squad_questions(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, titles: list[str] | None):
    """Paragraphs and questions of the chosen articles (all when ``titles`` is None), checked."""
    from lab.data.qa import load_squad

    paragraphs = _read_paragraphs(Path(paragraphs_jsonl))
    if titles is not None:
        available = {p.title for p in paragraphs.values()}
        wanted = {t.replace(" ", "_") for t in titles}
        unknown = sorted(wanted - available)
        if unknown:
            raise DataError(f"{paragraphs_jsonl}: no article titled {unknown}; available (first 10 of "
                            f"{len(available)}): {sorted(available)[:10]}")
        paragraphs = {k: p for k, p in paragraphs.items() if p.title in wanted}
    questions = []
    seen: dict[str, str] = {}
    for item in load_squad(Path(qa_jsonl)):
        if item.id in seen:
            raise DataError(f"{item.source}: duplicate question id {item.id!r} (first at {seen[item.id]})")
        seen[item.id] = item.source
        if item.doc_id not in paragraphs:
            if titles is None:
                raise DataError(f"{item.source}: paragraph_id {item.doc_id!r} is not in {paragraphs_jsonl}; "
                                "the two files must come from the same SQuAD release")
            continue
        questions.append(item)
    return paragraphs, questions


def squad_paragraphs(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, *,
                     titles: list[str] | None = None) -> RetrievalDataset:
    """SQuAD v1.1 as paragraph retrieval: docs = paragraphs, queries = questions, qrels = its paragraph.

    Doc ids are the ``paragraph_id`` values, titles the article title with underscores as spaces;
    every question has exactly one relevant doc (grade 1). ``titles`` (spaces or underscores)
    keeps only those articles, a domain of its own.

    Raises
    ------
    DataError
        Malformed lines, an unknown title, or a question whose paragraph is not in the file.
    """
    paragraphs, questions = _squad_questions(paragraphs_jsonl, qa_jsonl, titles)
    corpus = {p.id: {"title": p.title.replace("_", " "), "text": p.text} for p in paragraphs.values()}
    queries = {q.id: q.question for q in questions}
    qrels = {q.id: {q.doc_id: 1} for q in questions if q.doc_id}
    n_articles = len({p.title for p in paragraphs.values()})
    name = "squad_v1.1_dev" + (f"[{n_articles} articles]" if titles else "")
    return RetrievalDataset(name, corpus, queries, qrels, dict.fromkeys(DROP_KEYS, 0))


def _label(chunker: Chunker) -> str:
    """``name,key=value,...`` of the chunker's scalar params: set names differ when chunkings do."""
    params = chunker.params()
    scalars = [f"{k}={v}" for k, v in params.items()
               if k not in ("chunker", "version") and isinstance(v, (str, int, float, bool))]
    return ",".join([chunker.name, *scalars])


def _containing(chunks: list[Chunk], ends: list[int], starts: list[int], start: int, end: int) -> list[Chunk]:
    """Chunks with ``c.start <= start`` and ``end <= c.end`` (starts and ends are non-decreasing)."""
    return chunks[bisect.bisect_left(ends, end): bisect.bisect_right(starts, start)]


def squad_chunks(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, chunker: Chunker, *,
                 by: str = "article", titles: list[str] | None = None) -> RetrievalDataset:
    """SQuAD v1.1 at chunk level: docs = chunks, a chunk is relevant when it holds an answer.

    ``by="article"`` chunks each article (its paragraphs in file order joined with ``"\\n\\n"``;
    doc ids ``f"{title}#c{index}"``, title as in the file); ``by="paragraph"`` chunks each
    paragraph alone (ids ``f"{paragraph_id}#c{index}"``). Doc titles are the article titles with
    spaces.

    Relevance rule. The answers here carry no offsets, so each accepted answer string is located
    at its FIRST occurrence in the question's paragraph (which may not be the occurrence the
    annotator marked when the string repeats) and mapped to document offsets. A chunk is relevant
    (grade 1) when its range fully contains the span of any one of the question's located answers.
    Questions without a relevant chunk are dropped and counted in :meth:`~RetrievalDataset.stats`:
    ``questions_answer_not_located`` (no accepted answer occurs verbatim in the paragraph) and
    ``questions_answer_split`` (located, but every located answer straddles a chunk boundary).
    ``questions_answer_located`` counts those with at least one located answer, and
    ``questions_answer_repeated`` those where a located answer occurs more than once in its
    paragraph (where the first occurrence may not be the annotated one).
    """
    if by not in ("article", "paragraph"):
        raise ValueError(f"by must be 'article' or 'paragraph', got {by!r}")
    paragraphs, questions = _squad_questions(paragraphs_jsonl, qa_jsonl, titles)

    # The documents to chunk, and where each paragraph starts inside its document.
    docs: dict[str, tuple[str, str]] = {}  # doc key -> (title with spaces, text)
    where: dict[str, tuple[str, int]] = {}  # paragraph id -> (doc key, offset)
    if by == "article":
        by_title: dict[str, list[_Paragraph]] = {}
        for p in paragraphs.values():
            by_title.setdefault(p.title, []).append(p)
        for title, paras in by_title.items():
            offset = 0
            for p in paras:
                where[p.id] = (title, offset)
                offset += len(p.text) + 2
            docs[title] = (title.replace("_", " "), "\n\n".join(p.text for p in paras))
    else:
        for p in paragraphs.values():
            where[p.id] = (p.id, 0)
            docs[p.id] = (p.title.replace("_", " "), p.text)

    from tqdm.auto import tqdm

    corpus: dict[str, dict[str, str]] = {}
    doc_chunks: dict[str, tuple[list[Chunk], list[int], list[int]]] = {}
    bar = tqdm(docs.items(), desc=f"chunking ({chunker.name})", disable=None, leave=False)
    for key, (title, text) in bar:
        chunks = chunker.chunk(text, doc_id=key)
        doc_chunks[key] = (chunks, [c.end for c in chunks], [c.start for c in chunks])
        for c in chunks:
            corpus[f"{key}#c{c.index}"] = {"title": title, "text": c.text}

    counts = dict.fromkeys(DROP_KEYS, 0)
    counts.update(questions_total=len(questions), questions_answer_located=0,
                  questions_answer_not_located=0, questions_answer_split=0, questions_answer_repeated=0)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in questions:
        para = paragraphs[q.doc_id or ""]
        key, offset = where[para.id]
        chunks, ends, starts = doc_chunks[key]
        located = repeated = False
        rels: dict[str, int] = {}
        for answer in dict.fromkeys(a for a in q.answers if a.strip()):
            at = para.text.find(answer)
            if at < 0:
                continue
            located = True
            repeated = repeated or para.text.find(answer, at + 1) >= 0
            for c in _containing(chunks, ends, starts, offset + at, offset + at + len(answer)):
                rels[f"{key}#c{c.index}"] = 1
        if not located:
            counts["questions_answer_not_located"] += 1
            continue
        counts["questions_answer_located"] += 1
        counts["questions_answer_repeated"] += repeated
        if not rels:
            counts["questions_answer_split"] += 1
            continue
        queries[q.id] = q.question
        qrels[q.id] = dict(sorted(rels.items(), key=lambda kv: int(kv[0].rsplit("#c", 1)[1])))
    name = f"squad_v1.1_dev-chunks[{by},{_label(chunker)}]"
    return RetrievalDataset(name, corpus, queries, qrels, counts)


# --------------------------------------------------------------------------- Chroma


def chroma_excerpts(corpus_dir: str | Path, questions_csv: str | Path, chunker: Chunker) -> RetrievalDataset:
    """Chroma's chunking questions at chunk level: a chunk is relevant when it overlaps an excerpt.

    Docs are the chunks of every corpus file (ids ``f"{corpus_id}#c{index}"``, no title, so the
    corpus name gives nothing away); queries are the questions (ids ``row<N>``, the CSV data row);
    a chunk is relevant (grade 1) when it shares at least one character with any reference excerpt
    of the question. Questions left without a relevant chunk are dropped and counted
    (``questions_without_chunk``; none with a chunker that covers all non-whitespace text).

    Raises
    ------
    DataError
        A malformed row, a corpus_id without its file, or a reference whose offsets do not match
        the text (the message names the row and the offsets).
    """
    from lab.data.benchmarks import check_references, load_corpus_folder
    from lab.data.qa import load_chroma

    documents = load_corpus_folder(corpus_dir)
    questions, _ = check_references(str(corpus_dir), documents, load_chroma(Path(questions_csv)), "error")
    corpus: dict[str, dict[str, str]] = {}
    doc_chunks: dict[str, list[Chunk]] = {}
    for doc_id in sorted(documents):
        doc_chunks[doc_id] = chunker.chunk(documents[doc_id], doc_id=doc_id)
        for c in doc_chunks[doc_id]:
            corpus[f"{doc_id}#c{c.index}"] = {"title": "", "text": c.text}

    counts = dict.fromkeys(DROP_KEYS, 0)
    counts.update(questions_total=len(questions), questions_without_chunk=0)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in questions:
        doc_id = q.doc_id or ""
        rels = {f"{doc_id}#c{c.index}": 1 for c in doc_chunks[doc_id]
                if any(max(c.start, r.start) < min(c.end, r.end) for r in q.references)}
        if not rels:
            counts["questions_without_chunk"] += 1
            continue
        queries[q.id] = q.question
        qrels[q.id] = rels
    return RetrievalDataset(f"chroma_excerpts[{_label(chunker)}]", corpus, queries, qrels, counts)
