import pandas as pd
import pytest
from conftest import REPO, require_data

from lab.errors import ConfigError
from lab.studies.retrieval import (
    build_dataset,
    evaluate_config,
    pareto_front,
    prepare_embeddings,
    retriever_spec,
)

SQUAD = {"kind": "squad_chunks", "paragraphs": "data/squad_v1.1_dev/dev-v1.1.paragraphs.jsonl",
         "qa": "data/squad_v1.1_dev/dev-v1.1.qa.jsonl", "titles": ["Warsaw", "Normans"], "max_queries": 60}


def _cfg(retriever, **kw):
    return {"chunker": "recursive", "size": 128, "overlap": 0, "embedder": "hashed-256",
            "retriever": retriever, "ks": [1, 5, 10], **kw}


def test_retriever_spec_routes_keys():
    assert retriever_spec(_cfg("dense", index="hnsw", M=16)) == {"retriever": "dense", "index": "hnsw", "M": 16}
    assert retriever_spec(_cfg("bm25", index="hnsw", k1=1.2)) == {"retriever": "bm25", "k1": 1.2}
    hybrid = retriever_spec(_cfg("hybrid", index="ivf", fusion="weighted", alpha=0.3))
    assert hybrid["retrievers"][0] == {"retriever": "dense", "index": "ivf"} and hybrid["alpha"] == 0.3


def test_evaluate_config_on_real_squad_chunks(tmp_path):
    require_data()
    store = tmp_path / "store"
    prep = prepare_embeddings([_cfg("dense"), _cfg("bm25"), _cfg("hybrid")], SQUAD, REPO, store_dir=store,
                              progress=False)
    assert prep["embeddings_computed"] == prep["distinct_chunks"] > 0          # each chunk embedded once
    assert 0 < prep["query_embeddings_computed"] <= prep["distinct_queries"]
    again = prepare_embeddings([_cfg("dense")], SQUAD, REPO, store_dir=store, progress=False)
    assert again["embeddings_computed"] == 0
    results = {r: evaluate_config(_cfg(r), SQUAD, REPO, store_dir=store) for r in ("dense", "bm25", "hybrid")}
    for r, m in results.items():
        assert m["n_queries"] == 60 and m["n_docs"] > 0 and m["index_bytes"] > 0
        assert m["embeddings_computed"] == m["query_embeddings_computed"] == 0  # all from the store
        assert m["hit_rate@1"] <= m["hit_rate@5"] <= m["hit_rate@10"] <= 1
        assert m["mrr@10"] <= m["hit_rate@10"]
    # lexical retrieval finds SQuAD answers far better than the hashed bag-of-words embedder
    assert results["bm25"]["hit_rate@10"] > 0.7 > results["dense"]["hit_rate@1"]


def test_build_dataset_errors():
    with pytest.raises(ConfigError, match="not one of"):
        build_dataset({"kind": "nope"}, _cfg("dense"), REPO)
    with pytest.raises(ConfigError, match=r"dataset.qa: required key is missing"):
        build_dataset({"kind": "squad_chunks", "paragraphs": "x"}, _cfg("dense"), REPO)
    with pytest.raises(ConfigError, match="needs a chunker"):
        build_dataset(SQUAD, {**_cfg("dense"), "chunker": "none"}, REPO)


def test_pareto_front():
    df = pd.DataFrame({"q": [0.9, 0.8, 0.9, 0.5], "size": [10, 5, 20, 1], "ms": [1, 1, 1, 1]})
    assert pareto_front(df, "q", ["size", "ms"]) == [True, True, False, True]
