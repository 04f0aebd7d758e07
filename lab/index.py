"""Vector indexes (FAISS) over float32 L2-normalised rows, searched by inner product (= cosine).

Kinds, in the registry :data:`INDEXES`:

``flat``
    ``IndexFlatIP``: exact. Ties are broken by build order, also at the k-th place (see
    :meth:`VectorIndex.search`), so results equal a brute-force numpy top-k.
``hnsw``
    ``IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT``; ``M``, ``ef_construction``, ``ef_search``.
    CPU only (FAISS has no GPU HNSW). Graph construction runs on several OpenMP threads, so two
    builds of the same vectors may differ slightly; a saved index reloads identically.
``ivf``
    ``IndexIVFFlat`` (inner product), trained by k-means on the vectors themselves; ``nlist``
    (None: ``min(4 * sqrt(count), count // 39)``, at least 1) and ``nprobe``. When fewer vectors than ``nlist`` are given,
    ``nlist`` is lowered to the vector count with a warning.

Device: ``"auto"`` (default) uses a GPU when the installed FAISS is a GPU build that sees one
(``faiss.get_num_gpus() > 0``) and the kind supports it, else the CPU, and never fails for lack
of a GPU; ``"cuda"`` insists (LabError without a GPU build); ``"cpu"`` never uses one.

Saved form: ``faiss.write_index`` of the CPU index at ``path`` and a JSON sidecar at
``path + ".json"`` (kind, params, dim, count, byte size and sha256 of the index file), each
written atomically, the sidecar last. FAISS is imported inside functions, so importing this module
is cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab.errors import ConfigError, LabError
from lab.io import atomic_path, write_json
from lab.registry import Registry

log = logging.getLogger(__name__)

#: Format version of the JSON sidecar; bump when its meaning changes.
SIDECAR_FORMAT = 1
DEVICES = ("auto", "cpu", "cuda")


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a core dependency
        raise LabError("lab.index needs FAISS: pip install faiss-cpu (or faiss-gpu-cu12 for GPUs)") from e
    return faiss


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class IndexKind:
    """How to make one kind of index.

    Attributes
    ----------
    defaults:
        Every accepted parameter with its default; other keys are a ConfigError.
    create:
        ``create(dim, count, params) -> (untrained CPU faiss index, effective params)``.
    search_keys:
        Parameters that only affect search; :meth:`VectorIndex.set_search_params` may change them.
    apply_search:
        ``apply_search(faiss_index, params)`` sets the search-time parameters (CPU or GPU index).
    gpu:
        Whether FAISS can move this kind to a GPU.
    exact:
        Exhaustive search: ties at the k-th place are resolved by build order.
    """

    defaults: dict[str, Any]
    create: Callable[[int, int, dict[str, Any]], tuple[Any, dict[str, Any]]]
    search_keys: tuple[str, ...] = ()
    apply_search: Callable[[Any, dict[str, Any]], None] = lambda index, params: None
    gpu: bool = True
    exact: bool = False
    int_keys: tuple[str, ...] = field(default=())


#: Index kinds by name: ``flat``, ``hnsw``, ``ivf``. Plugins add :class:`IndexKind` objects
#: through the entry-point group ``lab.indexes``.
INDEXES: Registry[IndexKind] = Registry("indexes", item="index kind")


def _flat(dim: int, count: int, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    return _faiss().IndexFlatIP(dim), params


def _hnsw(dim: int, count: int, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params["ef_construction"]
    return index, params


def _hnsw_search(index: Any, params: dict[str, Any]) -> None:
    index.hnsw.efSearch = params["ef_search"]


def _ivf(dim: int, count: int, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    faiss = _faiss()
    if count == 0:
        raise LabError("ivf index: cannot train on 0 vectors; use 'flat' or 'hnsw' for an empty index")
    nlist, chosen = params["nlist"], True
    if nlist is None:
        # FAISS's rule of thumb is about 4 * sqrt(n) lists; k-means wants >= 39 points per list
        nlist = max(1, min(round(4 * math.sqrt(count)), count // 39))
    elif count < nlist:
        msg = (f"ivf index: {count} vectors are fewer than nlist={nlist}; lowering nlist to {count} "
               f"(k-means needs at least one vector per list)")
        log.warning(msg)
        warnings.warn(msg, stacklevel=3)
        nlist = count
    else:
        chosen = False
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.referenced_objects = [quantizer]  # keep the quantizer alive as long as the index
    if chosen:  # FAISS's "please provide at least 39 * nlist points" has nothing to add to ours
        index.cp.min_points_per_centroid = 1
    return index, {**params, "nlist": nlist}


def _ivf_search(index: Any, params: dict[str, Any]) -> None:
    index.nprobe = params["nprobe"]


INDEXES.add("flat", IndexKind(defaults={}, create=_flat, exact=True))
INDEXES.add("hnsw", IndexKind(defaults={"M": 32, "ef_construction": 200, "ef_search": 128}, create=_hnsw,
                              search_keys=("ef_search",), apply_search=_hnsw_search, gpu=False,
                              int_keys=("M", "ef_construction", "ef_search")))
INDEXES.add("ivf", IndexKind(defaults={"nlist": None, "nprobe": 16}, create=_ivf, search_keys=("nprobe",),
                             apply_search=_ivf_search, int_keys=("nlist", "nprobe")))


def index_kind(kind: str) -> IndexKind:
    """The :class:`IndexKind` called ``kind``.

    Raises
    ------
    RegistryError
        No such kind; the message lists the known ones.
    """
    return INDEXES.get(kind)


def index_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults of ``kind`` overridden by ``params``, checked.

    Raises
    ------
    RegistryError
        Unknown ``kind``; the message lists the known kinds.
    ConfigError
        A key that ``kind`` does not accept (the message lists the accepted ones), or a value that
        is not a positive integer.
    """
    spec = index_kind(kind)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise ConfigError(f"Index {kind!r} got unknown parameter(s) {', '.join(unknown)}. "
                          f"Accepted: {', '.join(spec.defaults) or '(none)'}")
    merged = {**spec.defaults, **params}
    for key in spec.int_keys:
        value = merged[key]
        if value is None and spec.defaults.get(key) is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"Index {kind!r}: {key} must be a positive integer, got {value!r}")
    return merged


# --------------------------------------------------------------------------- devices

_GPU_RESOURCES: Any = None


def gpu_available() -> bool:
    """True when the installed FAISS is a GPU build and sees at least one GPU."""
    faiss = _faiss()
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except RuntimeError:  # a GPU build without a driver may raise instead of returning 0
        return False


def _gpu_resources() -> Any:
    """One ``StandardGpuResources`` per process (it owns scratch memory; must outlive its indexes)."""
    global _GPU_RESOURCES
    if _GPU_RESOURCES is None:
        _GPU_RESOURCES = _faiss().StandardGpuResources()
    return _GPU_RESOURCES


def resolve_device(device: str, kind: str) -> str:
    """``"cpu"`` or ``"cuda"`` for an index of ``kind`` asked to run on ``device``.

    Raises
    ------
    ConfigError
        ``device`` is not one of auto, cpu, cuda.
    LabError
        ``device="cuda"`` but FAISS sees no GPU.
    """
    if device not in DEVICES:
        raise ConfigError(f"Index device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    has_gpu = gpu_available()
    if device == "cuda" and not has_gpu:
        raise LabError("Index device 'cuda' asked, but FAISS sees no GPU (faiss-cpu installed, or no driver). "
                       "Install faiss-gpu-cu12 on a GPU machine, or use device='auto' to fall back to the CPU.")
    if not has_gpu:
        return "cpu"
    if not index_kind(kind).gpu:
        if device == "cuda":
            msg = f"Index {kind!r} has no FAISS GPU implementation; building it on the CPU"
            log.warning(msg)
            warnings.warn(msg, stacklevel=3)
        return "cpu"
    return "cuda"


# --------------------------------------------------------------------------- the index


class VectorIndex:
    """A built FAISS index: ``search`` by inner product, ``save`` / :func:`load_index`.

    Attributes
    ----------
    kind, dim, count:
        Index kind, vector dimension and number of vectors (ids are ``0 .. count-1`` in build order).
    device:
        Where it runs: ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, kind: str, index: Any, params: dict[str, Any], dim: int, count: int, device: str) -> None:
        self.kind, self.dim, self.count, self.device = kind, dim, count, device
        self._index = index
        self._params = dict(params)
        self._gpu_res = _GPU_RESOURCES if device == "cuda" else None  # keep it alive with the index
        self._size: int | None = None

    def __repr__(self) -> str:
        return f"VectorIndex({self.kind!r}, dim={self.dim}, count={self.count}, device={self.device!r}, {self._params})"

    def params(self) -> dict[str, Any]:
        """The kind's effective parameters (defaults filled in, ``nlist`` after any lowering)."""
        return dict(self._params)

    def set_search_params(self, **params: Any) -> None:
        """Change search-time parameters (``ef_search`` for hnsw, ``nprobe`` for ivf) without a rebuild."""
        spec = index_kind(self.kind)
        bad = sorted(set(params) - set(spec.search_keys))
        if bad:
            raise ConfigError(f"Index {self.kind!r}: {', '.join(bad)} cannot change after the build. "
                              f"Search-time parameters: {', '.join(spec.search_keys) or '(none)'}")
        merged = index_params(self.kind, {**self._params, **params})
        spec.apply_search(self._index, merged)
        self._params, self._size = merged, None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows by inner product for each query row.

        Returns
        -------
        scores : (n_queries, k) float32
            Best first; ``-inf`` where there is no result.
        ids : (n_queries, k) int64
            Build-order positions; ``-1`` where there is no result (fewer than ``k`` vectors, or
            an approximate index found fewer). Equal scores come in build order; for ``flat`` this
            also decides which of several tied vectors take the last places.

        Raises
        ------
        ValueError
            ``k < 1`` or queries of the wrong dimension.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), got {np.shape(queries)}")
        n, kk = q.shape[0], min(int(k), self.count)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if n == 0 or kk == 0:
            return scores, ids
        s, i = self._exact_search(q, kk) if index_kind(self.kind).exact else self._index.search(q, kk)
        s, i = _order(s, i)
        scores[:, :kk], ids[:, :kk] = s, i
        return scores, ids

    def _exact_search(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive top-``kk`` where vectors tied with the kk-th one are chosen by build order.

        FAISS keeps some of several tied vectors at the boundary without a documented rule. Asking
        one more result reveals a tie at the boundary; only those rows are searched again with a
        growing k until the tie group is complete, then cut by (score desc, id asc).
        """
        k1 = min(kk + 1, self.count)
        s, i = self._index.search(q, k1)
        if k1 == kk:  # every vector returned: nothing outside to compete
            return s, i
        out_s, out_i = s[:, :kk].copy(), i[:, :kk].copy()
        s_sorted = -np.sort(-s, axis=1)  # FAISS returns best first, but be safe about order
        for r in np.flatnonzero(s_sorted[:, kk - 1] == s_sorted[:, kk]):
            tie, m = s_sorted[r, kk - 1], k1
            while True:
                m = min(2 * m, self.count)
                s2, i2 = self._index.search(q[r:r + 1], m)
                if m == self.count or s2[0].min() < tie:
                    break
            order = np.lexsort((i2[0], -s2[0]))[:kk]
            out_s[r], out_i[r] = s2[0, order], i2[0, order]
        return out_s, out_i

    def _cpu_index(self) -> Any:
        if self.device == "cuda":
            return _faiss().index_gpu_to_cpu(self._index)
        return self._index

    def size_bytes(self) -> int:
        """Bytes of the serialised index (what :meth:`save` writes, sidecar excluded)."""
        if self._size is None:
            self._size = int(_faiss().serialize_index(self._cpu_index()).size)
        return self._size

    def save(self, path: str | Path) -> Path:
        """Write the CPU index to ``path`` and its sidecar to ``path + '.json'``; returns ``path``."""
        faiss, path = _faiss(), Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self._cpu_index(), str(tmp))
            digest, size = _sha256(tmp), tmp.stat().st_size
        meta = {"format": SIDECAR_FORMAT, "kind": self.kind, "params": self._params, "dim": self.dim,
                "count": self.count, "bytes": size, "sha256": digest, "faiss_version": faiss.__version__}
        write_json(sidecar_path(path), meta, end="")
        self._size = size
        return path


def _order(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (score desc, id asc), missing results (id -1) last with score -inf."""
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
    key_ids = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    order = np.lexsort((key_ids, -scores), axis=-1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids.astype(np.int64), order, 1)


def build_index(kind: str, vectors: np.ndarray, *, device: str = "auto", **params: Any) -> VectorIndex:
    """Build an index of ``kind`` over ``vectors`` (rows: float32, L2-normalised).

    Parameters
    ----------
    kind:
        ``flat``, ``hnsw``, ``ivf`` or a plugin kind.
    vectors:
        ``(count, dim)`` array; row ``i`` gets id ``i``. Rows that are not unit length draw a
        warning (inner product is then not cosine, and HNSW quality suffers).
    device:
        ``auto`` (GPU if FAISS has one, else CPU), ``cpu`` or ``cuda``.
    **params:
        The kind's parameters (see :data:`INDEXES`).

    Raises
    ------
    RegistryError, ConfigError
        Unknown kind, unknown or invalid parameter, unknown device.
    LabError
        ``device="cuda"`` without a GPU; an ivf index over 0 vectors.
    ValueError
        ``vectors`` is not a 2-D array.
    """
    merged = index_params(kind, params)
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"vectors must be a 2-D (count, dim) array, got shape {x.shape}")
    count, dim = x.shape
    if count:
        norms = np.linalg.norm(x, axis=1)
        if float(np.abs(norms - 1).max()) > 1e-3:
            warnings.warn(f"build_index({kind!r}): vectors are not L2-normalised (norms {norms.min():.3g}.."
                          f"{norms.max():.3g}); inner product is not cosine similarity", stacklevel=2)
    where = resolve_device(device, kind)
    spec = index_kind(kind)
    cpu, merged = spec.create(dim, count, merged)
    index = _faiss().index_cpu_to_gpu(_gpu_resources(), 0, cpu) if where == "cuda" else cpu
    if count:
        if not index.is_trained:
            index.train(x)
        index.add(x)
    spec.apply_search(index, merged)
    log.info("built %s index: %d x %d on %s %s", kind, count, dim, where, merged)
    return VectorIndex(kind, index, merged, dim, count, where)


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of an index file: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def load_index(path: str | Path, *, device: str = "auto") -> VectorIndex:
    """Read an index written by :meth:`VectorIndex.save`.

    Raises
    ------
    LabError
        The index file or its sidecar is missing, or they disagree (size, checksum, dim, count):
        a save that was interrupted or files mixed from two saves.
    """
    faiss, path = _faiss(), Path(path)
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        raise LabError(f"{path}: index file or its sidecar {side.name} is missing; save it with VectorIndex.save")
    meta = json.loads(side.read_text(encoding="utf-8"))
    if meta.get("format") != SIDECAR_FORMAT:
        raise LabError(f"{side}: sidecar format {meta.get('format')!r}, this lab reads {SIDECAR_FORMAT}")
    if path.stat().st_size != meta["bytes"] or _sha256(path) != meta["sha256"]:
        raise LabError(f"{path}: contents do not match its sidecar {side.name} (interrupted save or mixed "
                       f"files); rebuild and save the index again")
    cpu = faiss.read_index(str(path))
    if cpu.d != meta["dim"] or cpu.ntotal != meta["count"]:
        raise LabError(f"{path}: index has dim {cpu.d} and {cpu.ntotal} vectors, sidecar says "
                       f"{meta['dim']} and {meta['count']}")
    kind = meta["kind"]
    params = index_params(kind, meta["params"])
    where = resolve_device(device, kind)
    index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, cpu) if where == "cuda" else cpu
    index_kind(kind).apply_search(index, params)
    return VectorIndex(kind, index, params, int(meta["dim"]), int(meta["count"]), where)


# --------------------------------------------------------------------------- small helpers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
