"""Data-quality profile (lab.data.quality) on hand-checkable fixtures and slices of the real data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import require_data

from lab.config import DataQualityConfig
from lab.data.quality import QualityReport, profile
from lab.errors import DataError


def config(**section: Any) -> DataQualityConfig:
    return DataQualityConfig.model_validate(section)


def row(df: pd.DataFrame, key: str, name: str) -> dict[str, Any]:
    return df.set_index(key).loc[name].to_dict()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture()
def notes(tmp_path: Path) -> Path:
    """Three tiny documents whose counts are checked by hand; b is a whitespace variant of a."""
    d = tmp_path / "notes"
    d.mkdir()
    (d / "a.txt").write_text("hello world", encoding="utf-8")        # 2 tokens, 11 chars
    (d / "b.txt").write_text("hello   world\n", encoding="utf-8")    # 4 tokens, 14 chars
    (d / "c.txt").write_text("The cat sat on the mat.", encoding="utf-8")  # 7 tokens, 23 chars
    return d


@pytest.fixture()
def chroma(tmp_path: Path) -> tuple[Path, Path]:
    """A chroma-format corpus and questions: 5 references, 4 not at their offsets."""
    d = tmp_path / "chroma"
    d.mkdir()
    (d / "sotu.md").write_text("Alpha beta gamma. Delta epsilon.", encoding="utf-8")

    def refs(*spans: tuple[str, int, int]) -> str:
        return json.dumps([{"content": c, "start_index": s, "end_index": e} for c, s, e in spans])

    q = tmp_path / "questions.csv"
    pd.DataFrame({
        "question": ["ok?", "shifted?", "two bad?", "unknown corpus?"],
        "references": [
            refs(("Alpha beta", 0, 10)),                       # exact
            refs(("Delta epsilon", 0, 13)),                    # wrong offsets, content at 18
            refs(("zeta", 0, 4), ("gamma", 100, 105)),         # nowhere; out of range but elsewhere
            refs(("Alpha", 0, 5)),                             # its document does not exist
        ],
        "corpus_id": ["sotu", "sotu", "sotu", "no_such_corpus"],
    }).to_csv(q, index=False)
    return d, q


@pytest.fixture()
def squad(tmp_path: Path) -> dict[str, Any]:
    """Real SQuAD paragraphs (20) + a near-duplicate and an exact copy; their real questions + 2."""
    data = require_data() / "squad_v1.1_dev"
    lines = (data / "dev-v1.1.paragraphs.jsonl").read_text(encoding="utf-8").splitlines()
    paras = [json.loads(x) for x in lines[:20]]
    longest = max(paras, key=lambda p: len(p["text"]))
    words = longest["text"].split()
    words[10], words[len(words) // 2] = "zebra", "quasar"  # a near-duplicate: two words edited
    paras += [{**longest, "paragraph_id": "edited", "text": " ".join(words)},
              {**longest, "paragraph_id": "copy", "text": longest["text"] + "\n"}]
    pf = tmp_path / "paragraphs.jsonl"
    pf.write_text("".join(json.dumps(p) + "\n" for p in paras), encoding="utf-8")

    ids = {p["paragraph_id"] for p in paras}
    qa = [json.loads(x) for x in (data / "dev-v1.1.qa.jsonl").read_text(encoding="utf-8").splitlines()[:400]]
    qa = [q for q in qa if q["paragraph_id"] in ids]
    qa += [
        {"id": "x1", "paragraph_id": "1973_oil_crisis#0", "question": "Made up?",
         "answers": ["purple elephants"]},
        {"id": "x2", "paragraph_id": "1973_oil_crisis#0", "question": "Case?",
         "answers": ["THE 1973 OIL  crisis"]},
    ]
    qf = tmp_path / "qa.jsonl"
    qf.write_text("".join(json.dumps(q) + "\n" for q in qa), encoding="utf-8")
    return {"paragraphs": pf, "qa": qf, "longest": longest["paragraph_id"], "items": len(qa)}


def paragraphs(squad: dict[str, Any]) -> dict[str, str]:
    """Corpus entry of the SQuAD paragraph slice."""
    return {"name": "p", "path": str(squad["paragraphs"]), "format": "jsonl", "id_field": "paragraph_id"}


# --------------------------------------------------------------------------- corpora


def test_hand_checked_counts_and_metrics(notes: Path, chroma: tuple[Path, Path], tmp_path: Path) -> None:
    cdir, questions = chroma
    cfg = config(
        corpora=[{"name": "notes", "path": str(notes), "glob": "*.txt"},
                 {"name": "chroma", "path": str(cdir), "glob": "*.md"}],
        qa_sets=[{"name": "cq", "format": "chroma", "path": str(questions), "corpus": "chroma"}],
    )
    report = profile(cfg, tmp_path)
    m = report.metrics()
    assert m["corpus.notes.documents"] == 3
    assert m["corpus.notes.tokens_total"] == 13 and m["corpus.notes.chars_total"] == 48
    stats = [m[f"corpus.notes.tokens_{s}"] for s in ("min", "median", "max")]
    assert stats == [2, 4, 7]
    assert m["corpus.notes.tokens_mean"] == pytest.approx(13 / 3)
    assert m["corpus.notes.exact_duplicate_docs"] == 1
    assert m["corpus.notes.near_duplicate_pairs"] == 0 and m["corpus.notes.empty_docs"] == 0

    assert m["qa.cq.items"] == 4 and m["qa.cq.references"] == 5
    assert m["qa.cq.reference_not_found"] == 4 and m["qa.cq.reference_not_found_rate"] == pytest.approx(0.8)
    assert m["qa.cq.ref_offset_mismatch"] == 2 and m["qa.cq.ref_offset_out_of_range"] == 1
    assert m["qa.cq.ref_found_elsewhere"] == 2 and m["qa.cq.ref_not_found_anywhere"] == 1
    assert m["qa.cq.missing_doc_items"] == 1

    assert m["total.documents"] == 4
    assert m["total.tokens"] == 13 + report.doc_tokens.query("corpus == 'chroma'")["tokens"].sum()
    # one exact duplicate + 3 offset problems + 1 missing document
    assert m["total.problems"] == 5 == len(report.problems)
    missing = report.problems.query("kind == 'missing_doc'")
    assert missing["record"].tolist() == ["row4"] and "no_such_corpus" in missing["detail"].iloc[0]
    shifted = report.problems.query("record == 'row2'")["detail"].iloc[0]
    assert "content found at [18, 31)" in shifted
    assert report.doc_tokens.columns.tolist() == ["corpus", "doc_id", "tokens"]


def test_exact_and_near_duplicates_on_real_paragraphs(squad: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(corpora=[paragraphs(squad)])
    report = profile(cfg, tmp_path)
    r = row(report.corpora, "corpus", "p")
    assert r["documents"] == 22 and r["exact_duplicate_docs"] == 1
    longest = squad["longest"]
    pairs = report.near_duplicate_pairs
    assert pairs[["doc_a", "doc_b"]].values.tolist() == [[longest, "edited"]]  # nothing unrelated
    assert 0.8 <= pairs["jaccard"].iloc[0] < 1.0
    assert (r["near_duplicate_pairs"], r["near_duplicate_docs"]) == (1, 2)
    dup = report.problems.query("kind == 'exact_duplicate'")
    assert dup["record"].tolist() == ["copy"] and longest in dup["detail"].iloc[0]


def test_report_mode_counts_bad_files_and_encoding(tmp_path: Path) -> None:
    d = tmp_path / "enc"
    d.mkdir()
    (d / "good.txt").write_text("plain text", encoding="utf-8")
    (d / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    (d / "empty.txt").write_bytes(b"")
    (d / "mojibake.txt").write_text("caf\u00c3\u00a9 au lait", encoding="utf-8")
    (d / "control.txt").write_text("ring\x07 the bell", encoding="utf-8")
    (d / "replaced.txt").write_text("lost \ufffd char", encoding="utf-8")
    section = {"corpora": [{"name": "enc", "path": str(d), "glob": "*.txt"}]}
    with pytest.raises(DataError, match=r"empty\.txt"):  # first bad file in name order
        profile(config(**section), tmp_path)
    report = profile(config(**section, on_bad_file="report"), tmp_path)
    r = row(report.corpora, "corpus", "enc")
    assert (r["documents"], r["files_skipped"], r["invalid_utf8_files"], r["empty_docs"]) == (4, 2, 1, 1)
    assert (r["mojibake_docs"], r["control_char_docs"], r["replacement_char_docs"]) == (1, 1, 1)
    assert r["encoding_problems"] == 4
    kinds = dict(zip(report.problems["record"], report.problems["kind"], strict=True))
    assert kinds == {"empty.txt": "empty", "latin1.txt": "invalid_utf8", "control": "control_chars",
                     "mojibake": "mojibake", "replaced": "replacement_char"}


# --------------------------------------------------------------------------- QA sets


def test_squad_answers_missing_counted(squad: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(
        corpora=[paragraphs(squad)],
        qa_sets=[{"name": "sq", "format": "squad", "path": str(squad["qa"]), "corpus": "p"}],
    )
    q = row(profile(cfg, tmp_path).qa_sets, "qa_set", "sq")
    assert q["items"] == squad["items"]
    assert q["reference_not_found"] == 2          # both made-up answers: not exact substrings
    assert q["reference_not_found_normalised"] == 1  # the case/space variant is found after normalising
    assert q["missing_doc_items"] == 0


def test_limits_mark_items_unchecked_not_missing(squad: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(
        corpora=[paragraphs(squad)],
        qa_sets=[{"name": "sq", "format": "squad", "path": str(squad["qa"]), "corpus": "p"}],
        max_docs_per_corpus=1, max_items_per_qa_set=30,
    )
    report = profile(cfg, tmp_path)
    q = row(report.qa_sets, "qa_set", "sq")
    assert q["items"] == 30 and q["missing_doc_items"] == 0 and q["unchecked_items"] > 0
    assert row(report.corpora, "corpus", "p")["truncated"]


def test_halueval_sets(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in [
        {"knowledge": "Paris is the capital of France.", "question": "Capital?", "right_answer": "Paris",
         "hallucinated_answer": "Lyon"},
        {"knowledge": "Both are magazines.", "question": "Same kind?", "right_answer": "yes",
         "hallucinated_answer": ""},
    ]), encoding="utf-8")
    gen = tmp_path / "gen.jsonl"
    gen.write_text("".join(json.dumps(r) + "\n" for r in [
        {"ID": "1", "user_query": "q1", "chatgpt_response": "The sky is green.", "hallucination": "yes",
         "hallucination_spans": ["sky is green"]},
        {"ID": "2", "user_query": "q2", "chatgpt_response": "Fine.", "hallucination": "yes",
         "hallucination_spans": []},
        {"ID": "3", "user_query": "", "chatgpt_response": "Ok.", "hallucination": "no",
         "hallucination_spans": "['broken"},
    ]), encoding="utf-8")
    d = tmp_path / "docs"
    d.mkdir()
    (d / "x.txt").write_text("x", encoding="utf-8")
    cfg = config(corpora=[{"name": "x", "path": str(d)}],
                 qa_sets=[{"name": "hq", "format": "halueval_qa", "path": str(qa)},
                          {"name": "hg", "format": "halueval_general", "path": str(gen)}])
    m = profile(cfg, tmp_path).metrics()
    assert (m["qa.hq.right_answer_in_knowledge"], m["qa.hq.right_answer_in_knowledge_rate"]) == (1, 0.5)
    assert m["qa.hq.empty_field_items"] == 1 and m["qa.hq.reference_not_found"] == 1
    assert (m["qa.hg.label_yes"], m["qa.hg.label_no"], m["qa.hg.spans_unparseable"]) == (2, 1, 1)
    assert m["qa.hg.yes_without_spans"] == 1 and m["qa.hg.empty_questions"] == 1
    assert (m["qa.hg.references"], m["qa.hg.reference_not_found"]) == (1, 0)


def test_records_the_judge_stage_rejects_are_reported_by_file_and_line(tmp_path: Path) -> None:
    """One HaluEval file, one verdict: what lab.data.halueval (the judge stage's reader) rejects is a
    ``judge_rejects`` problem here, naming the file and line, not a record silently accepted."""
    from lab.data.halueval import read_judged

    gen = tmp_path / "gen.jsonl"
    gen.write_text("".join(json.dumps({"ID": str(i), "user_query": "q", "chatgpt_response": "r",
                                       "hallucination": lab, "hallucination_spans": []}) + "\n"
                           for i, lab in enumerate(["no", "Yes ", "no"])), encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: 'hallucination' must be exactly"):
        read_judged(gen)
    d = tmp_path / "docs"
    d.mkdir()
    (d / "x.txt").write_text("x", encoding="utf-8")
    report = profile(config(corpora=[{"name": "x", "path": str(d)}],
                            qa_sets=[{"name": "hg", "format": "halueval_general", "path": str(gen)}]), tmp_path)
    rows = report.problems[report.problems["kind"] == "judge_rejects"]
    assert rows["source"].tolist() == ["gen.jsonl:line 2"]   # relative to the project: the same on every machine
    assert "'Yes '" in rows["detail"].iloc[0]
    assert report.metrics()["qa.hg.items"] == 2


# --------------------------------------------------------------------------- writing


def test_write_produces_every_file(notes: Path, chroma: tuple[Path, Path], tmp_path: Path) -> None:
    cdir, questions = chroma
    cfg = config(corpora=[{"name": "notes", "path": str(notes), "glob": "*.txt"},
                          {"name": "chroma", "path": str(cdir), "glob": "*.md"}],
                 qa_sets=[{"name": "cq", "format": "chroma", "path": str(questions), "corpus": "chroma"}])
    report: QualityReport = profile(cfg, tmp_path)
    out = tmp_path / "out"
    written = report.write(out)
    expected = {"metrics.json", "corpora.csv", "qa_sets.csv", "problems.csv", "problem_counts.csv",
                "near_duplicate_pairs.csv", "plots/doc_tokens.csv", "plots/qa_not_found.csv",
                "plots/corpus_tokens.csv"}
    assert {p.relative_to(out).as_posix() for p in written} == expected
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == expected  # no temp files
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(report.metrics())
    assert pd.read_csv(out / "plots/doc_tokens.csv").columns.tolist() == ["corpus", "doc_id", "tokens"]
    plot = pd.read_csv(out / "plots/qa_not_found.csv")
    assert plot.to_dict("records") == [{"qa_set": "cq", "not_found_rate": 0.8}]
    assert pd.read_csv(out / "plots/corpus_tokens.csv")["corpus"].tolist() == ["notes", "chroma"]
    assert len(pd.read_csv(out / "problems.csv")) == 5


def test_real_chroma_and_cuad_references_all_found(tmp_path: Path) -> None:
    data = require_data()
    questions = pd.read_csv(data / "chroma_chunking/questions_df.csv")
    questions[questions.corpus_id == "state_of_the_union"].to_csv(tmp_path / "q.csv", index=False)
    cfg = config(
        corpora=[{"name": "chroma", "path": str(data / "chroma_chunking/corpora"),
                  "glob": "state_of_the_union.md"},
                 {"name": "cuad", "path": str(data / "cuad_sample/contracts"), "glob": "*.txt"}],
        qa_sets=[{"name": "cq", "format": "chroma", "path": str(tmp_path / "q.csv"), "corpus": "chroma"},
                 {"name": "cu", "format": "cuad", "path": str(data / "cuad_sample/master_clauses.sample.csv"),
                  "corpus": "cuad"}],
        max_docs_per_corpus=3,
    )
    qa = profile(cfg, tmp_path).qa_sets.set_index("qa_set")
    assert qa.loc["cq", "items"] == 76 and qa.loc["cq", "reference_not_found"] == 0
    # only 3 of 10 contracts loaded: items of the others are unchecked, not "missing"
    assert qa.loc["cu", "missing_doc_items"] == 0 and qa.loc["cu", "unchecked_items"] == 7 * 41
    assert qa.loc["cu", "reference_not_found"] == 0 and qa.loc["cu", "multi_part_excerpts"] > 0
