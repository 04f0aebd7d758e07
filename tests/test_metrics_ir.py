"""lab.metrics.ir against the reference pytrec_eval (trec_eval 9) to 1e-9, on random and real runs,
and hand-computed cases.

pytrec_eval is a dev dependency: ``pip install pytrec_eval-terrier==0.5.11``. Without it only the
comparisons with it (tests taking the ``trec`` fixture) are skipped; the hand-computed ones run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.errors import ConfigError, RegistryError
from lab.metrics.ir import IR_METRICS, aggregate, parse_metric, per_query

FAMILIES = ["hit_rate", "recall", "precision", "mrr", "ndcg", "map"]
CUTOFFS = [1, 3, 5, 10, 100, 1000]  # 1000: past every ranking
#: Our family -> pytrec_eval's result key at cutoff k (mrr is recip_rank of the run cut at k).
TREC_KEY = {"hit_rate": "success_{k}", "recall": "recall_{k}", "precision": "P_{k}",
            "ndcg": "ndcg_cut_{k}", "map": "map_cut_{k}"}


@pytest.fixture(scope="module")
def trec() -> Any:
    """The reference implementation, pytrec_eval; a test asking for it is skipped without it."""
    return pytest.importorskip(
        "pytrec_eval", reason="reference implementation missing: pip install pytrec_eval-terrier==0.5.11")


def trec_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's ranking, as found empirically (test_tie_rule_is_pytrec_evals)."""
    return [d for d, _ in sorted(docs.items(), key=lambda x: (x[1], x[0]), reverse=True)]


def reference(pytrec_eval: Any, qrels, run, cutoffs) -> dict[str, dict[str, float]]:
    """pytrec_eval's values, keyed by query then by our metric name; absent queries left out."""
    ks = ",".join(map(str, cutoffs))
    ev = pytrec_eval.RelevanceEvaluator(qrels, {f"success.{ks}", f"recall.{ks}", f"P.{ks}",
                                                f"ndcg_cut.{ks}", f"map_cut.{ks}"})
    res = ev.evaluate(run)
    out = {q: {f"{fam}@{k}": vals[key.format(k=k)] for fam, key in TREC_KEY.items() for k in cutoffs}
           for q, vals in res.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    for k in cutoffs:
        cut = {q: {d: docs[d] for d in trec_order(docs)[:k]} for q, docs in run.items()}
        for q, vals in rr.evaluate(cut).items():
            out[q][f"mrr@{k}"] = vals["recip_rank"]
    return out


def assert_matches_reference(trec: Any, qrels, run, cutoffs=CUTOFFS) -> None:
    names = [f"{fam}@{k}" for fam in FAMILIES for k in cutoffs]
    df = per_query(qrels, run, names)
    ref = reference(trec, qrels, run, cutoffs)
    judged = [q for q in qrels if qrels[q]]  # a query with no judgement does not exist for trec_eval
    assert list(df.index) == judged
    assert list(df.columns) == names
    # pytrec_eval leaves out queries absent from the run; we keep them at 0 (trec_eval -c)
    assert set(ref) <= set(judged)
    assert set(judged) - set(ref) <= set(qrels) - set(run)
    for q in judged:
        want = ref.get(q)
        for name in names:
            expected = 0.0 if want is None else want[name]
            assert df.at[q, name] == pytest.approx(expected, abs=1e-9, rel=0), (q, name)
    if not judged:
        return
    agg = aggregate(df)
    for name in names:
        assert agg[name] == pytest.approx(float(np.mean([ref.get(q, {}).get(name, 0.0) for q in judged])),
                                          abs=1e-9, rel=0)


# ----------------------------------------------------------------------------- random runs

DOC_IDS = ["d1", "d2", "d10", "d11", "D3", "a", "ab", "b", "z", "é1", "e1", "Z9", "10", "9"]


def random_case(seed: int):
    """Graded qrels 0-3, scores with many ties, missing queries, run-only queries, unjudged docs."""
    rng = np.random.default_rng(seed)
    pool = DOC_IDS + [f"doc{i}" for i in range(200)]
    qrels, run = {}, {}
    for i in range(40):
        q = f"q{i}"
        if rng.random() < 0.9:
            judged = rng.choice(len(pool), rng.integers(0, 25), replace=False)
            qrels[q] = {pool[j]: int(rng.integers(0, 4)) for j in judged}
        if rng.random() < 0.85:
            n = int(rng.choice([0, 1, 5, 30, 150]))
            docs = rng.choice(len(pool), min(n, len(pool)), replace=False)
            scale = rng.choice([1, 3, 1000])  # few distinct scores -> many ties
            run[q] = {pool[j]: float(rng.integers(-scale, scale + 1)) / 2 for j in docs}
    return qrels, run


@pytest.mark.parametrize("seed", range(12))
def test_random_runs_match_pytrec_eval(seed, trec):
    qrels, run = random_case(seed)
    assert_matches_reference(trec, qrels, run)


doc_ids = st.sampled_from(DOC_IDS)


@settings(max_examples=150, deadline=None)
@given(
    qrels=st.dictionaries(st.sampled_from(["q1", "q2", "q3"]),
                          st.dictionaries(doc_ids, st.integers(-1, 3), max_size=8), min_size=1),
    run=st.dictionaries(st.sampled_from(["q1", "q2", "q4"]),
                        st.dictionaries(doc_ids, st.sampled_from([0.0, 0.5, 1.0, -2.0, 3.25]), max_size=10)),
)
def test_hypothesis_matches_pytrec_eval(trec, qrels, run):
    # relevance -1 included: trec_eval gives a negative judgement no nDCG gain and no relevance
    assert_matches_reference(trec, qrels, run, cutoffs=[1, 3, 5])


# ----------------------------------------------------------------------------- real run: SQuAD


@pytest.fixture(scope="module")
def squad_bm25_run():
    """BM25 (bm25s) top 100 paragraphs of SQuAD v1.1 dev for ~300 questions."""
    bm25s = pytest.importorskip("bm25s")
    folder = DATA / "squad_v1.1_dev"
    if not folder.is_dir():
        pytest.fail("data/squad_v1.1_dev is missing: run `bash scripts/setup.sh` (it runs `dvc pull`)")
    paragraphs = [json.loads(line) for line in (folder / "dev-v1.1.paragraphs.jsonl").open()]
    questions = [json.loads(line) for line in (folder / "dev-v1.1.qa.jsonl").open()][::35]
    pids = [p["paragraph_id"] for p in paragraphs]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([p["text"] for p in paragraphs], stopwords="en", show_progress=False),
                    show_progress=False)
    q_tokens = bm25s.tokenize([q["question"] for q in questions], stopwords="en", return_ids=False,
                              show_progress=False)
    idx, scores = retriever.retrieve(q_tokens, k=100, show_progress=False, n_threads=1)
    # round scores so that ties occur, as they do between near-duplicate paragraphs
    run = {q["id"]: {pids[j]: round(float(s), 1) for j, s in zip(row_i, row_s)}
           for q, row_i, row_s in zip(questions, idx, scores)}
    for q in questions[:5]:  # a few questions the system did not answer
        del run[q["id"]]
    return questions, paragraphs, run


def test_squad_bm25_binary_qrels_match_pytrec_eval(trec, squad_bm25_run):
    questions, _, run = squad_bm25_run
    assert len(questions) >= 300
    qrels = {q["id"]: {q["paragraph_id"]: 1} for q in questions}
    assert_matches_reference(trec, qrels, run)
    # sanity: BM25 on SQuAD paragraphs is a decent retriever
    assert aggregate(per_query(qrels, run, ["hit_rate@10"]))["hit_rate@10"] > 0.6


def test_squad_bm25_graded_qrels_match_pytrec_eval(trec, squad_bm25_run):
    # graded: the gold paragraph 2, the other paragraphs of the same article 1
    questions, paragraphs, run = squad_bm25_run
    by_title: dict[str, list[str]] = {}
    for p in paragraphs:
        by_title.setdefault(p["title"], []).append(p["paragraph_id"])
    qrels = {q["id"]: {**{pid: 1 for pid in by_title[q["title"]]}, q["paragraph_id"]: 2} for q in questions}
    assert_matches_reference(trec, qrels, run)


# ----------------------------------------------------------------------------- rules, by hand


TIES = {"q": {"a": 1.0, "b": 1.0, "d10": 1.0, "d2": 1.0}}
TIE_RANKS = [("d2", 1), ("d10", 2), ("b", 3), ("a", 4)]


def test_tie_rule_is_doc_id_descending():
    # equal scores: the larger doc id (string order, as strcmp) ranks first
    for rel, rank in TIE_RANKS:
        assert per_query({"q": {rel: 1}}, TIES, ["mrr@10"]).at["q", "mrr@10"] == 1 / rank


def test_tie_rule_is_pytrec_evals(trec):
    for rel, rank in TIE_RANKS:
        ref = trec.RelevanceEvaluator({"q": {rel: 1}}, {"recip_rank"}).evaluate(TIES)
        assert ref["q"]["recip_rank"] == 1 / rank


def test_hand_computed_values():
    qrels = {"q": {"a": 2, "b": 1, "c": 0, "d": 1}}
    run = {"q": {"x": 0.9, "b": 0.8, "c": 0.7, "a": 0.6}}  # ranks: x b c a (d not retrieved)
    df = per_query(qrels, run, ["hit_rate@1", "hit_rate@2", "recall@4", "precision@4", "mrr@4",
                                "map@4", "ndcg@4"])
    row = df.loc["q"]
    assert row["hit_rate@1"] == 0 and row["hit_rate@2"] == 1
    assert row["recall@4"] == pytest.approx(2 / 3)
    assert row["precision@4"] == pytest.approx(2 / 4)
    assert row["mrr@4"] == pytest.approx(1 / 2)
    assert row["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / np.log2(3) + 2 / np.log2(5)
    idcg = 2 + 1 / np.log2(3) + 1 / np.log2(4)
    assert row["ndcg@4"] == pytest.approx(dcg / idcg)
    # a cutoff past the ranking: precision still divides by k, the others saturate
    deep = per_query(qrels, run, ["precision@100000", "ndcg@100000", "map@100000"]).loc["q"]
    assert deep["precision@100000"] == 2 / 100000
    assert deep["ndcg@100000"] == row["ndcg@4"] and deep["map@100000"] == row["map@4"]


def test_missing_and_extra_queries():
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}, "q3": {"a": 0}, "no_judgement": {}}
    run = {"q1": {"a": 1.0}, "q3": {"a": 1.0}, "only_in_run": {"a": 1.0}, "no_judgement": {"a": 1.0}}
    df = per_query(qrels, run, ["ndcg@10", "recall@10"])
    assert df.index.name == "query_id" and list(df.index) == ["q1", "q2", "q3"]
    assert df["ndcg@10"].tolist() == [1.0, 0.0, 0.0]  # q2 missing from run: 0; q3 no relevant: 0
    assert aggregate(df) == {"ndcg@10": pytest.approx(1 / 3), "recall@10": pytest.approx(1 / 3)}


def test_registry_declares_direction_and_aggregation():
    assert IR_METRICS.names() == sorted(FAMILIES)
    for name in FAMILIES:
        metric = IR_METRICS.get(name)
        assert metric.higher_is_better is True and metric.aggregation == "mean"
    fam, k = parse_metric("ndcg@10")
    assert fam.name == "ndcg" and k == 10


def test_bad_names_fail_listing_families():
    with pytest.raises(RegistryError, match="Available: hit_rate, map, mrr, ndcg, precision, recall"):
        per_query({"q": {}}, {}, ["bleu@10"])
    for bad in ["ndcg", "ndcg@0", "ndcg@x", "ndcg@010", "NDCG@10", " ndcg@10"]:
        with pytest.raises(ConfigError, match="family@k"):
            parse_metric(bad)
    with pytest.raises(ValueError, match="no IR metric"):
        per_query({"q": {}}, {}, [])


def test_nan_score_and_empty_frame_fail():
    with pytest.raises(ValueError, match="NaN"):
        per_query({"q": {"a": 1}}, {"q": {"a": float("nan")}}, ["mrr@1"])
    with pytest.raises(ValueError, match="no rows"):
        aggregate(per_query({}, {}, ["mrr@1"]))


def test_10k_queries_x_100_docs_give_one_row_per_query():
    rng = np.random.default_rng(0)
    qrels, run = {}, {}
    for i in range(10_000):
        docs = [f"d{j}" for j in rng.choice(100_000, 100, replace=False)]
        run[f"q{i}"] = dict(zip(docs, np.round(rng.random(100), 2).tolist()))
        qrels[f"q{i}"] = {d: int(r) for d, r in zip(docs[:5], rng.integers(0, 4, 5))}
    names = [f"{fam}@{k}" for fam in FAMILIES for k in (1, 10, 100)]
    df = per_query(qrels, run, names)   # its speed is no test's business (timed asserts flake on shared cores)
    assert df.shape == (10_000, len(names)) and set(aggregate(df)) == set(names)
