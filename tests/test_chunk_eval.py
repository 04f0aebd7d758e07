import json

import pandas as pd
import pytest
from conftest import require_data

from lab.chunk_eval import evaluate
from lab.chunking import make_chunker
from lab.data.benchmarks import cuad_questions, load_chroma_benchmark
from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
from lab.errors import DataError

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
