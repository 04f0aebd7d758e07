import numpy as np
import pytest

from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder, namespace
from lab.errors import RegistryError


class CountingEmbedder:
    """A fake embedder that counts what it is asked to embed."""

    def __init__(self, version: int = 1):
        self.name, self.version, self.seen = "counting", version, []

    @property
    def dim(self):
        return 4

    def fingerprint(self):
        return {"kind": "counting", "version": self.version}

    def encode(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a"), self.version, 1.0] for t in texts], dtype=np.float32)


def test_each_distinct_text_is_embedded_once(tmp_path):
    emb, store = CountingEmbedder(), EmbeddingStore(tmp_path)
    cached = CachedEmbedder(emb, store)
    v1 = cached(["a", "bb", "a", "ccc"])
    assert emb.seen == ["a", "bb", "ccc"]                      # duplicates within a call embedded once
    assert v1.shape == (4, 4) and np.array_equal(v1[0], v1[2])
    v2 = cached(["ccc", "bb", "dddd"])
    assert emb.seen == ["a", "bb", "ccc", "dddd"]
    assert np.array_equal(v2[0], v1[3])
    assert store.stats.as_dict()["misses"] == 4 and store.stats.hits == 2


def test_store_persists_across_instances_and_fingerprints_separate(tmp_path):
    CachedEmbedder(CountingEmbedder(), EmbeddingStore(tmp_path))(["x", "y"])
    again, store = CountingEmbedder(), EmbeddingStore(tmp_path)
    CachedEmbedder(again, store)(["x", "y"])
    assert again.seen == [] and store.stats.misses == 0 and store.stats.bytes_read > 0
    other = CountingEmbedder(version=2)                          # different weights -> different vectors
    vecs = CachedEmbedder(other, EmbeddingStore(tmp_path))(["x"])
    assert other.seen == ["x"] and vecs[0, 2] == 2
    assert namespace(other.fingerprint()) != namespace(again.fingerprint())


def test_empty_input(tmp_path):
    out = CachedEmbedder(CountingEmbedder(), EmbeddingStore(tmp_path))([])
    assert out.shape == (0, 4)


def test_hashed_embedder_and_unknown_kind():
    e = make_embedder("hashed-64")
    v = e.encode(["the cat", "the cat", "a dog"])
    assert v.shape == (3, 64) and np.allclose(np.linalg.norm(v, axis=1), 1)
    assert np.array_equal(v[0], v[1])
    with pytest.raises(RegistryError, match="Available: .*sentence-transformers"):
        make_embedder("x", kind="nope")


def test_minilm_through_store_equals_plain_sentence_transformers(tmp_path):
    from lab.models import load_sentence_transformer

    texts = ["A contract clause on termination.", "The president spoke about inflation.", "x"]
    cached = CachedEmbedder(make_embedder("all-minilm-l6-v2"), EmbeddingStore(tmp_path))
    ours = cached(texts)
    plain = load_sentence_transformer("all-minilm-l6-v2").encode(texts, normalize_embeddings=True)
    assert np.allclose(ours, plain, atol=1e-6)
    assert np.array_equal(cached(texts), ours)                   # read back bit-identical
    fp = cached.fingerprint()
    assert fp["max_seq_length"] == 256 and len(fp["weights"]) == 16


def test_store_pickles_and_works_in_a_child_process(tmp_path):
    import multiprocessing as mp
    import pickle

    store = EmbeddingStore(tmp_path)
    cached = CachedEmbedder(CountingEmbedder(), store)
    cached(["parent text"])                                   # opens a connection in this process
    clone = pickle.loads(pickle.dumps(cached))
    assert np.array_equal(clone(["parent text"]), cached(["parent text"]))
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        out = pool.apply(_embed_in_child, (cached, ["child text", "parent text"]))
    assert out == (1, 1)                                      # the child embedded one, reused one
    assert store.count(namespace(cached.fingerprint())) == 2


def _embed_in_child(cached, texts):
    misses, hits = cached.store.stats.misses, cached.store.stats.hits   # inherited through fork
    cached(texts)
    return cached.store.stats.misses - misses, cached.store.stats.hits - hits


def test_corrupt_vector_is_reported(tmp_path):
    import sqlite3

    cached = CachedEmbedder(CountingEmbedder(), EmbeddingStore(tmp_path))
    cached(["x"])
    ns = namespace(cached.fingerprint())
    con = sqlite3.connect(tmp_path / f"{ns}.sqlite")
    con.execute("UPDATE vectors SET dim = 7")
    con.commit()
    from lab.errors import LabError

    with pytest.raises(LabError, match="corrupt"):
        CachedEmbedder(CountingEmbedder(), EmbeddingStore(tmp_path))(["x"])
