"""lab.index: exactness of flat against numpy, recall of hnsw/ivf, padding, save/load, devices, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from lab import index as lab_index
from lab.errors import ConfigError, LabError, RegistryError
from lab.index import INDEXES, build_index, gpu_available, load_index, sidecar_path

KINDS = ["flat", "hnsw", "ivf"]


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, dim: int, clusters: int = 50, spread: float = 0.35) -> np.ndarray:
    centres = unit_rows(rng, clusters, dim)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def numpy_topk(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: float64 inner products, best first, ties by lower id."""
    s = q.astype(np.float64) @ x.astype(np.float64).T
    ids = np.arange(x.shape[0])
    order = np.stack([np.lexsort((ids, -row))[:k] for row in s])
    return np.take_along_axis(s, order, 1), order


def test_registry_lists_the_three_kinds():
    assert INDEXES.names() == ["flat", "hnsw", "ivf"]


@pytest.mark.parametrize("nq", [1, 7, 64])  # FAISS takes a BLAS path from 20 queries up
def test_flat_equals_numpy_brute_force_with_ties(nq):
    rng = np.random.default_rng(0)
    x = unit_rows(rng, 600, 32)
    dup_ids = [3, 50, 77, 120, 599]  # five copies of one vector, scattered
    x[dup_ids] = x[3]
    x[[10, 11, 400]] = x[400]        # and three of another
    q = unit_rows(rng, nq, 32)
    q[0] = x[3]                      # a query tied five ways at the top
    if nq > 1:
        q[1] = x[400]
    idx = build_index("flat", x)
    for k in (1, 2, 4, 10):
        scores, ids = idx.search(q, k)
        ref_s, ref_i = numpy_topk(x, q, k)
        np.testing.assert_array_equal(ids, ref_i)
        np.testing.assert_allclose(scores, ref_s, atol=1e-5)
    # the full ranking: equal up to swaps of near-ties that float32 rounding may order either way
    scores, ids = idx.search(q, 600)
    ref_s, ref_i = numpy_topk(x, q, 600)
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)
    differ = ids != ref_i
    assert differ.mean() < 0.001
    gaps = np.abs(np.take_along_axis(q.astype(np.float64) @ x.T.astype(np.float64), ids, 1) - ref_s)
    assert (gaps[differ] < 1e-6).all()
    # the tie group cut at the k-th place keeps the lowest ids, best-first order within the tie
    _, ids = idx.search(q[:1], 3)
    assert ids.tolist() == [[3, 50, 77]]


def test_flat_tie_at_boundary_many_identical_vectors():
    x = np.zeros((100, 8), np.float32)
    x[:, 0] = 1.0
    q = np.repeat(x[:1], 30, axis=0)
    scores, ids = build_index("flat", x).search(q, 5)
    assert (ids == np.arange(5)).all()
    assert (scores == 1.0).all()


@pytest.mark.parametrize("kind,params", [("hnsw", {}), ("ivf", {}), ("ivf", {"nlist": 64, "nprobe": 8})])
def test_approximate_recall_at_10_vs_flat(kind, params):
    rng = np.random.default_rng(1)
    x = clustered(rng, 5000, 64)
    q = clustered(rng, 200, 64)
    _, exact = build_index("flat", x).search(q, 10)
    idx = build_index(kind, x, **params)
    _, approx = idx.search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    print(f"\n{kind} {idx.params()}: recall@10 vs flat = {recall:.3f}")
    assert recall >= 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_padding_when_k_exceeds_count(kind):
    x = unit_rows(np.random.default_rng(2), 5, 16)
    idx = build_index(kind, x)
    scores, ids = idx.search(x[:2], 8)
    assert scores.shape == ids.shape == (2, 8)
    assert sorted(ids[0, :5].tolist()) == [0, 1, 2, 3, 4]
    assert (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert ids[0, 0] == 0 and ids[1, 0] == 1
    assert ids.dtype == np.int64 and scores.dtype == np.float32


def test_empty_flat_index_pads_everything():
    idx = build_index("flat", np.zeros((0, 8), np.float32))
    scores, ids = idx.search(np.ones((3, 8), np.float32) / np.sqrt(8), 4)
    assert (ids == -1).all() and np.isneginf(scores).all()
    with pytest.raises(LabError, match="0 vectors"):
        build_index("ivf", np.zeros((0, 8), np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path):
    rng = np.random.default_rng(3)
    x = clustered(rng, 2000, 32)
    q = clustered(rng, 50, 32)
    idx = build_index(kind, x)
    path = idx.save(tmp_path / "sub" / f"{kind}.faiss")
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["kind"] == kind and meta["dim"] == 32 and meta["count"] == 2000
    assert meta["params"] == idx.params()
    assert idx.size_bytes() == path.stat().st_size == meta["bytes"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    again = load_index(path)
    assert (again.kind, again.params(), again.dim, again.count) == (kind, idx.params(), 32, 2000)
    s1, i1 = idx.search(q, 10)
    s2, i2 = again.search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


def test_load_detects_mismatched_files(tmp_path):
    x = unit_rows(np.random.default_rng(4), 100, 8)
    a = build_index("flat", x).save(tmp_path / "a.faiss")
    build_index("flat", x[:50]).save(tmp_path / "b.faiss")
    (tmp_path / "b.faiss").replace(a)  # index file of one save, sidecar of another
    with pytest.raises(LabError, match="do not match its sidecar"):
        load_index(a)
    with pytest.raises(LabError, match="missing"):
        load_index(tmp_path / "nothing.faiss")


def test_ivf_lowers_nlist_when_too_few_vectors():
    x = unit_rows(np.random.default_rng(5), 30, 16)
    with pytest.warns(UserWarning, match="lowering nlist to 30"):
        idx = build_index("ivf", x, nlist=100, nprobe=4)
    assert idx.params() == {"nlist": 30, "nprobe": 4}
    _, ids = idx.search(x, 1)
    assert (ids[:, 0] == np.arange(30)).all()


def test_ivf_default_nlist_scales_with_count():
    x = unit_rows(np.random.default_rng(6), 5000, 16)
    assert build_index("ivf", x).params()["nlist"] == 128  # min(4 * sqrt(5000), 5000 // 39)


def test_search_params_change_without_rebuild():
    rng = np.random.default_rng(7)
    x = clustered(rng, 3000, 32)
    idx = build_index("hnsw", x, M=16, ef_search=16)
    idx.set_search_params(ef_search=128)
    assert idx.params() == {"M": 16, "ef_construction": 200, "ef_search": 128}
    with pytest.raises(ConfigError, match="cannot change after the build"):
        idx.set_search_params(M=8)
    with pytest.raises(ConfigError):
        build_index("flat", x).set_search_params(nprobe=3)


def test_errors_name_what_exists():
    x = unit_rows(np.random.default_rng(8), 10, 8)
    with pytest.raises(RegistryError, match="Unknown index kind 'annoy'. Available: flat, hnsw, ivf"):
        build_index("annoy", x)
    with pytest.raises(ConfigError, match="unknown parameter.*efSearch.*Accepted: M, ef_construction, ef_search"):
        build_index("hnsw", x, efSearch=10)
    with pytest.raises(ConfigError, match="M must be a positive integer"):
        build_index("hnsw", x, M=0)
    with pytest.raises(ConfigError, match="device"):
        build_index("flat", x, device="tpu")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        build_index("flat", x).search(x, 0)
    with pytest.raises(ValueError, match="shape"):
        build_index("flat", x).search(np.ones((2, 9), np.float32), 1)


def test_unnormalised_vectors_warn():
    with pytest.warns(UserWarning, match="not L2-normalised"):
        build_index("flat", np.full((4, 8), 2.0, np.float32))


def test_auto_device_never_fails_without_gpu():
    x = unit_rows(np.random.default_rng(9), 20, 8)
    for kind in KINDS:
        idx = build_index(kind, x, device="auto")
        assert idx.device == ("cuda" if gpu_available() and kind != "hnsw" else "cpu")
    if not gpu_available():
        with pytest.raises(LabError, match="FAISS sees no GPU"):
            build_index("flat", x, device="cuda")


class _FakeGpuFaiss:
    """Stand-ins for FAISS's GPU calls: the 'GPU index' is the CPU index itself."""

    moved = 0

    class StandardGpuResources:
        pass

    @staticmethod
    def get_num_gpus() -> int:
        return 1

    @classmethod
    def index_cpu_to_gpu(cls, res, device, index):
        assert isinstance(res, cls.StandardGpuResources) and device == 0
        cls.moved += 1
        return index

    @staticmethod
    def index_gpu_to_cpu(index):
        return index


def test_gpu_code_path_with_fake_gpu_faiss(monkeypatch, tmp_path):
    """The GPU glue (resources, cpu->gpu, gpu->cpu for saving) without a GPU: a faked faiss-gpu."""
    import faiss

    fake = _FakeGpuFaiss
    for name in ("StandardGpuResources", "get_num_gpus", "index_cpu_to_gpu", "index_gpu_to_cpu"):
        monkeypatch.setattr(faiss, name, getattr(fake, name), raising=False)
    monkeypatch.setattr(lab_index, "_GPU_RESOURCES", None)
    x = clustered(np.random.default_rng(10), 500, 16)
    for kind in ("flat", "ivf"):
        idx = build_index(kind, x, device="auto")
        assert idx.device == "cuda"
        _, ids = idx.search(x[:5], 1)
        assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
        again = load_index(idx.save(tmp_path / f"{kind}.faiss"), device="cuda")
        assert again.device == "cuda"
    assert fake.moved == 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert build_index("hnsw", x, device="cuda").device == "cpu"
    assert any("no FAISS GPU implementation" in str(w.message) for w in caught)
