"""QA-set loaders (lab.data.qa): each format on real slices, malformed records named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import require_data

from lab.data.qa import (
    QA_LOADERS,
    ChromaItem,
    CuadItem,
    HaluEvalGeneralItem,
    HaluEvalQAItem,
    SquadItem,
)
from lab.errors import DataError, RegistryError


def head(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("\n".join(src.read_text(encoding="utf-8").splitlines()[:n]) + "\n", encoding="utf-8")
    return dst


def test_registry_has_every_config_format() -> None:
    assert QA_LOADERS.names() == ["chroma", "cuad", "halueval_general", "halueval_qa", "squad"]
    with pytest.raises(RegistryError, match="Available: chroma"):
        QA_LOADERS.get("nq")


def test_real_slices_of_every_format(tmp_path: Path) -> None:
    data = require_data()
    chroma = pd.read_csv(data / "chroma_chunking/questions_df.csv").head(5)
    chroma.to_csv(tmp_path / "q.csv", index=False)
    items = QA_LOADERS.get("chroma")(tmp_path / "q.csv", 0)
    assert len(items) == 5 and isinstance(items[0], ChromaItem)
    assert items[0].doc_id == "state_of_the_union" and items[0].references[0].start == 27346

    sliced = head(data / "squad_v1.1_dev/dev-v1.1.qa.jsonl", tmp_path / "s.jsonl", 10)
    squad = QA_LOADERS.get("squad")(sliced, 0)
    assert isinstance(squad[0], SquadItem) and squad[0].answers == ("1973", "October", "October 1973")
    assert squad[0].doc_id == "1973_oil_crisis#0"

    cuad = QA_LOADERS.get("cuad")(data / "cuad_sample/master_clauses.sample.csv", 50)
    assert len(cuad) == 50 and isinstance(cuad[0], CuadItem)
    assert cuad[0].doc_id == "ASPIRITYHOLDINGSLLC_05_07_2012-EX-10.6-OUTSOURCING AGREEMENT"
    assert cuad[0].category == "Document Name" and cuad[0].excerpts == ("OUTSOURCING AGREEMENT",)
    assert "Details: The name of the contract" in cuad[0].question
    assert CuadItem.pieces("a <omitted> b<omitted>") == ["a", "b"]

    hqa = QA_LOADERS.get("halueval_qa")(data / "halueval/qa_grounded.dev250.jsonl", 3)
    assert isinstance(hqa[0], HaluEvalQAItem) and hqa[0].right_answer == "Arthur's Magazine"
    gen = QA_LOADERS.get("halueval_general")(data / "halueval/general_data.dev1000.jsonl", 5)
    assert isinstance(gen[1], HaluEvalGeneralItem) and gen[1].hallucination and len(gen[1].spans or ()) == 1


def test_chroma_malformed_references_name_row_and_field(tmp_path: Path) -> None:
    f = tmp_path / "q.csv"
    pd.DataFrame({"question": ["q1", "q2"], "corpus_id": ["a", "a"],
                  "references": [json.dumps([{"content": "x", "start_index": 0, "end_index": 1}]), "[{bad"]}
                 ).to_csv(f, index=False)
    with pytest.raises(DataError, match=r"q\.csv:row 2: field 'references' is not valid JSON"):
        QA_LOADERS.get("chroma")(f, 0)
    pd.DataFrame({"question": ["q1"], "corpus_id": ["a"],
                  "references": [json.dumps([{"content": "x", "start_index": "0", "end_index": 1}])]}
                 ).to_csv(f, index=False)
    with pytest.raises(DataError, match=r"row 1: references\[0\]: field 'start_index' must be int"):
        QA_LOADERS.get("chroma")(f, 0)
    pd.DataFrame({"question": ["q1"], "references": ["[]"]}).to_csv(f, index=False)
    with pytest.raises(DataError, match=r"column\(s\) \['corpus_id'\] missing"):
        QA_LOADERS.get("chroma")(f, 0)


def test_jsonl_formats_name_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"id": "1", "paragraph_id": "p", "question": "q", "answers": ["a"]}) + "\n"
                 + json.dumps({"id": "2", "paragraph_id": "p", "answers": ["a"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"s\.jsonl:line 2: field 'question' is missing"):
        QA_LOADERS.get("squad")(f, 0)
    g = tmp_path / "g.jsonl"
    g.write_text(json.dumps({"ID": "1", "user_query": "q", "chatgpt_response": "r", "hallucination": "yes"})
                 + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"g\.jsonl:line 1: field 'hallucination_spans' is missing"):
        QA_LOADERS.get("halueval_general")(g, 0)


def test_halueval_labels_are_read_as_strictly_as_the_judge_reads_them(tmp_path: Path) -> None:
    """``"Yes "`` and ``"maybe"`` are not labels: left out here (the quality profile reports them),
    exactly as lab.data.halueval, the judge stage's reader, rejects them."""
    from lab.data.halueval import read_judged

    g = tmp_path / "g.jsonl"
    g.write_text("".join(json.dumps({"ID": str(i), "user_query": "q", "chatgpt_response": "r", "hallucination": lab,
                                     "hallucination_spans": []}) + "\n"
                         for i, lab in enumerate(["yes", "Yes ", "maybe", "no"])), encoding="utf-8")
    items = QA_LOADERS.get("halueval_general")(g, 0)
    assert [(i.id, i.hallucination) for i in items] == [("0", True), ("3", False)]
    judged = read_judged(g, skip_bad=True)
    assert [it.id for it in judged.items] == [i.id for i in items]
    assert [line for line, _ in judged.rejected] == [2, 3]


def test_qa_file_not_utf8_names_file_line_and_offset(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(b'{"id": "1", "paragraph_id": "p", "question": "caf\xe9?", "answers": []}\n')
    with pytest.raises(DataError, match=r"s\.jsonl:line 1: not valid UTF-8 at byte 49 of the line .*iconv"):
        QA_LOADERS.get("squad")(f, 0)


def test_halueval_spans_string_parsed_or_kept_unparseable(tmp_path: Path) -> None:
    g = tmp_path / "g.jsonl"
    rows = [{"ID": "1", "user_query": "q", "chatgpt_response": "r x", "hallucination": "yes",
             "hallucination_spans": "['x']"},
            {"ID": "2", "user_query": "q", "chatgpt_response": "r", "hallucination": "no",
             "hallucination_spans": "['unclosed"}]
    g.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    items = QA_LOADERS.get("halueval_general")(g, 0)
    assert items[0].spans == ("x",) and items[0].spans_error is None
    assert items[1].spans is None and "list-like" in (items[1].spans_error or "")


def test_cuad_bad_cell_names_row_and_column(tmp_path: Path) -> None:
    f = tmp_path / "clauses.csv"
    clauses = {"Filename": ["A.pdf"], "Parties": ["['x', 'y'"], "Parties-Answer": ["x; y"]}
    pd.DataFrame(clauses).to_csv(f, index=False)
    with pytest.raises(DataError, match=r"clauses\.csv:row 1: column 'Parties' is not a list-like string"):
        QA_LOADERS.get("cuad")(f, 0)
    pd.DataFrame({**clauses, "Parties": ["['x', 'y']"]}).to_csv(f, index=False)
    (item,) = QA_LOADERS.get("cuad")(f, 0)
    assert (item.doc_id, item.excerpts, item.answer) == ("A", ("x", "y"), "x; y")
