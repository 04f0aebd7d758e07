"""Test-set agreement: the ranking statistics (lab.metrics.ranking) on tiny score matrices, the
question-set reader's errors and counts, the SQuAD export, and benchmarks/testset_agreement.py end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, load_script

from lab.data.beir import sample_query_ids
from lab.data.question_sets import read_question_set, write_chroma_questions
from lab.data.squad import squad_as_chroma
from lab.errors import DataError
from lab.metrics.ranking import (
    adjust_p_values,
    kendall_tau,
    pairwise_agreement,
    ranking_agreement,
    significant_pairs,
    tau_bootstrap,
)

KEYS = ("kendall_tau", "tau_ci", "pairwise_agreement", "pairwise_agreement_significant", "n_configs",
        "n_human", "n_synthetic", "generator")


def _load_script() -> ModuleType:
    return load_script("benchmarks/testset_agreement.py")


def _scores(n: int, means: list[float], seed: int) -> np.ndarray:
    """``n`` questions x len(means) configurations of 0/1 scores with those success rates."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, len(means))) < np.asarray(means)).astype(float)


SPREAD = [0.1, 0.3, 0.5, 0.7, 0.9]


# --------------------------------------------------------------------------- statistics


def test_identical_sets_agree_fully():
    h = _scores(80, SPREAD, 0)
    res = ranking_agreement(h, h.copy(), n_resamples=200, n_permutations=2000)
    assert res["kendall_tau"] == pytest.approx(1.0)
    assert res["pairwise_agreement"] == 1.0
    assert res["n_significant_pairs"] > 0
    assert res["pairwise_agreement_significant"] == 1.0
    assert res["n_configs"] == 5 and res["n_pairs"] == 10


def test_reversed_ranking_gives_minus_one():
    h = _scores(80, SPREAD, 0)
    s = _scores(60, SPREAD[::-1], 1)
    res = ranking_agreement(h, s, n_resamples=200, n_permutations=2000)
    assert res["kendall_tau"] == pytest.approx(-1.0)
    assert res["pairwise_agreement"] == 0.0
    assert res["pairwise_agreement_significant"] == 0.0
    assert res["tau_ci"][1] < 0


def test_kendall_tau_is_scipys_tau_b_and_undefined_for_constant():
    from scipy.stats import kendalltau

    a, b = [0.1, 0.4, 0.4, 0.9, 0.2], [0.3, 0.2, 0.5, 0.5, 0.1]
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic)
    assert kendall_tau([0.5] * 4, [0.1, 0.2, 0.3, 0.4]) is None


def test_pairwise_agreement_counts_ties_and_masks():
    # pairs (0,1) (0,2) (1,2): signs a: -, -, 0; b: -, +, 0
    assert pairwise_agreement([0.1, 0.5, 0.5], [0.1, 0.4, 0.0]) == pytest.approx(1 / 3)
    assert pairwise_agreement([0.1, 0.5, 0.5], [0.1, 0.4, 0.4]) == 1.0
    assert pairwise_agreement([0.1, 0.5, 0.5], [0.1, 0.4, 0.0], mask=[True, False, False]) == 1.0
    assert pairwise_agreement([0.1, 0.5, 0.5], [0.1, 0.4, 0.0], mask=[False] * 3) is None


def test_bootstrap_ci_holds_point_and_is_deterministic():
    h = _scores(120, SPREAD, 2)
    s = _scores(100, [0.15, 0.25, 0.6, 0.65, 0.85], 3)
    point = kendall_tau(h.mean(0), s.mean(0))
    one = tau_bootstrap(h, s, n_resamples=500, seed=7)
    two = tau_bootstrap(h, s, n_resamples=500, seed=7)
    assert one == two
    lo, hi = one["tau_ci"]
    assert lo <= point <= hi
    assert -1.0 <= lo <= hi <= 1.0
    assert one["n_undefined"] == 0
    bc_lo, bc_hi = one["tau_ci_bc"]
    assert -1.0 <= bc_lo <= bc_hi <= 1.0 and bc_hi >= hi  # the correction moves a below-point CI up
    assert one["tau_median"] <= point


def test_bootstrap_counts_undefined_resamples():
    h = np.zeros((10, 3))
    h[0] = [1, 0, 0]  # a resample without question 0 has all means equal: tau undefined
    res = tau_bootstrap(h, _scores(30, [0.2, 0.5, 0.8], 0), n_resamples=300, seed=0)
    assert 0 < res["n_undefined"] < 300


def test_significant_pairs_finds_only_real_differences():
    rng = np.random.default_rng(0)
    base = (rng.random(200) < 0.5).astype(float)
    # config 1 = config 0 (no difference); config 2 = far better
    x = np.stack([base, base, np.minimum(base + (rng.random(200) < 0.8), 1.0)], axis=1)
    sig = significant_pairs(x, n_resamples=5000)
    assert sig["p_value"][0] == 1.0                     # pair (0, 1): identical columns
    assert sig["significant"].tolist() == [False, True, True]
    assert significant_pairs(x, n_resamples=5000)["p_value"].tolist() == sig["p_value"].tolist()


def test_adjust_p_values_reference():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> monotone max
    assert adjust_p_values(p, "holm").tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values(p, "bonferroni").tolist() == pytest.approx([0.04, 0.16, 0.12, 0.02])
    from scipy.stats import false_discovery_control

    assert adjust_p_values(p, "bh").tolist() == pytest.approx(false_discovery_control(p).tolist())
    assert adjust_p_values(p, "none").tolist() == p.tolist()
    with pytest.raises(ValueError, match="holm"):
        adjust_p_values(p, "sidak")


def test_matrices_must_match():
    with pytest.raises(ValueError, match="same"):
        ranking_agreement(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 configurations"):
        tau_bootstrap(np.zeros((3, 1)), np.zeros((3, 1)))


# --------------------------------------------------------------------------- question files

DOCS = {"a": "The quick brown fox jumps over the lazy dog.", "sub/b": "Lorem ipsum dolor sit amet."}


def _ref(doc: str, start: int, end: int, **extra) -> dict:
    return {"content": DOCS[doc][start:end], "start_index": start, "end_index": end, **extra}


def _csv(path: Path, rows: list[dict]) -> Path:
    for r in rows:
        if not isinstance(r["references"], str):
            r["references"] = json.dumps(r["references"])
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_reader_skips_and_counts_unanswerable_and_other_documents(tmp_path):
    path = _csv(tmp_path / "q.csv", [
        {"question": "Which fox?", "references": [_ref("a", 4, 19)], "corpus_id": "a", "question_type": "single",
         "generator": "fake:1"},
        {"question": "Not here?", "references": "[]", "corpus_id": "", "question_type": "unanswerable",
         "generator": "fake:1"},
        {"question": "Blank?", "references": "", "corpus_id": "a", "question_type": "unanswerable",
         "generator": "fake:1"},
        {"question": "Both?", "references": [_ref("sub/b", 0, 5), _ref("a", 40, 44, corpus_id="a")],
         "corpus_id": "sub/b", "question_type": "multi", "generator": "fake:1"},
    ])
    qs = read_question_set(path, DOCS)
    assert [q.id for q in qs.items] == ["row1", "row4"]
    assert qs.counts == {"rows": 4, "unanswerable": 2, "references_other_document": 1, "kept": 2}
    assert qs.items[1].references[0].content == "Lorem"
    assert qs.generators == ["fake:1"] and qs.types == {"single": 1, "unanswerable": 2, "multi": 1}
    again = read_question_set(write_chroma_questions(qs.items, tmp_path / "clean.csv"), DOCS)
    assert [q.references for q in again.items] == [q.references for q in qs.items]


@pytest.mark.parametrize("row, message", [
    ({"question": "Q?", "references": [{"content": "quick", "start_index": 5, "end_index": 10}], "corpus_id": "a"},
     r"q\.csv:row 2: references\[0\]: offsets 5\.\.10 do not match the text of 'a' \(the content occurs at 4\.\.9\)"),
    ({"question": "Q?", "references": [_ref("a", 4, 9)], "corpus_id": "c"}, r"q\.csv:row 2: corpus_id 'c' is not"),
    ({"question": "Q?", "references": "[{oops", "corpus_id": "a"}, r"q\.csv:row 2: field 'references' is not valid JSON"),
    ({"question": "Q?", "references": [{"content": "quick", "start_index": "4", "end_index": 9}], "corpus_id": "a"},
     r"q\.csv:row 2: references\[0\]: field 'start_index' must be int"),
    ({"question": " ", "references": [_ref("a", 4, 9)], "corpus_id": "a"}, r"q\.csv:row 2: field 'question' is empty"),
    ({"question": "Q?", "references": [_ref("a", 4, 9, corpus_id="zz")], "corpus_id": "a"},
     r"q\.csv:row 2: references\[0\]: corpus_id 'zz' is not"),
])
def test_bad_rows_name_file_and_row(tmp_path, row, message):
    good = {"question": "Fine?", "references": [_ref("a", 4, 9)], "corpus_id": "a"}
    path = _csv(tmp_path / "q.csv", [good, row])
    with pytest.raises(DataError, match=message):
        read_question_set(path, DOCS)


def test_missing_column_and_no_answerable_question(tmp_path):
    pd.DataFrame([{"question": "Q?", "refs": "[]"}]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv: column\(s\) \['references', 'corpus_id'\] missing"):
        read_question_set(tmp_path / "bad.csv", DOCS)
    path = _csv(tmp_path / "none.csv", [{"question": "Q?", "references": "[]", "corpus_id": ""}])
    with pytest.raises(DataError, match=r"none\.csv: no answerable question"):
        read_question_set(path, DOCS)
    (tmp_path / "q.tsv").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"q\.tsv: cannot tell the question format"):
        read_question_set(tmp_path / "q.tsv", DOCS)
    with pytest.raises(DataError, match=r"absent\.csv: question file not found"):
        read_question_set(tmp_path / "absent.csv", DOCS)


def test_squad_style_lines(tmp_path):
    lines = [{"question": "Who jumps?", "answers": ["fox"], "title": "a"},
             {"question": "What sits?", "answers": [{"text": "dolor", "answer_start": 12}], "corpus_id": "sub/b"},
             {"question": "Nothing?", "answers": [], "title": "a"},
             {"question": "Elsewhere?", "answers": ["x"], "title": "other_article"},
             {"question": "Missing?", "answers": ["cat"], "title": "a"}]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    qs = read_question_set(path, DOCS)
    assert [(q.id, q.doc_id, q.references[0].start) for q in qs.items] == [("line1", "a", 16), ("line2", "sub/b", 12)]
    assert qs.counts == {"rows": 5, "unanswerable": 1, "answer_not_located": 1, "not_in_corpus": 1, "kept": 2}
    path.write_text(json.dumps({"question": "Q?", "answers": ["fox"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qa\.jsonl:line 1: the document is named by 'corpus_id' or 'title'"):
        read_question_set(path, DOCS)


# --------------------------------------------------------------------------- SQuAD export

SQUAD = DATA / "squad_v1.1_dev"
TITLES = ["Super_Bowl_50", "Normans"]


def test_squad_as_chroma_offsets_and_sample(tmp_path):
    from lab.data.squad import squad_questions
    from lab.retrieval.sets import squad_corpus

    paragraphs, qa = SQUAD / "dev-v1.1.paragraphs.jsonl", SQUAD / "dev-v1.1.qa.jsonl"
    export = squad_as_chroma(paragraphs, qa, TITLES, max_queries=50, seed=3)
    assert set(export.documents) == set(TITLES) and export.counts["questions_sampled"] == 50
    for row in export.rows:
        (ref,) = json.loads(row["references"])
        assert export.documents[row["corpus_id"]][ref["start_index"]:ref["end_index"]] == ref["content"]
    _, questions = squad_questions(paragraphs, qa, TITLES)
    assert {r["id"] for r in export.rows} == sample_query_ids([q.id for q in questions], 50, 3)
    # the article is the one the chunk-level sets chunk: no chunker = paragraphs; with one, the same text
    paras = {p.id: {"title": p.title, "text": p.text} for p in squad_questions(paragraphs, qa, TITLES)[0].values()}
    nobreak = "\n\n".join(p["text"] for p in paras.values() if p["title"] == "Normans")
    assert export.documents["Normans"] == nobreak
    assert squad_corpus(paras, None)  # the shared reader works on the same paragraphs
    corpus, csv = export.write(tmp_path / "out")
    qs = read_question_set(csv, {p.stem: p.read_text(encoding="utf-8") for p in corpus.glob("*.txt")})
    assert len(qs.items) == 50 and qs.generators == ["human"]


# --------------------------------------------------------------------------- the benchmark, end to end

EXPERIMENT = """\
version: 1
name: tiny
study: retrieval
search:
  mode: grid
  space:
    chunker: [recursive, token]
    size: [32, 64]
    retriever: [bm25, dense]
fixed:
  overlap: 0
  embedder: hashed-256
  ks: [1, 5]
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Two SQuAD articles as a corpus + 60 human questions, and 40 other questions as 'synthetic'."""
    root = tmp_path_factory.mktemp("agreement")
    export = squad_as_chroma(SQUAD / "dev-v1.1.paragraphs.jsonl", SQUAD / "dev-v1.1.qa.jsonl", TITLES)
    corpus, _ = export.write(root / "squad")
    human = pd.DataFrame(export.rows[:60])
    synthetic = pd.DataFrame(export.rows[60:100]).assign(generator="fake:test")
    synthetic.loc[len(synthetic)] = {"question": "Unanswerable?", "references": "[]", "corpus_id": "",
                                     "id": "u", "answer": "", "question_type": "unanswerable",
                                     "generator": "fake:test", "split": "heldout"}
    human.to_csv(root / "human.csv", index=False)
    synthetic.to_csv(root / "synthetic.csv", index=False)
    (root / "exp.yaml").write_text(EXPERIMENT, encoding="utf-8")
    return {"root": root, "corpus": corpus, "human": root / "human.csv", "synthetic": root / "synthetic.csv",
            "experiment": root / "exp.yaml"}


def _args(tiny: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["--corpus", str(tiny["corpus"]), "--human", str(tiny["human"]), "--experiment", str(tiny["experiment"]),
            "--n-resamples", "100", "--n-permutations", "1000", "--out", str(out), *extra]


def test_benchmark_writes_the_keys(tiny, tmp_path):
    script = _load_script()
    out = tmp_path / "agreement.json"
    assert script.main(_args(tiny, out, "--synthetic", str(tiny["synthetic"]))) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    assert all(k in res for k in KEYS)
    assert res["n_configs"] == 8 and res["n_human"] == 60 and res["n_synthetic"] == 40
    assert res["generator"] == "fake:test" and res["counts"]["synthetic"]["unanswerable"] == 1
    assert -1 <= res["kendall_tau"] <= 1 and res["tau_ci"][0] <= res["tau_ci"][1]
    assert {c["label"] for c in res["configs"]} >= {"recursive/32/bm25", "token/64/dense"}
    assert res["cores_shared"] is True and res["metric"] == "recall@5"
    # the same human file as both sets: full agreement
    out2 = tmp_path / "same.json"
    assert script.main(_args(tiny, out2, "--synthetic", str(tiny["human"]), "--metric", "hit_rate@1")) == 0
    same = json.loads(out2.read_text(encoding="utf-8"))
    assert same["kendall_tau"] == pytest.approx(1.0) and same["pairwise_agreement"] == 1.0


def test_benchmark_halves_and_bad_input(tiny, tmp_path):
    script = _load_script()
    out = tmp_path / "halves.json"
    assert script.main(_args(tiny, out, "--halves", "--halves-repeats", "3")) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["n_human"] == 30 and res["n_synthetic"] == 30 and len(res["halves_repeats"]["kendall_tau"]) == 3
    bad = pd.read_csv(tiny["human"]).head(3)
    bad.loc[2, "references"] = bad.loc[2, "references"].replace('"start_index": ', '"start_index": 1')
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv:row 3: references\[0\]: offsets"):
        script.main(_args(tiny, out, "--synthetic", str(tmp_path / "bad.csv")))


def test_benchmark_without_generator_says_pass_synthetic(tiny, tmp_path, monkeypatch):
    import sys

    script = _load_script()
    monkeypatch.setitem(sys.modules, "lab.testset.generate", None)  # as if the module were absent
    with pytest.raises(SystemExit, match="pass --synthetic FILE"):
        script.main(_args(tiny, tmp_path / "x.json"))


def test_bias_corrected_interval_is_percentile_when_unbiased():
    from lab.metrics.ranking import _bc_interval

    draws = np.linspace(-1.0, 1.0, 2001)  # half below the point 0, half above
    assert _bc_interval(draws, 0.0, 0.025, 0.975) == pytest.approx(np.quantile(draws, [0.025, 0.975]).tolist())
    below = draws - 0.3  # the resamples sit below the point: the interval moves up
    lo, hi = _bc_interval(below, 0.0, 0.025, 0.975)
    assert lo > np.quantile(below, 0.025) and hi > np.quantile(below, 0.975)
    assert _bc_interval(draws, None, 0.025, 0.975) is None
