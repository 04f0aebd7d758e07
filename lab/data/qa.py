"""Loaders of QA and evaluation sets, one per format, into typed items.

Every item is a :class:`QAItem` (id, question, the document it refers to, where it came from);
each format adds its references: exact character spans (``chroma``), accepted answer strings
(``squad``), clause excerpts of one category (``cuad``: one item per contract and category, the
way CUAD is asked as QA), grounding knowledge and answers (``halueval_qa``) or a human label and
hallucinated spans (``halueval_general``). A malformed record is a :class:`~lab.errors.DataError`
naming the file, the line (JSONL, 1-based) or data row (CSV, 1-based, header not counted) and the
field. Content problems that are not malformed records (an empty question, a reference that is
not in its document, unparseable HaluEval spans) are left to :mod:`lab.data.quality` to count. HaluEval
labels are read as strictly as the judge stage reads them (:mod:`lab.data.halueval`, the one HaluEval
reader); the quality profile reports every record that reader rejects.

New formats register a loader ``(path, limit) -> list[QAItem]`` in :data:`QA_LOADERS` (or through
the entry-point group ``lab.qa_formats``).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.config import QASetSource
from lab.data.corpus import read_text
from lab.data.halueval import YES_NO
from lab.data.review_file import review_path, reviewed_rows
from lab.errors import DataError
from lab.io import iter_jsonl
from lab.paths import resolve_path
from lab.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

QALoader = Callable[[Path, int], list["QAItem"]]

#: Loader of each QA format, by the ``format`` name of :class:`~lab.config.QASetSource`.
QA_LOADERS: Registry[QALoader] = Registry("qa_formats")


# --------------------------------------------------------------------------- item types


@dataclass(frozen=True)
class QAItem:
    """Fields every QA item has.

    Attributes
    ----------
    id:
        The record's id, or a position-based one (``row12``, ``line7``) where the format has none.
    question:
        The question or user query ("" is kept: the quality profile counts empty questions).
    doc_id:
        Id of the corpus document the item's references point into; None when the item carries
        its own context (HaluEval).
    source:
        ``path:line N`` or ``path:row N``.
    """

    id: str
    question: str
    doc_id: str | None
    source: str


@dataclass(frozen=True)
class Span:
    """A character span ``[start, end)`` of a document and the text expected there.

    ``doc_id`` names the document when it is not the item's own (a multi-passage question of a
    generated test set points into two documents); None: the item's ``doc_id``.
    """

    start: int
    end: int
    content: str
    doc_id: str | None = None


@dataclass(frozen=True)
class ChromaItem(QAItem):
    """Chroma chunking-evaluation question; ``doc_id`` is the ``corpus_id`` column."""

    references: tuple[Span, ...]


@dataclass(frozen=True)
class SquadItem(QAItem):
    """SQuAD question; ``doc_id`` is the paragraph id, ``answers`` the accepted answer strings."""

    title: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class TestsetItem(ChromaItem):
    """One row of a test set (CONTRACT: Chroma's columns plus ``id``, ``answer``, ``question_type``,
    ``generator``, ``split``); ``id`` is the row's own id, ``doc_id`` its ``corpus_id``.

    ``reference_docs`` is the document of each reference (a multi-passage reference may name its own
    ``corpus_id``; the row's otherwise). An ``unanswerable`` item has no references and answer "".
    """

    __test__ = False   # not a pytest test class

    answer: str
    question_type: str            # single | multi | unanswerable
    split: str                    # train | heldout
    generator: str
    reference_docs: tuple[str, ...]

    @property
    def excerpt(self) -> str:
        """The reference excerpts' texts, joined by a blank line ("" for an unanswerable item)."""
        return "\n\n".join(r.content for r in self.references)


#: The columns of a test set file beyond Chroma's, and the values two of them take.
TESTSET_COLUMNS = ("id", "answer", "question_type", "generator", "split")
QUESTION_TYPES = ("single", "multi", "unanswerable")
SPLITS = ("train", "heldout")


#: CUAD annotators joined the parts of a non-contiguous excerpt with this marker (CUAD v1 README).
CUAD_GAP = "<omitted>"


@dataclass(frozen=True)
class CuadItem(QAItem):
    """One CUAD clause category of one contract; ``excerpts`` is empty when the clause is absent.

    An excerpt may be several contract passages joined by :data:`CUAD_GAP`; see :meth:`pieces`.
    """

    category: str
    excerpts: tuple[str, ...]
    answer: str

    @staticmethod
    def pieces(excerpt: str) -> list[str]:
        """The contiguous passages of ``excerpt``: split at ``<omitted>``, trimmed, blanks dropped."""
        return [p.strip() for p in excerpt.split(CUAD_GAP) if p.strip()]


@dataclass(frozen=True)
class HaluEvalQAItem(QAItem):
    """HaluEval QA seed: the grounding knowledge, a right and a hallucinated answer."""

    knowledge: str
    right_answer: str
    hallucinated_answer: str


@dataclass(frozen=True)
class HaluEvalGeneralItem(QAItem):
    """HaluEval general: a response with the human label; ``spans`` None when unparseable."""

    response: str
    hallucination: bool
    spans: tuple[str, ...] | None
    spans_error: str | None = None


# --------------------------------------------------------------------------- readers


def load_qa_set(src: QASetSource, root: Path, limit: int = 0) -> list[QAItem]:
    """Load the QA set ``src`` (path resolved against ``root``); ``limit`` items at most (0 = all).

    Raises
    ------
    DataError
        Missing file or malformed record. RegistryError for an unknown format.
    """
    path = Path(src.path)
    path = resolve_path(path, root)
    if not path.is_file():
        raise DataError(f"qa set {src.name!r}: {path} does not exist or is not a file")
    return QA_LOADERS.get(src.format)(path, limit)


def _get(rec: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """``rec[key]`` checked for presence and type; the DataError names the record and the field."""
    if key not in rec:
        raise DataError(f"{where}: field {key!r} is missing (fields present: {sorted(rec)})")
    value = rec[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass, but True is not an offset or an id
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise DataError(f"{where}: field {key!r} must be {names}, got {type(value).__name__} ({value!r:.80})")
    return value


def _csv(path: Path, required: list[str]) -> pd.DataFrame:
    """Read a CSV as strings ('' for blanks, no NaN guessing); check the required columns."""
    import io

    import pandas as pd

    text = read_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: column(s) {missing} missing (columns present: {list(df.columns)})")
    return df


# --------------------------------------------------------------------------- formats


@QA_LOADERS.register("chroma")
def load_chroma(path: Path, limit: int = 0) -> list[ChromaItem]:
    """``questions_df.csv``: question, references (JSON list of spans), corpus_id.

    Extra columns are ignored (a generated test set's ``id``, ``answer``, ``question_type``...); a
    reference may carry ``corpus_id`` (the document it points into, when not the row's). An empty
    ``references`` list is read as it is: :func:`lab.data.benchmarks.answerable` sorts those rows out.

    A test set with a review beside it is read reviewed (:func:`load_reviewed_testset`), named by item ids.
    """
    if review_path(path).is_file():
        return [ChromaItem(it.id, it.question, it.doc_id, it.source, tuple(
            Span(r.start, r.end, r.content, d) for r, d in zip(it.references, it.reference_docs, strict=True)))
            for it in load_reviewed_testset(path)[0][: limit or None]]
    df = _csv(path, ["question", "references", "corpus_id"])
    items: list[ChromaItem] = []
    for i, row in enumerate(df.itertuples(index=False), start=1):
        if limit and len(items) >= limit:
            break
        where = f"{path}:row {i}"
        try:
            refs = json.loads(row.references)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field 'references' is not valid JSON ({exc.msg})") from None
        if not isinstance(refs, list):
            raise DataError(f"{where}: field 'references' must be a JSON list, got {type(refs).__name__}")
        spans = []
        for j, ref in enumerate(refs):
            rwhere = f"{where}: references[{j}]"
            if not isinstance(ref, dict):
                raise DataError(f"{rwhere}: expected an object with content, start_index, end_index")
            doc = _get(ref, "corpus_id", rwhere) if "corpus_id" in ref else None
            spans.append(Span(_get(ref, "start_index", rwhere, int), _get(ref, "end_index", rwhere, int),
                              _get(ref, "content", rwhere), doc or None))
        items.append(ChromaItem(f"row{i}", row.question, row.corpus_id or None, where, tuple(spans)))
    return items


def load_reviewed_testset(path: Path) -> tuple[list[TestsetItem], bool]:
    """A test set's items with its review applied where a decisions file sits beside it
    (:func:`lab.data.review_file.reviewed_rows`: rejected items gone, edits in), and whether one did;
    without one, :func:`load_testset`. Rows are named ``path: item ID``.

    Raises
    ------
    DataError
        A malformed row or decisions file (the message names the file and the item or entry).
    """
    if not review_path(path).is_file():
        return load_testset(path), False
    # a short CSV row reads None for its missing cells: "" as in load_testset
    items = [testset_item({k: v or "" for k, v in rec.items()}, f"{path}: item {rec.get('id')}")
             for rec in reviewed_rows(path)]
    check_unique_ids(items, str(path))
    return items, True


def testset_item(rec: Any, where: str) -> TestsetItem:
    """One test set row (a CSV row as strings, or a row of :func:`lab.testset.review.reviewed_rows`,
    whose ``references`` may already be a list) as a :class:`TestsetItem`.

    Raises
    ------
    DataError
        A missing column, bad JSON or reference, an unknown ``question_type`` or ``split``, or an
        answerable item without references or answer; the message names ``where`` and the field.
    """
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a test set row must be a mapping of its columns, got {type(rec).__name__}")
    fields = {k: _get(rec, k, where) for k in ("question", "corpus_id", *TESTSET_COLUMNS)}
    refs = rec.get("references")
    if isinstance(refs, str):
        try:
            refs = json.loads(refs)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field 'references' is not valid JSON ({exc.msg})") from None
    if not isinstance(refs, list):
        raise DataError(f"{where}: field 'references' must be a JSON list, got {type(refs).__name__}")
    spans, docs = [], []
    for j, ref in enumerate(refs):
        rwhere = f"{where}: references[{j}]"
        if not isinstance(ref, dict):
            raise DataError(f"{rwhere}: expected an object with content, start_index, end_index")
        spans.append(Span(_get(ref, "start_index", rwhere, int), _get(ref, "end_index", rwhere, int),
                          _get(ref, "content", rwhere)))
        docs.append(str(ref.get("corpus_id") or fields["corpus_id"]))
    for key, allowed in (("question_type", QUESTION_TYPES), ("split", SPLITS)):
        if fields[key] not in allowed:
            raise DataError(f"{where}: field {key!r} is {fields[key]!r}; allowed values: {', '.join(allowed)}")
    if fields["question_type"] != "unanswerable" and (not spans or not fields["answer"].strip()):
        raise DataError(f"{where}: a {fields['question_type']!r} item needs references and an answer "
                        "(only 'unanswerable' items have neither)")
    return TestsetItem(fields["id"], fields["question"], fields["corpus_id"] or None, where, tuple(spans),
                       fields["answer"], fields["question_type"], fields["split"], fields["generator"], tuple(docs))


def load_testset(path: Path, limit: int = 0) -> list[TestsetItem]:
    """A test set CSV (see :class:`TestsetItem`) as written, no review applied; rows named ``path:row N``.

    Raises
    ------
    DataError
        A missing column or a malformed row (:func:`testset_item`), or an id used twice.
    """
    df = _csv(path, ["question", "references", "corpus_id", *TESTSET_COLUMNS])
    items: list[TestsetItem] = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        if limit and len(items) >= limit:
            break
        items.append(testset_item(rec, f"{path}:row {i}"))
    check_unique_ids(items, str(path))
    return items


def check_testset_references(item: TestsetItem, documents: Mapping[str, Mapping[str, str]]) -> None:
    """Raise a :class:`DataError` naming the row when a reference of ``item`` points into a document
    ``documents`` (doc id -> ``{"title", "text"}``) lacks, or its offsets do not hold its content."""
    for j, (r, doc_id) in enumerate(zip(item.references, item.reference_docs, strict=True)):
        text = documents.get(doc_id, {}).get("text")
        if text is None:
            raise DataError(f"{item.source}: references[{j}] points into {doc_id!r}, which the corpus folder "
                            f"lacks ({len(documents)} documents); point corpus_dir at the folder the test set "
                            "was generated from, or regenerate the test set (`dvc repro testset`)")
        if not 0 <= r.start <= r.end <= len(text) or text[r.start:r.end] != r.content:
            raise DataError(f"{item.source}: references[{j}] offsets {r.start}..{r.end} do not match the text of "
                            f"{doc_id!r}; the corpus changed since the test set was generated: regenerate it "
                            "(`dvc repro testset`)")


def check_unique_ids(items: list[TestsetItem], name: str) -> None:
    """Raise a :class:`DataError` naming the first id two items share (review decisions are by id)."""
    seen: dict[str, str] = {}
    for it in items:
        if it.id in seen:
            raise DataError(f"{it.source}: id {it.id!r} is also the id of {seen[it.id]} in {name}; "
                            "every item of a test set needs its own id")
        seen[it.id] = it.source


@QA_LOADERS.register("squad")
def load_squad(path: Path, limit: int = 0) -> list[SquadItem]:
    """``dev-v1.1.qa.jsonl``: id, paragraph_id, title, question, answers (list of strings)."""
    items: list[SquadItem] = []
    for row in iter_jsonl(path):
        where, rec = row.where, row.record
        if limit and len(items) >= limit:
            break
        answers = _get(rec, "answers", where, list)
        if not all(isinstance(a, str) for a in answers):
            raise DataError(f"{where}: field 'answers' must be a list of strings, got {answers!r:.120}")
        items.append(SquadItem(
            str(_get(rec, "id", where, (str, int))), _get(rec, "question", where),
            _get(rec, "paragraph_id", where), where, rec.get("title", ""), tuple(answers),
        ))
    return items


_ANSWER_COL = re.compile(r"^(?P<category>.*?)\s*-\s*Answer$")
_DOC_SUFFIXES = (".pdf", ".txt")


def _cuad_descriptions(csv_path: Path) -> dict[str, str]:
    """Category -> description from ``category_descriptions.csv`` beside the clauses file, if any.

    Optional: it only enriches the question text (CUAD's own question template), so an absent or
    unexpected file gives plain questions instead of an error.
    """
    desc_path = csv_path.parent / "category_descriptions.csv"
    try:
        df = _csv(desc_path, [])
        cat_col, desc_col = df.columns[0], df.columns[1]
        return {
            str(c).removeprefix("Category:").strip(): str(d).removeprefix("Description:").strip()
            for c, d in zip(df[cat_col], df[desc_col], strict=True)
        }
    except (DataError, IndexError, OSError):
        return {}


@QA_LOADERS.register("cuad")
def load_cuad(path: Path, limit: int = 0) -> list[CuadItem]:
    """``master_clauses.csv``: one row per contract, ``<Category>`` excerpt lists and answers.

    ``doc_id`` is ``Filename`` without its ``.pdf`` suffix (the contract's ``.txt`` has the same
    stem). Each ``<Category>`` cell is a Python-list-like string of excerpts, parsed with
    :func:`ast.literal_eval` ("" or "[]" = no clause).
    """
    df = _csv(path, ["Filename"])
    answer_of: dict[str, str] = {}
    for col in df.columns:
        m = _ANSWER_COL.match(col)
        if m:
            answer_of[m["category"]] = col  # tolerates the upstream "...Renewal- Answer" spelling
    categories = [c for c in df.columns if c != "Filename" and c not in set(answer_of.values())]
    details = _cuad_descriptions(path)
    items: list[CuadItem] = []
    for i, row in enumerate(df.to_dict("records"), start=1):
        where = f"{path}:row {i}"
        filename = row["Filename"].strip()
        if not filename:
            raise DataError(f"{where}: field 'Filename' is empty")
        doc_id = filename[: -4] if filename.lower().endswith(_DOC_SUFFIXES) else filename
        for cat in categories:
            if limit and len(items) >= limit:
                return items
            cell = row[cat].strip()
            try:
                excerpts = ast.literal_eval(cell) if cell else []
            except (ValueError, SyntaxError) as exc:
                raise DataError(
                    f"{where}: column {cat!r} is not a list-like string ({exc}): {cell!r:.80}"
                ) from None
            if not isinstance(excerpts, list) or not all(isinstance(e, str) for e in excerpts):
                raise DataError(f"{where}: column {cat!r} must be a list of strings, got {cell!r:.80}")
            question = (f'Highlight the parts (if any) of this contract related to "{cat}" '
                        "that should be reviewed by a lawyer.")
            if details.get(cat):
                question += f" Details: {details[cat]}"
            answer = row[answer_of[cat]] if cat in answer_of else ""
            items.append(CuadItem(f"{doc_id}::{cat}", question, doc_id, where, cat, tuple(excerpts), answer))
    return items


@QA_LOADERS.register("halueval_qa")
def load_halueval_qa(path: Path, limit: int = 0) -> list[HaluEvalQAItem]:
    """``qa_grounded.jsonl``: knowledge, question, right_answer, hallucinated_answer (id = line).

    Empty fields are kept for the quality profile to count; it also reports every record the judge
    stage's strict reader rejects (:func:`lab.data.halueval.scan_judged`).
    """
    items: list[HaluEvalQAItem] = []
    for row in iter_jsonl(path):
        where, rec = row.where, row.record
        if limit and len(items) >= limit:
            break
        items.append(HaluEvalQAItem(
            f"line{row.line}", _get(rec, "question", where), None, where,
            _get(rec, "knowledge", where), _get(rec, "right_answer", where),
            _get(rec, "hallucinated_answer", where),
        ))
    return items


def parse_spans(value: Any) -> tuple[tuple[str, ...] | None, str | None]:
    """HaluEval ``hallucination_spans`` (a list, or a Python-list-like string) -> ``(spans, error)``."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value) if value.strip() else []
        except (ValueError, SyntaxError) as exc:
            return None, f"not a list-like string ({type(exc).__name__}: {exc})"
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        return None, f"expected a list of strings, got {value!r:.80}"
    return tuple(value), None


@QA_LOADERS.register("halueval_general")
def load_halueval_general(path: Path, limit: int = 0) -> list[HaluEvalGeneralItem]:
    """``general_data.jsonl``: ID, user_query, chatgpt_response, hallucination (yes/no), spans.

    The label is read as the judge stage reads it (:data:`lab.data.halueval.YES_NO`: exactly
    ``"yes"`` or ``"no"``); a record with any other label (``"Yes "``, ``"maybe"``) is left out
    here and reported, with every other record the judge stage rejects, by the quality profile.
    Unparseable spans are kept (``spans=None``, ``spans_error`` says why) for the profile to count.
    """
    items: list[HaluEvalGeneralItem] = []
    for row in iter_jsonl(path):
        where, rec = row.where, row.record
        if limit and len(items) >= limit:
            break
        label = _get(rec, "hallucination", where)
        if label not in YES_NO:
            continue
        spans, error = parse_spans(_get(rec, "hallucination_spans", where, (str, list)))
        items.append(HaluEvalGeneralItem(
            str(_get(rec, "ID", where, (str, int))), _get(rec, "user_query", where), None, where,
            _get(rec, "chatgpt_response", where), YES_NO[label] == 1, spans, error,
        ))
    return items
