"""The team's own questions: located in the corpus (exact, normalised, offsets, not found), malformed
files named by file, line and column, the CLI; and `lab testset generate` against an endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import DataError
from lab.testset import import_questions, read_meta, read_rows

DOCS = {
    "pdf/plan.pdf": "The Board approved the new authorization process in 2024.\nAgencies reuse a package "
                    "instead of starting over. Keys rotate every ninety days.",
    "notes": "Significant changes must be reported to the authorizing agency before deployment.",
}


def _corpus(folder: Path) -> Path:
    for doc_id, text in DOCS.items():
        path = folder / f"{doc_id}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_answers_are_located_exactly_normalised_by_offsets_or_not_at_all(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    q = _write(tmp_path / "q.csv",
               "question,answer,source,start_index,end_index\n"
               "When was the process approved?,2024,plan.pdf,,\n"                       # file name of the source
               "What do agencies reuse?,\"A  PACKAGE\",pdf/plan.pdf.txt,,\n"             # case and spaces differ
               "Reported to whom?,the authorizing agency,,,\n"                     # no source: searched
               "How often do keys rotate?,every ninety days,pdf/plan.pdf,121,138\n"    # offsets
               "Who pays?,the taxpayer,notes,,\n"                                      # not in the document
               "Is there a fee?,,,,\n")                                                # no answer
    result = import_questions(q, corpus)
    located = result.meta["located"]
    assert located == {"offsets": 1, "exact": 2, "normalised": 1, "not_found": 1, "no_answer": 1, "ambiguous": 0}
    rows = result.rows
    assert all(r["question_type"] == "human" and r["generator"] == "human" for r in rows)
    for r in rows:
        for ref in json.loads(r["references"]):
            assert DOCS[ref["corpus_id"]][ref["start_index"]:ref["end_index"]] == ref["content"]
    assert json.loads(rows[1]["references"])[0]["content"] == "a package"
    assert rows[2]["corpus_id"] == "notes" and rows[0]["corpus_id"] == "pdf/plan.pdf"
    assert json.loads(rows[3]["references"])[0]["content"] == "every ninety days"
    assert rows[4]["references"] == "[]" and rows[4]["corpus_id"] == "notes"    # document-level relevance
    assert result.meta["not_found"] == [{"line": 6, "question": "Who pays?", "answer": "the taxpayer", "source": "notes"}]
    out = result.write(tmp_path / "human.csv")
    assert len(read_rows(out)) == 6 and read_meta(out)["located"]["not_found"] == 1


def test_jsonl_questions(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    q = _write(tmp_path / "q.jsonl", json.dumps({"question": "Year?", "answer": 2024, "source": "pdf/plan.pdf"}) + "\n\n"
               + json.dumps({"question": "Reported to whom?", "answer": "the authorizing agency"}) + "\n")
    result = import_questions(q, corpus)
    assert result.meta["located"]["exact"] == 2 and [r["answer"] for r in result.rows] == ["2024", "the authorizing agency"]


def test_document_level_rows_are_counted_by_the_readers(tmp_path):
    from lab.chunking import make_chunker
    from lab.data.benchmarks import load_chroma_benchmark
    from lab.retrieval.sets import chroma_excerpts

    corpus = _corpus(tmp_path / "docs")
    q = _write(tmp_path / "q.csv", "question,answer,source\nWhen?,2024,plan.pdf\nWho pays?,the taxpayer,notes\n"
                                   "Any fee?,a fee nobody wrote down,\n")
    out = import_questions(q, corpus).write(tmp_path / "human.csv")
    bench = load_chroma_benchmark(corpus, out)
    assert len(bench.questions) == 1 and bench.notes == {"document_level": 1, "unanswerable": 1}
    chunker = make_chunker("recursive", size=20, overlap=0)
    ds = chroma_excerpts(corpus, out, chunker)
    assert len(ds.queries) == 1 and ds.counts["questions_document_level"] == 1
    ds = chroma_excerpts(corpus, out, chunker, document_level=True)
    assert len(ds.queries) == 2 and all(k.startswith("notes#c") for k in ds.qrels["row2"])


@pytest.mark.parametrize(("name", "text", "message"), [
    ("q.csv", "question,reply\nWhy?,because\n",
     r"q.csv:line 1: column\(s\) 'answer' missing \(columns present: 'question', 'reply'\)"),
    ("q.csv", "question,answer\nWhy?,because\nHow, then?,somehow\n", r"q.csv:line 3: 3 cells for 2 columns"),
    ("q.csv", "question,answer,source\nWhy?,because,nothing.pdf\n",
     r"q.csv:line 2: column 'source' 'nothing.pdf' names no document"),
    ("q.csv", "question,answer,source,start_index,end_index\nWhy?,x,notes,five,9\n",
     r"q.csv:line 2: column 'start_index' must be a non-negative integer"),
    ("q.csv", "question,answer,source,start_index,end_index\nWhy?,x,notes,5,900\n",
     r"q.csv:line 2: offsets 5..900 are not a span of 'notes'"),
    ("q.csv", "question,answer\n,because\n", r"q.csv:line 2: column 'question' is empty"),
    ("q.csv", "question,answer\n\"Why?,because\n", r"q.csv:line \d+: (not a readable CSV row|1 cells for 2 columns)"),
    ("q.jsonl", '{"question": "Why?", "answer": "x"}\n{"question": "Why?", "answer": \n',
     r"q.jsonl:line 2: not valid JSON"),
    ("q.jsonl", '{"question": "Why?"}\n', r"q.jsonl:line 1: field\(s\) 'answer' missing \(fields present: 'question'\)"),
    ("q.jsonl", '{"question": ["Why?"], "answer": "x"}\n', r"q.jsonl:line 1: column 'question' must be text"),
    ("q.csv", "question,answer\n", r"no questions"),
])
def test_malformed_files_name_the_file_line_and_column(tmp_path, name, text, message):
    corpus = _corpus(tmp_path / "docs")
    with pytest.raises(DataError, match=message):
        import_questions(_write(tmp_path / name, text), corpus)


def test_cli_import_writes_the_file_and_reports_what_was_not_found(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    q = _write(tmp_path / "q.csv", "question,answer,source\nWhen?,2024,plan.pdf\nWho pays?,the taxpayer,notes\n")
    res = CliRunner().invoke(app, ["testset", "import", str(q), "--corpus", str(corpus), "--out", str(tmp_path / "h.csv")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["located"]["exact"] == 1 and report["not_found"] == ["line 3: Who pays?"]
    res = CliRunner().invoke(app, ["testset", "import", str(tmp_path / "missing.csv"), "--corpus", str(corpus),
                                   "--out", str(tmp_path / "h.csv")])
    assert res.exit_code == 2 and "missing.csv: file not found" in res.output


def test_cli_generate_against_an_openai_compatible_endpoint(tmp_path):
    """The fake server answers random words: nothing parses, and that is counted, not hidden."""
    from fake_openai_server import FakeOpenAIServer

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Agencies must obtain and maintain a FedRAMP authorization for cloud services within "
                                "the scope of FedRAMP. This guidance helps agencies decide whether they must obtain one "
                                "for their intended use of a cloud service.\n", encoding="utf-8")
    with FakeOpenAIServer() as srv:
        res = CliRunner().invoke(app, ["testset", "generate", str(docs), "--n", "2", "--types", "single",
                                       "--out", str(tmp_path / "t.csv"), "--cache-dir", str(tmp_path / "cache"),
                                       "--backend", f"{srv.base_url}#fake-model"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["kept"] == 0 and report["filtered"]["unparseable"] >= 1 and report["shortfall"]["single"]
    meta = read_meta(tmp_path / "t.csv")
    assert meta["generator"] == "openai:" + f"{srv.base_url}#fake-model" and meta["generator_identity"]["backend"] == "openai"
    assert read_rows(tmp_path / "t.csv") == []
