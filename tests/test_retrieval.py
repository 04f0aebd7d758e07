"""lab.retrieval: bm25 / dense / hybrid / rerank on real SQuAD paragraphs, fusion by hand, save/load, errors."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import DATA

from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
from lab.errors import ConfigError, LabError, ModelNotAvailableError, RegistryError
from lab.retrieval import (
    RETRIEVERS,
    BaseRetriever,
    BM25Retriever,
    DenseRetriever,
    HybridRetriever,
    RerankRetriever,
    Retriever,
    load_retriever,
    make_retriever,
)

SQUAD = DATA / "squad_v1.1_dev"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def squad() -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The first 300 SQuAD v1.1 dev paragraphs and all their questions as (question, paragraph_id)."""
    paras = _jsonl(SQUAD / "dev-v1.1.paragraphs.jsonl")[:300]
    ids = [p["paragraph_id"] for p in paras]
    keep = set(ids)
    qa = [(q["question"], q["paragraph_id"]) for q in _jsonl(SQUAD / "dev-v1.1.qa.jsonl") if q["paragraph_id"] in keep]
    return ids, [p["text"] for p in paras], qa


@pytest.fixture()
def hashed(tmp_path) -> CachedEmbedder:
    return CachedEmbedder(make_embedder("hashed-256"), EmbeddingStore(tmp_path / "store"))


def hits_at(r: Retriever, qa: list[tuple[str, str]], ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of questions whose paragraph is in the top k, for each k (one search at the largest k)."""
    results = r.search([q for q, _ in qa], max(ks))
    ranked = [[d for d, _ in row] for row in results]
    return {k: float(np.mean([gold in row[:k] for (_, gold), row in zip(qa, ranked, strict=True)])) for k in ks}


def hit_at(r: Retriever, qa: list[tuple[str, str]], k: int) -> float:
    return hits_at(r, qa, (k,))[k]


def doc_ids(results: list[list[tuple[str, float]]]) -> list[list[str]]:
    return [[d for d, _ in row] for row in results]


class StaticRetriever:
    """A fake retriever returning fixed ranked lists (per query) for fusion arithmetic."""

    name = "static"

    def __init__(self, lists: dict[str, list[tuple[str, float]]]) -> None:
        self.lists = lists

    def index(self, ids: list[str], texts: list[str]) -> None:
        pass

    def search(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        return [self.lists[q][:k] for q in queries]

    def params(self) -> dict[str, Any]:
        return {"retriever": self.name}

    def save(self, dir):  # pragma: no cover - not saved in these tests
        raise NotImplementedError


class WordCountScorer:
    """Fake cross-encoder: score = occurrences of one word in the text, whatever the query."""

    def __init__(self, word: str = "zebra") -> None:
        self.word, self.name = word, f"fake-count-{word}"
        self.calls: list[int] = []

    def __call__(self, query: str, texts: list[str]) -> list[float]:
        self.calls.append(len(texts))
        return [float(re.findall(r"\w+", t.lower()).count(self.word)) for t in texts]


TOY_IDS = ["d0", "d1", "d2", "d3", "d4", "d5"]
TOY_TEXTS = [
    "The zebra lives on the savanna of Africa.",
    "Zebra zebra zebra: a striped horse, a zebra indeed.",
    "Lions hunt on the savanna at night.",
    "The savanna is a grassland with scattered trees.",
    "Penguins live in Antarctica and cannot fly.",
    "Lions hunt on the savanna at night.",  # duplicate text of d2: ties go by insertion order
]


# --------------------------------------------------------------------------- registry and protocol


def test_registry_and_protocol(hashed):
    assert RETRIEVERS.names() == ["bm25", "dense", "hybrid", "rerank"]
    for r in (BM25Retriever(), DenseRetriever(hashed), make_retriever({"retriever": "hybrid"}, hashed),
              RerankRetriever(BM25Retriever(), WordCountScorer())):
        assert isinstance(r, Retriever)


# --------------------------------------------------------------------------- bm25


def test_bm25_on_squad_slice(squad):
    ids, texts, qa = squad
    r = make_retriever({"retriever": "bm25"})
    r.index(ids, texts)
    hits = hits_at(r, qa)
    print(f"\nbm25 on {len(ids)} SQuAD paragraphs, {len(qa)} questions: hit@1/5/10 = "
          f"{hits[1]:.3f}/{hits[5]:.3f}/{hits[10]:.3f}")
    assert hits[10] > 0.6

    # a word found in exactly one paragraph puts that paragraph first
    tokens = r.tokenize(texts)
    df: dict[str, int] = {}
    for toks in tokens:
        for t in set(toks):
            df[t] = df.get(t, 0) + 1
    picked = [(t, ids[i]) for i, toks in enumerate(tokens) for t in toks[:40] if df[t] == 1 and len(t) > 4][::61][:20]
    assert len(picked) >= 10
    # filler of stopwords only: with stemming, words such as "tell" match "telling" in other paragraphs
    results = r.search([f"Is it the {t}?" for t, _ in picked], 3)
    assert [row[0][0] for row in results] == [d for _, d in picked]


def test_bm25_ties_by_insertion_order_and_no_match():
    r = BM25Retriever()
    r.index(TOY_IDS, TOY_TEXTS)
    (row,) = r.search(["lions hunt"], 10)
    assert [d for d, _ in row] == ["d2", "d5"]  # equal texts, equal scores, insertion order
    assert row[0][1] == row[1][1] > 0
    assert r.search(["the of and", "unseenword"], 5) == [[], []]  # stopwords only / out of vocabulary
    assert r.search([], 5) == []
    assert len(r.search(["savanna"], 2)[0]) == 2


def test_bm25_backend_is_pure_numpy():
    import importlib.util

    r = BM25Retriever()
    r.index(TOY_IDS, TOY_TEXTS)
    assert r._model.backend == "numpy"
    print(f"\nnumba installed: {importlib.util.find_spec('numba') is not None}; "
          f"PyStemmer installed: {importlib.util.find_spec('Stemmer') is not None}")


def test_bm25_stems_english_by_default():
    r = BM25Retriever()
    assert r.params()["stemmer"] == "english" == make_retriever({"retriever": "bm25"}).params()["stemmer"]
    assert r.tokenize(["Running runs", "the run"]) == [["run", "run"], ["run"]]  # "the": stopword first
    docs = ["She runs every morning.", "He swims in the lake."]
    r.index(["a", "b"], docs)
    assert doc_ids(r.search(["running"], 5)) == [["a"]]
    plain = make_retriever({"retriever": "bm25", "stemmer": None})
    assert plain.params()["stemmer"] is None
    assert plain.tokenize(["Running runs"]) == [["running", "runs"]]
    plain.index(["a", "b"], docs)
    assert plain.search(["running"], 5) == [[]]  # "running" is not "runs" without stemming
    assert doc_ids(plain.search(["runs"], 5)) == [["a"]]


def test_bm25_stemmer_keeps_through_save_and_load(tmp_path):
    docs = ["She runs every morning.", "He swims in the lake."]
    for stemmer, want in (("english", [["a"]]), (None, [[]])):
        r = make_retriever({"retriever": "bm25", "stemmer": stemmer})
        r.index(["a", "b"], docs)
        again = load_retriever(r.save(tmp_path / str(stemmer)))
        assert again.params()["stemmer"] == stemmer
        assert doc_ids(again.search(["running"], 5)) == want


def test_bm25_stemmer_errors(monkeypatch):
    with pytest.raises(ConfigError, match="Retriever 'bm25': PyStemmer has no stemmer 'klingon'; available: .*english"):
        make_retriever({"retriever": "bm25", "stemmer": "klingon"})
    with pytest.raises(ConfigError, match="stemmer must be a string or null"):
        make_retriever({"retriever": "bm25", "stemmer": True})
    # PyStemmer missing (an environment not installed from pyproject.toml): say how to fix both ways
    monkeypatch.setitem(sys.modules, "Stemmer", None)
    with pytest.raises(ConfigError, match=r"needs PyStemmer.*pip install PyStemmer.*stemmer: null"):
        BM25Retriever()
    assert BM25Retriever(stemmer=None).params()["stemmer"] is None


# --------------------------------------------------------------------------- dense


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_dense_with_hashed_embedder(hashed, index):
    r = make_retriever({"retriever": "dense", "index": index}, hashed)
    r.index(TOY_IDS, TOY_TEXTS)
    results = r.search(["The zebra lives on the savanna of Africa.", "Lions hunt on the savanna at night."], 3)
    assert results[0][0][0] == "d0" and results[0][0][1] == pytest.approx(1.0, abs=1e-5)
    if index != "ivf":  # ivf with 1 list is exhaustive too, but keep the strict check to exact kinds
        assert doc_ids(results)[1][:2] == ["d2", "d5"]
    assert len(r.search(["zebra"], 100)[0]) == 6  # k beyond the count: padding removed
    assert r.params()["index"] == index


def test_dense_on_squad_slice_with_hashed(squad, hashed):
    ids, texts, qa = squad
    r = make_retriever({"retriever": "dense"}, hashed)
    r.index(ids, texts)
    h10 = hit_at(r, qa, 10)
    print(f"\ndense(hashed-256, flat) hit@10 = {h10:.3f}")
    assert h10 > 0.4


# --------------------------------------------------------------------------- hybrid


def test_rrf_by_hand():
    a = StaticRetriever({"q": [("a", 9.0), ("b", 5.0), ("c", 1.0)], "t": [("x", 1.0)]})
    b = StaticRetriever({"q": [("c", 0.9), ("a", 0.8), ("d", 0.1)], "t": [("y", 1.0)]})
    h = HybridRetriever([a, b], fusion="rrf")
    h.index(["a", "b", "c", "d", "x", "y"], ["", "", "", "", "", ""])
    (row,) = h.search(["q"], 10)
    expected = [("a", 1 / 61 + 1 / 62), ("c", 1 / 63 + 1 / 61), ("b", 1 / 62), ("d", 1 / 63)]
    assert [d for d, _ in row] == [d for d, _ in expected]
    for (_, got), (_, want) in zip(row, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-12)
    assert h.search(["q"], 2) == [row[:2]]
    # equal fused scores (1/61 each) come in insertion order
    assert h.search(["t"], 5) == [[("x", 1 / 61), ("y", 1 / 61)]]
    h2 = HybridRetriever([a, b], fusion="rrf", rrf_k=0)
    h2.index(["a", "b", "c", "d"], ["", "", "", ""])
    assert h2.search(["q"], 1) == [[("a", 1 / 1 + 1 / 2)]]


def test_weighted_fusion_by_hand():
    a = StaticRetriever({"q": [("a", 3.0), ("b", 2.0), ("c", 1.0)]})
    b = StaticRetriever({"q": [("c", 10.0), ("d", 0.0)]})
    h = HybridRetriever([a, b], fusion="weighted", alpha=0.5)
    h.index(["a", "b", "c", "d"], ["", "", "", ""])
    # a: .5*1 ; b: .5*.5 ; c: .5*0 + .5*1 ; d: 0  -> a and c tie at .5: insertion order
    assert h.search(["q"], 10) == [[("a", 0.5), ("c", 0.5), ("b", 0.25), ("d", 0.0)]]


def test_weighted_fusion_alpha_extremes_equal_single_retrievers(squad, hashed):
    ids, texts, qa = squad
    queries = [q for q, _ in qa[:200]]
    for alpha, which in ((1.0, 0), (0.0, 1)):
        h = make_retriever({"retriever": "hybrid", "fusion": "weighted", "alpha": alpha}, hashed)
        h.index(ids, texts)
        single = h.retrievers[which].search(queries, 10)
        assert doc_ids(h.search(queries, 10)) == doc_ids(single)


def test_hybrid_rrf_on_squad_slice(squad, hashed):
    ids, texts, qa = squad
    h = make_retriever({"retriever": "hybrid", "fusion": "rrf"}, hashed)
    h.index(ids, texts)
    h10 = hit_at(h, qa, 10)
    print(f"\nhybrid rrf (hashed-256 + bm25) hit@10 = {h10:.3f}")
    assert h10 > 0.6


# --------------------------------------------------------------------------- rerank


def test_rerank_with_fake_scorer_reorders():
    scorer = WordCountScorer("night")
    base = BM25Retriever()
    r = RerankRetriever(base, scorer, candidates=4)
    r.index(TOY_IDS, TOY_TEXTS)
    first = [d for d, _ in base.search(["savanna zebra"], 5)[0]]
    assert first == ["d1", "d0", "d2", "d3", "d5"]
    (row,) = r.search(["savanna zebra"], 3)
    # d2 has "night"; d0 and d1 tie at 0 and come in insertion order; d5 has "night" too but is
    # the base's 5th, outside the 4 candidates, so it is never scored
    assert row == [("d2", 1.0), ("d0", 0.0), ("d1", 0.0)]
    assert scorer.calls == [4]
    assert r.params()["model"] == "fake-count-night"
    assert r.params()["base"] == base.params()


def test_rerank_without_a_model_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    with pytest.raises(ModelNotAvailableError, match="cross-encoder.*not available.*HF_HUB_OFFLINE"):
        make_retriever({"retriever": "rerank", "base": {"retriever": "bm25"}})


# --------------------------------------------------------------------------- save / load


def _round_trip(r: Retriever, tmp_path: Path, queries: list[str], **inject: Any) -> Retriever:
    before = r.search(queries, 10)
    path = r.save(tmp_path / "saved")
    assert (path / "retriever.json").is_file()
    again = load_retriever(path, **inject)
    assert type(again) is type(r)
    assert again.params() == r.params()
    assert again.search(queries, 10) == before
    # saving over an existing save replaces it
    r.save(path)
    assert load_retriever(path, **inject).search(queries, 10) == before
    return again


SPECS = [
    {"retriever": "dense", "index": "flat"},
    {"retriever": "dense", "index": "hnsw", "M": 16, "ef_search": 32},
    {"retriever": "dense", "index": "ivf", "nlist": 8, "nprobe": 2},
    {"retriever": "bm25", "k1": 1.2, "b": 0.6},
    {"retriever": "hybrid", "fusion": "rrf"},
    {"retriever": "hybrid", "fusion": "weighted", "alpha": 0.3, "candidates": 20,
     "retrievers": [{"retriever": "dense", "index": "hnsw"}, {"retriever": "bm25", "method": "bm25+"}]},
    {"retriever": "rerank", "candidates": 15, "base": {"retriever": "hybrid"}},
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(str(v) for v in s.values() if isinstance(v, str)))
def test_save_load_round_trip(spec, squad, hashed, tmp_path):
    ids, texts, qa = squad
    scorer = WordCountScorer() if spec["retriever"] == "rerank" else None
    r = make_retriever(spec, hashed, score=scorer)
    r.index(ids[:120], texts[:120])
    _round_trip(r, tmp_path, [q for q, _ in qa[:40]], embed=hashed, score=scorer)


def test_params_rebuild_the_same_configuration(hashed):
    scorer = WordCountScorer()
    for spec in SPECS:
        r = make_retriever(spec, hashed, score=scorer)
        assert make_retriever(r.params(), hashed, score=scorer).params() == r.params()


def test_load_errors(squad, hashed, tmp_path):
    ids, texts, _ = squad
    r = make_retriever({"retriever": "dense"}, hashed)
    r.index(ids[:20], texts[:20])
    path = r.save(tmp_path / "dense")
    with pytest.raises(LabError, match="needs embed="):
        load_retriever(path)
    other = CachedEmbedder(make_embedder("hashed-128"), EmbeddingStore(tmp_path / "store2"))
    with pytest.raises(LabError, match="fingerprint"):
        load_retriever(path, other)
    with pytest.raises(LabError, match="no retriever.json"):
        load_retriever(tmp_path / "nowhere")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("do not delete")
    with pytest.raises(LabError, match="refusing to replace"):
        r.save(tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "do not delete"


# --------------------------------------------------------------------------- errors


def test_spec_errors(hashed):
    with pytest.raises(RegistryError, match="Unknown retriever 'splade'. Available: bm25, dense, hybrid, rerank"):
        make_retriever({"retriever": "splade"})
    with pytest.raises(ConfigError, match="Retriever 'bm25' got unknown key.*k3.*Accepted: k1, b, delta, method"):
        make_retriever({"retriever": "bm25", "k3": 1.0})
    with pytest.raises(ConfigError, match="Retriever 'dense' got unknown key.*M.*Accepted: index, device$"):
        make_retriever({"retriever": "dense", "index": "flat", "M": 32}, hashed)
    with pytest.raises(ConfigError, match="Accepted: index, device, M, ef_construction, ef_search"):
        make_retriever({"retriever": "dense", "index": "hnsw", "nprobe": 3}, hashed)
    with pytest.raises(RegistryError, match="Unknown index kind 'annoy'"):
        make_retriever({"retriever": "dense", "index": "annoy"}, hashed)
    with pytest.raises(ConfigError, match="Retriever 'bm25' got unknown key.*kl"):  # nested spec
        make_retriever({"retriever": "hybrid", "retrievers": [{"retriever": "dense"}, {"retriever": "bm25", "kl": 1}]},
                       hashed)
    with pytest.raises(ConfigError, match="fusion must be one of rrf, weighted"):
        make_retriever({"retriever": "hybrid", "fusion": "max"}, hashed)
    with pytest.raises(ConfigError, match=r"alpha must be a number in \[0, 1\]"):
        make_retriever({"retriever": "hybrid", "fusion": "weighted", "alpha": 1.5}, hashed)
    with pytest.raises(ConfigError, match="method must be one of"):
        make_retriever({"retriever": "bm25", "method": "okapi"})
    with pytest.raises(ConfigError, match="'retriever' key"):
        make_retriever({"index": "flat"})
    with pytest.raises(LabError, match="needs embed="):
        make_retriever({"retriever": "dense"})


def test_usage_errors():
    r = BM25Retriever()
    with pytest.raises(LabError, match="nothing indexed"):
        r.search(["x"], 1)
    with pytest.raises(LabError, match="must be unique"):
        r.index(["a", "a"], ["x", "y"])
    with pytest.raises(LabError, match="2 ids but 1 texts"):
        r.index(["a", "b"], ["x"])
    with pytest.raises(LabError, match="none of the 2 documents has a token"):
        r.index(["a", "b"], ["x y", "the of"])
    r.index(["a"], ["xx yy"])
    with pytest.raises(TypeError, match="list of strings"):
        r.search("query", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integer"):
        r.search(["q"], 0)
    assert issubclass(BM25Retriever, BaseRetriever)


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_dense_minilm_on_squad_slice(squad, tmp_path):
    ids, texts, qa = squad
    embed = CachedEmbedder(make_embedder("all-minilm-l6-v2"), EmbeddingStore(tmp_path))
    dense = make_retriever({"retriever": "dense", "index": "flat"}, embed)
    dense.index(ids, texts)
    hits = hits_at(dense, qa)
    bm25 = make_retriever({"retriever": "bm25"})
    bm25.index(ids, texts)
    hybrid = HybridRetriever([dense, bm25], fusion="rrf")
    hybrid.index(ids, texts)  # re-embeds nothing: the store already holds every paragraph
    h5 = hit_at(hybrid, qa, 5)
    print(f"\ndense MiniLM on {len(ids)} SQuAD paragraphs, {len(qa)} questions: hit@1/5/10 = "
          f"{hits[1]:.3f}/{hits[5]:.3f}/{hits[10]:.3f}; hybrid rrf (MiniLM + bm25) hit@5 = {h5:.3f}; "
          f"store {embed.store.stats.as_dict()}")
    assert hits[5] > 0.6
