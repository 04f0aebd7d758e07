"""Chunk-level retrieval sets: a chunker decides the documents, the references decide relevance.

- :func:`squad_chunks`: SQuAD v1.1 at chunk level, question -> the chunks holding an answer.
- :func:`chroma_excerpts`: Chroma's chunking questions, question -> the chunks touching an excerpt.
- :func:`squad_corpus`: the chunked (or paragraph) corpus of SQuAD paragraphs alone, with the same
  doc ids and texts as :func:`squad_chunks`: what a RAG arm or the serving index searches.
- :func:`folder_corpus`: the chunked corpus of a corpus folder (your ingested documents), each
  passage with its offsets and, from the ingest manifest, its source file, pages and section.
- :func:`documents_corpus`: the chunked corpus of documents given as a mapping (each chunked alone);
  :func:`rag_corpus` picks it or :func:`squad_corpus` by a domain task's ``corpus_kind``.
- :func:`build_dataset`: the set an experiment's ``dataset`` spec and a configuration describe.

They sit above chunking (they take a chunker) and below the studies, so every study and serving
build their documents through the same code.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lab.chunking.base import Chunk, Chunker
from lab.config import format_validation
from lab.config.datasets import (
    CHUNKED_KINDS,
    DATASET_KINDS,
    ChromaExcerptsDataset,
    RetrievalDatasetSpec,
    SquadChunksDataset,
    SquadParagraphsDataset,
)
from lab.data.beir import DROP_KEYS, RetrievalDataset
from lab.data.squad import squad_articles, squad_questions
from lab.errors import ConfigError, DataError
from lab.ingest.provenance import DocumentMap, manifest_beside, read_document_maps, span_fields
from lab.paths import resolve_path


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
    paragraphs, questions = squad_questions(paragraphs_jsonl, qa_jsonl, titles)

    docs, where = _squad_docs(((p.id, p.title, p.text) for p in paragraphs.values()), by)
    corpus, doc_chunks = _chunk_docs(docs, chunker)
    bounds = {key: ([c.end for c in cs], [c.start for c in cs]) for key, cs in doc_chunks.items()}

    counts = dict.fromkeys(DROP_KEYS, 0)
    counts.update(questions_total=len(questions), questions_answer_located=0,
                  questions_answer_not_located=0, questions_answer_split=0, questions_answer_repeated=0)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in questions:
        para = paragraphs[q.doc_id or ""]
        key, offset = where[para.id]
        chunks, (ends, starts) = doc_chunks[key], bounds[key]
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


def chroma_excerpts(corpus_dir: str | Path, questions_csv: str | Path, chunker: Chunker, *,
                    document_level: bool = False) -> RetrievalDataset:
    """Chroma's chunking questions at chunk level: a chunk is relevant when it overlaps an excerpt.

    Docs are the chunks of every corpus file as :func:`folder_corpus` builds them (ids
    ``f"{corpus_id}#c{index}"``; no title unless the folder was ingested, so a file name gives nothing
    away; provenance fields beside the text); queries are the questions (ids ``row<N>``, the CSV data row);
    a chunk is relevant (grade 1) when it shares at least one character with any reference excerpt
    of the question (a reference may point into another document than the row's: its
    ``corpus_id``). Questions left without a relevant chunk are dropped and counted
    (``questions_without_chunk``; none with a chunker that covers all non-whitespace text).

    Rows without references (:func:`lab.data.benchmarks.answerable`) are not queries and are counted:
    ``questions_unanswerable`` (no document) and ``questions_document_level`` (a ``corpus_id``
    only); with ``document_level`` the latter are queries for which every chunk of their document
    is relevant (retrieval measured at document level).

    Raises
    ------
    DataError
        A malformed row, a corpus_id without its file, or a reference whose offsets do not match
        the text (the message names the row and the offsets).
    """
    from lab.data.benchmarks import answerable, check_references
    from lab.data.qa import load_chroma

    documents, maps = _read_folder(corpus_dir)
    items = load_chroma(Path(questions_csv))
    with_refs, without = answerable(items)
    questions, _ = check_references(str(corpus_dir), documents, with_refs, "error")
    doc_level = [q for q in items if not q.references and q.doc_id] if document_level else []
    for q in doc_level:
        if q.doc_id not in documents:
            raise DataError(f"{q.source}: corpus_id {q.doc_id!r} has no document in {corpus_dir}")
    corpus, doc_chunks = _folder_chunks(documents, maps, chunker)

    counts = dict.fromkeys(DROP_KEYS, 0)
    counts.update(questions_total=len(questions), questions_without_chunk=0)
    counts.update({f"questions_{k}": v for k, v in without.items()})
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in questions:
        hit = {(doc_id, c.index) for r in q.references for doc_id in [r.doc_id or q.doc_id or ""]
               for c in doc_chunks[doc_id] if max(c.start, r.start) < min(c.end, r.end)}
        rels = {f"{d}#c{i}": 1 for d, i in sorted(hit)}   # in document and chunk order
        if not rels:
            counts["questions_without_chunk"] += 1
            continue
        queries[q.id] = q.question
        qrels[q.id] = rels
    for q in doc_level:
        queries[q.id] = q.question
        qrels[q.id] = {f"{q.doc_id}#c{c.index}": 1 for c in doc_chunks[q.doc_id or ""]}
    return RetrievalDataset(f"chroma_excerpts[{_label(chunker)}]", corpus, queries, qrels, counts)


def _squad_docs(paragraphs: Iterable[tuple[str, str, str]], by: str
                ) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, int]]]:
    """The documents to chunk (key -> (title with spaces, text)) and where each paragraph starts
    (paragraph id -> (doc key, offset)): articles (:func:`lab.data.squad.squad_articles`) or
    paragraphs alone."""
    docs: dict[str, tuple[str, str]] = {}
    where: dict[str, tuple[str, int]] = {}
    if by == "article":
        for title, art in squad_articles(paragraphs).items():
            docs[title] = (title.replace("_", " "), art.text)
            where.update({pid: (title, offset) for pid, offset in art.offsets.items()})
    else:
        for pid, title, text in paragraphs:
            where[pid] = (pid, 0)
            docs[pid] = (title.replace("_", " "), text)
    return docs, where


def _chunk_docs(docs: Mapping[str, tuple[str, str]], chunker: Chunker
                ) -> tuple[dict[str, dict[str, str]], dict[str, list[Chunk]]]:
    """Corpus ``f"{key}#c{index}" -> {title, text}`` and each document's chunks, documents in order."""
    from lab.progress import bar

    corpus: dict[str, dict[str, str]] = {}
    doc_chunks: dict[str, list[Chunk]] = {}
    for key, (title, text) in bar(docs.items(), desc=f"chunking ({chunker.name})", total=len(docs), leave=False):
        doc_chunks[key] = chunker.chunk(text, doc_id=key)
        for c in doc_chunks[key]:
            corpus[f"{key}#c{c.index}"] = {"title": title, "text": c.text}
    return corpus, doc_chunks


def _read_folder(corpus_dir: str | Path) -> tuple[dict[str, str], dict[str, DocumentMap]]:
    """The texts of a corpus folder (doc id -> text) and, when it was ingested, each document's page
    and section map (:func:`lab.ingest.provenance.read_document_maps`; empty otherwise).

    An ingested folder is read recursively (``docs/pdf/x.pdf.txt`` is ``pdf/x.pdf``), and a document
    whose text file is empty (a scan without OCR) has no passage; any other folder as
    :func:`lab.data.benchmarks.load_corpus_folder` reads it."""
    from lab.config import CorpusSource
    from lab.data.benchmarks import load_corpus_folder
    from lab.data.corpus import load_corpus

    manifest = manifest_beside(corpus_dir)
    if manifest is None:
        return load_corpus_folder(corpus_dir), {}
    maps = read_document_maps(manifest)
    folder = Path(corpus_dir).resolve()
    loaded = load_corpus(CorpusSource(name=folder.name, path=str(folder), glob="**/*.txt"), folder.parent,
                         on_bad_file="report")
    bad = [f"{p.source}: {p.detail}" for p in loaded.problems if p.kind not in ("empty", "utf8_bom")]
    if bad:
        raise DataError(f"{corpus_dir}: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    documents = {d.id: d.text for d in loaded.documents}
    extra = sorted(set(documents) - set(maps))
    missing = sorted(d for d in set(maps) - set(documents) if not (folder / f"{d}.txt").is_file())
    if extra or missing:
        raise DataError(f"{manifest}: does not describe the corpus folder {corpus_dir} (files without a record: "
                        f"{extra[:5]}, records without a file: {missing[:5]}); ingest again")
    for doc_id, text in documents.items():
        chars = maps[doc_id].chars
        if chars is not None and chars != len(text):
            raise DataError(f"{manifest}: {doc_id} has {chars} characters in the manifest and {len(text)} in its "
                            "text file: the page map does not fit the text; ingest again")
    return documents, maps


def _folder_chunks(documents: Mapping[str, str], maps: Mapping[str, DocumentMap], chunker: Chunker | None
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, list[Chunk]]]:
    """:func:`folder_corpus` of a folder's texts and maps (:func:`_read_folder`), and each
    document's chunks (a chunker of None: the whole document as its one chunk)."""
    corpus: dict[str, dict[str, Any]] = {}
    doc_chunks: dict[str, list[Chunk]] = {}
    for doc_id in sorted(documents):
        text = documents[doc_id]
        doc = maps.get(doc_id)
        if chunker is None:
            chunks = [Chunk(doc_id, 0, len(text), text, 0)] if text.strip() else []
        else:
            chunks = chunker.chunk(text, doc_id=doc_id)
        doc_chunks[doc_id] = chunks
        for c in chunks:
            record: dict[str, Any] = {"title": doc.title if doc is not None else "", "text": c.text,
                                      "doc_id": doc_id, "start": c.start, "end": c.end}
            if doc is not None:
                record.update(span_fields(doc, c.start, c.end))
            corpus[doc_id if chunker is None else f"{doc_id}#c{c.index}"] = record
    return corpus, doc_chunks


def folder_corpus(corpus_dir: str | Path, chunker: Chunker | None) -> dict[str, dict[str, Any]]:
    """Passage id -> passage for a corpus folder (one ``.txt`` file per document, doc id = its path
    minus ``.txt``), documents in id order, each chunked by ``chunker`` (ids ``f"{doc_id}#c{index}"``)
    or, without one, whole (id = doc id).

    A passage is ``{"title", "text", "doc_id", "start", "end"}`` (``text == document[start:end]``).
    When the folder was ingested (``<corpus_dir>/../manifest.json``, :mod:`lab.ingest.provenance`),
    ``title`` is the document's title and the passage also carries ``source`` (the original file),
    ``pages`` (``[first, last]``, PDF) and ``section`` (the innermost heading, HTML/DOCX/Markdown)
    where known; otherwise ``title`` is "" (Chroma's corpora: the file name would give the answer
    away). :func:`chroma_excerpts` builds its documents with the same code, so a bundle's index is
    the one the studies evaluated.

    Raises
    ------
    DataError
        An unreadable file, a malformed or stale manifest (a document it lacks or one whose length
        differs from its text file).
    """
    return _folder_chunks(*_read_folder(corpus_dir), chunker)[0]


def squad_corpus(paragraphs: Mapping[str, Mapping[str, str]], chunker: Chunker | None) -> dict[str, dict[str, str]]:
    """Doc id -> ``{"title", "text"}`` for SQuAD paragraphs (id -> ``{"title", "text"}``, titles with
    underscores, file order): with a chunker, each article's chunks exactly as :func:`squad_chunks`
    (``by="article"``) builds them; without one, each paragraph (id = paragraph id), as
    :func:`lab.data.squad.squad_paragraphs`. Titles with spaces."""
    triples = [(pid, p["title"], p["text"]) for pid, p in paragraphs.items()]
    if chunker is None:
        return {pid: {"title": title.replace("_", " "), "text": text} for pid, title, text in triples}
    docs, _ = _squad_docs(triples, "article")
    return _chunk_docs(docs, chunker)[0]


def documents_corpus(documents: Mapping[str, Mapping[str, str]], chunker: Chunker | None) -> dict[str, dict[str, str]]:
    """Doc id -> ``{"title", "text"}`` for whole documents (id -> ``{"title", "text"}``, e.g.
    :func:`lab.data.benchmarks.corpus_documents`): with a chunker, each document's chunks (ids
    ``f"{doc_id}#c{index}"``, as :func:`chroma_excerpts` names them, the document's title kept, as
    :func:`squad_corpus` keeps an article's); without one, each document whole."""
    docs = {doc_id: (d["title"], d["text"]) for doc_id, d in documents.items()}
    if chunker is None:
        return {doc_id: {"title": title, "text": text} for doc_id, (title, text) in docs.items()}
    return _chunk_docs(docs, chunker)[0]


#: How a domain task's ``paragraphs`` become RAG passages (:attr:`lab.data.domain.DomainTask.corpus_kind`).
RAG_CORPORA = {"squad": squad_corpus, "documents": documents_corpus}


def rag_corpus(kind: str, paragraphs: Mapping[str, Mapping[str, str]], chunker: Chunker | None
               ) -> dict[str, dict[str, str]]:
    """The passages a RAG arm (and the served bundle) searches: :data:`RAG_CORPORA` ``[kind]``.

    Raises
    ------
    ValueError
        An unknown kind (the message lists the kinds).
    """
    if kind not in RAG_CORPORA:
        raise ValueError(f"unknown corpus kind {kind!r}; kinds: {', '.join(RAG_CORPORA)}")
    return RAG_CORPORA[kind](paragraphs, chunker)


# --------------------------------------------------------------------------- dataset specs


#: Dataset kinds of an experiment's ``dataset`` and the keys each needs (paths relative to the root).
def dataset_spec(dataset: RetrievalDatasetSpec | Mapping[str, Any], where: str = "dataset") -> RetrievalDatasetSpec:
    """``dataset`` as its typed model (:mod:`lab.config.datasets`); a mapping is validated.

    Raises
    ------
    ConfigError
        Unknown ``kind`` (the message lists the kinds) or a missing, unknown or mistyped key.
    """
    if not isinstance(dataset, Mapping):
        return dataset
    kind = dataset.get("kind")
    if kind not in DATASET_KINDS:
        raise ConfigError(f"{where}.kind {kind!r} is not one of {sorted(DATASET_KINDS)}")
    try:
        return DATASET_KINDS[kind].model_validate(dict(dataset))  # type: ignore[return-value]
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, where, DATASET_KINDS[kind], where)) from None


def config_chunker(config: Mapping[str, Any]) -> Chunker | None:
    """The chunker a configuration names (``chunker``, ``size``, ``overlap``); None for ``none``/absent."""
    name = config.get("chunker") or "none"
    if name == "none":
        return None
    from lab.chunking import make_chunker

    return make_chunker(name, **{k: config[k] for k in ("size", "overlap") if config.get(k) is not None})


def dataset_paths(dataset: RetrievalDatasetSpec | Mapping[str, Any], root: Path) -> list[Path]:
    """The files and folders a dataset spec reads (for stage dependencies)."""
    return [resolve_path(p, root) for p in dataset_spec(dataset).paths()]


def build_dataset(dataset: RetrievalDatasetSpec | Mapping[str, Any], config: Mapping[str, Any], root: Path
                  ) -> RetrievalDataset:
    """The :class:`~lab.data.beir.RetrievalDataset` a configuration is evaluated on.

    Raises
    ------
    ConfigError
        An invalid spec (:func:`dataset_spec`), or a chunked kind and a configuration without a chunker.
    """
    from lab.data import beir, squad

    spec = dataset_spec(dataset)
    chunker = config_chunker(config) if spec.kind in CHUNKED_KINDS else None
    if spec.kind in CHUNKED_KINDS and chunker is None:
        raise ConfigError(f"dataset.kind {spec.kind} needs a chunker in the configuration")
    if isinstance(spec, SquadChunksDataset):
        ds = squad_chunks(resolve_path(spec.paragraphs, root), resolve_path(spec.qa, root), chunker,
                          titles=spec.titles or None)
    elif isinstance(spec, SquadParagraphsDataset):
        ds = squad.squad_paragraphs(resolve_path(spec.paragraphs, root), resolve_path(spec.qa, root),
                                    titles=spec.titles or None)
    elif isinstance(spec, ChromaExcerptsDataset):
        ds = chroma_excerpts(resolve_path(spec.corpus_dir, root), resolve_path(spec.questions, root), chunker)
    else:
        ds = beir.load_beir(resolve_path(spec.folder, root), spec.split)
    if spec.max_queries:
        ds = ds.subset(spec.max_queries, seed=spec.seed)
    return ds
