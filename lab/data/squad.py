"""SQuAD v1.1 as it ships here (``*.paragraphs.jsonl`` + ``*.qa.jsonl``): checked readers, articles,
and paragraph retrieval.

:func:`squad_questions` reads the paragraphs and the questions of chosen articles, checking ids
and cross-references; :func:`squad_articles` rebuilds each article from its paragraphs (file order,
joined by a blank line) with every paragraph's offset in it: the one article-building path that
the chunk-level retrieval sets, the fine-tune study's RAG corpus and serving all use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.data.beir import DROP_KEYS, RetrievalDataset, _id, _str
from lab.errors import DataError
from lab.io import iter_jsonl

#: What separates two paragraphs of an article.
PARAGRAPH_SEP = "\n\n"

@dataclass(frozen=True)
class Paragraph:
    """One SQuAD paragraph: its id, the article title as in the file (underscores) and its text."""

    id: str
    title: str  # as in the file (underscores)
    text: str


def read_paragraphs(path: Path) -> dict[str, Paragraph]:
    """Paragraph id -> :class:`Paragraph`, in file order; DataError on malformed or duplicate lines."""
    paragraphs: dict[str, Paragraph] = {}
    for row in iter_jsonl(path):
        where, rec = row.where, row.record
        pid = _id(rec, "paragraph_id", where)
        if pid in paragraphs:
            raise DataError(f"{where}: duplicate paragraph_id {pid!r}; paragraph ids must be unique")
        paragraphs[pid] = Paragraph(pid, _str(rec, "title", where, required=True),
                                     _str(rec, "text", where, required=True))
    if not paragraphs:
        raise DataError(f"{path}: no paragraphs; expected one JSON object per line "
                        "(paragraph_id, title, text)")
    return paragraphs


def squad_questions(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, titles: list[str] | None):
    """Paragraphs (id -> :class:`Paragraph`) and questions (:class:`lab.data.qa.QAItem`) of the
    chosen articles (all when ``titles`` is None; spaces or underscores), checked.

    Raises
    ------
    DataError
        Malformed lines, a duplicate id, an unknown title (the message lists some that exist), or a
        question whose paragraph is not in the file.
    """
    from lab.data.qa import load_squad

    paragraphs = read_paragraphs(Path(paragraphs_jsonl))
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
    paragraphs, questions = squad_questions(paragraphs_jsonl, qa_jsonl, titles)
    corpus = {p.id: {"title": p.title.replace("_", " "), "text": p.text} for p in paragraphs.values()}
    queries = {q.id: q.question for q in questions}
    qrels = {q.id: {q.doc_id: 1} for q in questions if q.doc_id}
    n_articles = len({p.title for p in paragraphs.values()})
    name = "squad_v1.1_dev" + (f"[{n_articles} articles]" if titles else "")
    return RetrievalDataset(name, corpus, queries, qrels, dict.fromkeys(DROP_KEYS, 0))




@dataclass(frozen=True)
class Article:
    """An article rebuilt from its paragraphs: ``text`` and each paragraph's start offset in it."""

    title: str                  # as in the file (underscores)
    text: str
    offsets: dict[str, int]     # paragraph id -> start of its text in ``text``


def squad_articles(paragraphs: Iterable[tuple[str, str, str]]) -> dict[str, Article]:
    """Title -> :class:`Article` from ``(paragraph id, title, text)`` triples in file order.

    An article's paragraphs keep their order and are joined by :data:`PARAGRAPH_SEP`; articles come
    in the order of their first paragraph.
    """
    grouped: dict[str, list[tuple[str, str]]] = {}
    for pid, title, text in paragraphs:
        grouped.setdefault(title, []).append((pid, text))
    articles = {}
    for title, paras in grouped.items():
        offsets, at = {}, 0
        for pid, text in paras:
            offsets[pid] = at
            at += len(text) + len(PARAGRAPH_SEP)
        articles[title] = Article(title, PARAGRAPH_SEP.join(t for _, t in paras), offsets)
    return articles


# --------------------------------------------------------------------------- as a corpus folder + Chroma CSV


@dataclass
class ChromaExport:
    """SQuAD articles as a corpus folder and their questions in Chroma's ``questions_df.csv`` format.

    Attributes
    ----------
    documents:
        Title (underscores, the file's spelling; the ``corpus_id``) -> the article text, built by
        :func:`squad_articles` exactly as the chunk-level retrieval set builds it.
    rows:
        One dict per question: ``question``, ``references`` (JSON list with one
        ``{content, start_index, end_index}``), ``corpus_id``, then ``id`` (the SQuAD id),
        ``answer``, ``question_type`` (``single``), ``generator`` (``human``), ``split``.
    counts:
        ``questions_total``, ``questions_answer_located``, ``questions_answer_not_located``,
        ``questions_sampled`` and ``sampled_answer_repeated`` (sampled questions whose located answer
        occurs again in its paragraph, where the first occurrence may not be the annotated one).
    """

    documents: dict[str, str]
    rows: list[dict[str, str]]
    counts: dict[str, int]

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """``out_dir/corpus/<title>.txt`` per article and ``out_dir/questions.csv``; returns both paths."""
        import pandas as pd

        from lab.io import write_csv, write_text

        out = Path(out_dir)
        for title, text in self.documents.items():
            write_text(out / "corpus" / f"{title}.txt", text)
        write_csv(out / "questions.csv", pd.DataFrame(self.rows, columns=list(CHROMA_EXPORT_COLUMNS)))
        return out / "corpus", out / "questions.csv"


#: Columns of :attr:`ChromaExport.rows`: Chroma's three, then the test-set file's extra columns.
CHROMA_EXPORT_COLUMNS = ("question", "references", "corpus_id", "id", "answer", "question_type", "generator",
                         "split")


def squad_as_chroma(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, titles: list[str] | None = None, *,
                    max_queries: int = 0, seed: int = 0) -> ChromaExport:
    """SQuAD v1.1 articles as a corpus folder's documents and their questions with exact offsets.

    Each question's reference is its first accepted answer that occurs verbatim in its paragraph, at
    its FIRST occurrence there (the rule of :func:`lab.retrieval.sets.squad_chunks`), moved to the
    article's offsets; questions with no located answer are dropped and counted. ``max_queries``
    keeps the seeded sample of :func:`lab.data.beir.sample_query_ids` over the located questions:
    the sample of a ``squad_chunks`` experiment with the same ``max_queries`` and ``seed``, except
    where that set also drops a question whose answer straddles a chunk boundary (which depends on
    the chunker; such a drop lets the next question in the sample's order in).

    Raises
    ------
    DataError
        As :func:`squad_questions` (malformed lines, an unknown title, a question without its paragraph).
    """
    import json

    from lab.data.beir import sample_query_ids

    paragraphs, questions = squad_questions(paragraphs_jsonl, qa_jsonl, titles)
    articles = squad_articles((p.id, p.title, p.text) for p in paragraphs.values())
    counts = {"questions_total": len(questions)}
    located: dict[str, dict[str, str]] = {}
    repeated: set[str] = set()
    for q in questions:
        para = paragraphs[q.doc_id or ""]
        for answer in dict.fromkeys(a for a in q.answers if a.strip()):
            at = para.text.find(answer)
            if at < 0:
                continue
            start = articles[para.title].offsets[para.id] + at
            if para.text.find(answer, at + 1) >= 0:
                repeated.add(q.id)
            ref = {"content": answer, "start_index": start, "end_index": start + len(answer)}
            located[q.id] = {"question": q.question, "references": json.dumps([ref], ensure_ascii=False),
                             "corpus_id": para.title, "id": q.id, "answer": answer, "question_type": "single",
                             "generator": "human", "split": "heldout"}
            break
    counts["questions_answer_located"] = len(located)
    counts["questions_answer_not_located"] = len(questions) - len(located)
    keep = sample_query_ids(located, max_queries, seed) if max_queries else set(located)
    rows = [r for qid, r in located.items() if qid in keep]
    counts["questions_sampled"] = len(rows)
    counts["sampled_answer_repeated"] = len(keep & repeated)
    return ChromaExport({t: a.text for t, a in articles.items()}, rows, counts)
