import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import require_data

from lab.chunking import make_chunker
from lab.config import ChunkingStudyConfig, load_section
from lab.data.benchmarks import cuad_questions, load_chroma_benchmark
from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
from lab.errors import ConfigError, DataError
from lab.studies.chunking import StudyResult, evaluate, run_study

DOC_A = "Alpha beta gamma. " * 40 + "The treaty was signed in Vienna in 1815. " + "Delta epsilon. " * 40
DOC_B = "Completely different text about cooking pasta and tomato sauce. " * 30


def _bench(tmp_path, refs_override=None, corpus_id="a"):
    folder = tmp_path / "corpora"
    folder.mkdir(exist_ok=True)
    (folder / "a.md").write_text(DOC_A, encoding="utf-8")
    (folder / "b.md").write_text(DOC_B, encoding="utf-8")
    target = "The treaty was signed in Vienna in 1815."
    start = DOC_A.index(target)
    refs = refs_override or [{"content": target, "start_index": start, "end_index": start + len(target)}]
    pd.DataFrame({"question": ["Where was the treaty signed?"], "references": [json.dumps(refs)],
                  "corpus_id": [corpus_id]}).to_csv(tmp_path / "q.csv", index=False)
    return folder, tmp_path / "q.csv"


def _cached(tmp_path):
    return CachedEmbedder(make_embedder("hashed-256"), EmbeddingStore(tmp_path / "store"))


def test_one_chunk_per_document_gives_full_recall(tmp_path):
    folder, q = _bench(tmp_path)
    bench = load_chroma_benchmark(folder, q)
    res = evaluate(make_chunker("token", size=2000, overlap=0), bench, _cached(tmp_path), ks=["min", 1, 2])
    rows = res.per_question.set_index("k_label")
    ref_len = len("The treaty was signed in Vienna in 1815.")
    assert rows.loc["min", "k"] == 1
    assert rows.loc["1", "recall"] == 1.0
    assert rows.loc["1", "precision"] == pytest.approx(ref_len / len(DOC_A))
    assert rows.loc["1", "precision_omega"] == pytest.approx(ref_len / len(DOC_A))
    # k=2 also retrieves the other document's chunk: precision is diluted by its length
    assert rows.loc["2", "precision"] == pytest.approx(ref_len / (len(DOC_A) + len(DOC_B)))
    assert res.chunk_stats()["chunks"] == 2


def test_second_run_embeds_nothing_new(tmp_path):
    folder, q = _bench(tmp_path)
    bench = load_chroma_benchmark(folder, q)
    cached = _cached(tmp_path)
    evaluate(make_chunker("recursive", size=50, overlap=10), bench, cached)
    first = cached.store.stats.misses
    again = CachedEmbedder(make_embedder("hashed-256"), EmbeddingStore(tmp_path / "store"))
    evaluate(make_chunker("recursive", size=50, overlap=10), bench, again)
    assert first > 0 and again.store.stats.misses == 0 and again.store.stats.hits == first


def test_question_naming_a_corpus_without_file(tmp_path):
    folder, q = _bench(tmp_path, corpus_id="nonexistent")
    with pytest.raises(DataError, match=r"corpus_id 'nonexistent' has no document .*available: a, b"):
        load_chroma_benchmark(folder, q)


def test_reference_offsets_not_matching_text(tmp_path):
    bad = [{"content": "The treaty was signed in Vienna in 1815.", "start_index": 0, "end_index": 41}]
    folder, q = _bench(tmp_path, refs_override=bad)
    with pytest.raises(DataError, match=r"row 1: references\[0\] offsets 0..41 do not match .*occurs at 720"):
        load_chroma_benchmark(folder, q)
    bench = load_chroma_benchmark(folder, q, on_bad_reference="skip")
    assert bench.questions == [] and len(bench.skipped) == 1


def test_empty_corpus_file_is_an_error(tmp_path):
    folder, q = _bench(tmp_path)
    (folder / "c.md").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="c.md: file is empty"):
        load_chroma_benchmark(folder, q)


def test_real_state_of_the_union_slice(tmp_path):
    data = require_data()
    folder = tmp_path / "sotu"
    folder.mkdir()
    (folder / "state_of_the_union.md").write_text(
        (data / "chroma_chunking/corpora/state_of_the_union.md").read_text(encoding="utf-8"), encoding="utf-8")
    qs = pd.read_csv(data / "chroma_chunking/questions_df.csv")
    qs[qs.corpus_id == "state_of_the_union"].to_csv(tmp_path / "q.csv", index=False)
    bench = load_chroma_benchmark(folder, tmp_path / "q.csv")
    assert len(bench.questions) == 76
    res = evaluate(make_chunker("recursive", size=250, overlap=125), bench, _cached(tmp_path))
    summary = res.summary().set_index("k_label")
    assert list(summary.index) == ["min", "5", "10"]
    assert (summary["n_queries"] == 76).all()
    # more chunks retrieved: recall can only grow, precision (same-size chunks) shrinks
    assert summary.loc["10", "recall"] >= summary.loc["5", "recall"]
    assert summary.loc["10", "precision"] <= summary.loc["5", "precision"]
    assert 0 < summary.loc["5", "precision_omega"] <= 100


def test_cuad_questions_locate_excerpts_exactly():
    data = require_data()
    bench = cuad_questions(data / "cuad_sample/master_clauses.sample.csv", data / "cuad_sample/contracts")
    assert len(bench.documents) == 10 and len(bench.questions) > 50
    for q in bench.questions:
        text = bench.documents[q.doc_id]
        assert all(text[r.start:r.end] == r.content for r in q.references)


def test_document_scope_retrieves_only_from_the_questions_document(tmp_path):
    folder, q = _bench(tmp_path)
    bench = load_chroma_benchmark(folder, q)
    pooled = evaluate(make_chunker("token", size=2000, overlap=0), bench, _cached(tmp_path), ks=[2])
    scoped = evaluate(make_chunker("token", size=2000, overlap=0), bench, _cached(tmp_path), ks=[2],
                      scope="document")
    ref_len = len("The treaty was signed in Vienna in 1815.")
    assert pooled.per_question.loc[0, "precision"] == pytest.approx(ref_len / (len(DOC_A) + len(DOC_B)))
    assert scoped.per_question.loc[0, "precision"] == pytest.approx(ref_len / len(DOC_A))  # b.md excluded
    with pytest.raises(ValueError, match="scope"):
        evaluate(make_chunker("token", size=2000, overlap=0), bench, _cached(tmp_path), scope="corpus")


# --------------------------------------------------------------------------- uncertainty (issue 8)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real, small study: 40 State of the Union questions, the 512/50 default and one other chunker."""
    data = require_data()
    raw = {"benchmarks": [{"name": "sotu", "format": "chroma", "corpus_dir": "chroma_chunking/corpora",
                           "questions": "chroma_chunking/questions_df.csv",
                           "include": ["state_of_the_union"]}],
           "chunkers": [{"chunker": "token", "size": 512, "overlap": 50},
                        {"chunker": "recursive", "size": 250, "overlap": 125}],
           "embedder": "hashed-256", "max_questions": 40, "n_resamples": 200}
    cfg = ChunkingStudyConfig.model_validate(raw)
    return run_study(cfg, data, progress=False, store_dir=tmp_path_factory.mktemp("store"))


def _twin(study: StudyResult) -> StudyResult:
    """The study's baseline result twice, the second under another label: a chunker against itself."""
    bench, label, res = study.results[0]
    return StudyResult([(bench, label, res), (bench, "copy", res)], {}, study.skipped, study.notes,
                       study.context, baseline=label, n_resamples=study.n_resamples)


def test_config_reaches_the_study(study):
    assert study.baseline == "token-512-50" and study.n_resamples == 200


def test_ci_bounds_bracket_the_mean_and_means_equal_the_table(study):
    ci = study.ci_table()
    assert len(ci) == 2 * 3 and (ci["n_queries"] == 40).all()
    for m in ("recall", "iou"):
        assert (ci[f"{m}_ci_low"] <= ci[m]).all() and (ci[m] <= ci[f"{m}_ci_high"]).all()
        assert (ci[f"{m}_ci_high"] - ci[f"{m}_ci_low"] > 0).all()   # real data: the questions vary
        # the means are the table's, bit for bit (metrics.json keeps its values)
        assert ci[m].tolist() == study.table()[m].tolist()
    # a wider interval at a higher confidence, from the same resamples
    wide = study.ci_table(confidence=0.99)
    assert (wide["recall_ci_low"] <= ci["recall_ci_low"]).all()
    assert (wide["recall_ci_high"] >= ci["recall_ci_high"]).all()


def test_paired_rows_are_consistent(study):
    p = study.paired()
    assert set(p["chunker"]) == {"recursive-250-125"} and set(p["baseline"]) == {"token-512-50"}
    assert len(p) == 3 * 2 and (p["n"] == 40).all()
    assert (p["wins"] + p["ties"] + p["losses"] == p["n"]).all()
    assert p["diff"].to_numpy() == pytest.approx((p["mean"] - p["baseline_mean"]).to_numpy())
    assert ((p["ci_low"] <= p["diff"]) & (p["diff"] <= p["ci_high"])).all()
    assert (p["significant"] == ((p["ci_low"] > 0) | (p["ci_high"] < 0))).all()
    assert set(p["verdict"]) <= {"better", "worse", "indistinguishable"}
    assert ((p["p_value"] > 0) & (p["p_value"] <= 1)).all()
    # against recursive as the baseline, the differences change sign
    rev = study.paired(baseline="recursive-250-125")
    assert rev["diff"].to_numpy() == pytest.approx(-p["diff"].to_numpy())


def test_paired_against_itself_is_zero_with_p_one(study):
    p = _twin(study).paired()
    assert len(p) == 3 * 2
    assert (p["diff"] == 0).all() and (p["ci_low"] == 0).all() and (p["ci_high"] == 0).all()
    assert (p["p_value"] == 1.0).all() and (p["ties"] == p["n"]).all()
    assert not p["significant"].any() and set(p["verdict"]) == {"indistinguishable"}
    text = _twin(study).finding()
    assert "Of 6 comparisons with the baseline, 0 have a 95% CI excluding 0" in text
    assert "All are indistinguishable from the baseline." in text


def test_unknown_baseline_is_named(study):
    with pytest.raises(ValueError, match=r"'token-9-9' is not a chunker.*token-512-50, recursive-250-125"):
        study.paired(baseline="token-9-9")


def test_uncertainty_is_deterministic_and_independent_of_study_order(study):
    pd.testing.assert_frame_equal(study.ci_table(), study.ci_table())
    pd.testing.assert_frame_equal(study.paired(), study.paired())
    assert study.metrics() == study.metrics() and study.finding() == study.finding()
    # every cell is resampled with the same seed: reordering the results does not move a CI
    flipped = StudyResult(study.results[::-1], {}, study.skipped, study.notes, study.context,
                          n_resamples=study.n_resamples)
    key = ["benchmark", "chunker", "k_label"]
    pd.testing.assert_frame_equal(flipped.ci_table().sort_values(key, ignore_index=True),
                                  study.ci_table().sort_values(key, ignore_index=True))
    # another seed gives other bounds (the seed is used), the same means
    other = study.ci_table(seed=1)
    assert other["recall"].tolist() == study.ci_table()["recall"].tolist()
    assert other["recall_ci_low"].tolist() != study.ci_table()["recall_ci_low"].tolist()


def test_metrics_add_ci_and_paired_keys_and_keep_the_others(study):
    m = study.metrics()
    table = study.table()
    row = table[(table.chunker == "recursive-250-125") & (table.k_label == "5")].iloc[0]
    assert m["sotu.recursive-250-125.k5.recall"] == round(float(row["recall"]), 3)   # unchanged keys
    ci = study.ci_table().set_index(["chunker", "k_label"]).loc[("recursive-250-125", "5")]
    assert m["sotu.recursive-250-125.k5.recall_ci95_low"] == round(ci["recall_ci_low"], 3)
    assert m["sotu.recursive-250-125.k5.iou_ci95_high"] == round(ci["iou_ci_high"], 3)
    p = study.paired().set_index(["k_label", "metric"]).loc[("10", "iou")]
    assert m["sotu.recursive-250-125.k10.iou_vs_baseline"] == round(p["diff"], 3)
    assert m["sotu.recursive-250-125.k10.iou_vs_baseline_p"] == round(p["p_value"], 4)
    assert m["sotu.recursive-250-125.k10.iou_vs_baseline_ci95_low"] == round(p["ci_low"], 3)
    assert "sotu.token-512-50.k5.recall_ci95_low" in m
    assert not any(k.startswith("sotu.token-512-50.") and "_vs_baseline" in k for k in m)
    assert all(isinstance(v, (int, float)) and v == v for v in m.values())   # no NaN in the tracked file


def test_finding_names_the_best_chunkers_with_numbers(study):
    text = study.finding()
    ci = study.ci_table()
    k5 = ci[ci.k_label == "5"]
    best = k5.loc[k5["iou"].idxmax(), "chunker"]
    assert text.startswith("**sotu** (40 questions; baseline `token-512-50`):")
    assert f"The highest IoU at k=5 is `{best}`'s" in text and "The highest recall at k=10 is" in text
    assert "Of 6 comparisons with the baseline" in text and "not corrected for multiple comparisons" in text
    p = study.paired().set_index(["k_label", "metric"]).loc[("5", "iou")]
    if best != "token-512-50":
        said = {"better": "significantly higher than", "worse": "significantly lower than"}.get(
            p["verdict"], "indistinguishable from")
        assert f"{said} the baseline." in text


def _chunking_params(tmp_path, **extra) -> Path:
    section = {"benchmarks": [{"name": "b", "corpus_dir": "c", "questions": "q.csv"}],
               "chunkers": [{"chunker": "token", "size": 512, "overlap": 50},
                            {"chunker": "recursive", "size": 250, "overlap": 125}], **extra}
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"chunking_study": section}), encoding="utf-8")
    return p


def test_baseline_must_be_a_chunker_label(tmp_path):
    cfg = load_section("chunking_study", _chunking_params(tmp_path), check_paths=False)
    assert cfg.baseline == "token-512-50" and cfg.n_resamples == 1000
    cfg = load_section("chunking_study", _chunking_params(tmp_path, baseline="recursive-250-125"),
                       check_paths=False)
    assert cfg.baseline == "recursive-250-125"
    with pytest.raises(ConfigError) as err:
        load_section("chunking_study", _chunking_params(tmp_path, baseline="semantic"), check_paths=False)
    msg = str(err.value)
    assert "params.yaml" in msg and "chunking_study.baseline" in msg and "'semantic'" in msg
    assert "token-512-50, recursive-250-125" in msg


def test_default_baseline_is_checked_too(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"chunking_study": {
        "benchmarks": [{"name": "b", "corpus_dir": "c", "questions": "q.csv"}],
        "chunkers": [{"chunker": "recursive", "size": 250, "overlap": 125}]}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"chunking_study.baseline.*'token-512-50'.*recursive-250-125"):
        load_section("chunking_study", p, check_paths=False)
    with pytest.raises(ConfigError, match=r"chunking_study.n_resamples"):
        load_section("chunking_study", _chunking_params(tmp_path, n_resamples=10), check_paths=False)
