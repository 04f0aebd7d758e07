"""Embedders and the content-addressed embedding store shared by every study.

A vector is stored under ``sha256(text)`` inside a namespace named by the embedder's
*fingerprint*: everything that changes a vector (model identity and the digest of its weights,
pooling, normalisation, max sequence length, query/document prefix). The chunking study, the
retrieval sweep and the fine-tune study's RAG arms call the same :class:`CachedEmbedder`, so a text embedded
once is never embedded again, and no two stages can disagree about a vector (no train/serve skew).

The store is one SQLite file per namespace (``<cache>/embeddings/<fingerprint>.sqlite``): atomic
batched writes survive a killed process (everything committed before the kill is kept), and several
processes (Ray workers) may read and write it at once; a store pickles without its connections.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lab.errors import LabError
from lab.registry import Registry

_WORD = re.compile(r"\w+")


class Embedder(Protocol):
    """Turns texts into float32 vectors (rows). Implementations do no caching themselves."""

    name: str

    @property
    def dim(self) -> int: ...

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the vectors; hashed into the store's namespace."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` as a ``(len(texts), dim)`` float32 array."""


#: Embedder factories by kind: ``sentence-transformers`` (default for embedding models),
#: ``hf-mean`` (any HF encoder, mean pooling), ``openai`` (an OpenAI-compatible endpoint).
EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("embedders")


@EMBEDDERS.register("sentence-transformers")
class SentenceTransformerEmbedder:
    """A sentence-transformers model from the model store (built-in name, local dir or hub id)."""

    def __init__(self, model: str = "all-minilm-l6-v2", *, batch_size: int = 64, normalize: bool = True,
                 max_seq_length: int | None = None, prefix: str = "", device: str = "cpu",
                 show_progress: bool = False) -> None:
        from lab.models import load_sentence_transformer, resolve

        self.ref = resolve(model)
        self.name = model
        self.batch_size, self.normalize, self.prefix = batch_size, normalize, prefix
        self.show_progress = show_progress
        self.model = load_sentence_transformer(self.ref, device=device)
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def fingerprint(self) -> dict[str, Any]:
        from lab.models import weights_digest

        # weights by content, not by name: the same model reached by name or by path shares vectors
        return {"kind": "sentence-transformers",
                "weights": weights_digest(self.ref.path),
                "modules": [type(m).__name__ for m in self.model], "normalize": self.normalize,
                "max_seq_length": int(self.model.max_seq_length), "prefix": self.prefix}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [self.prefix + t for t in texts] if self.prefix else list(texts)
        out = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=self.normalize,
                                convert_to_numpy=True, show_progress_bar=self.show_progress)
        return np.asarray(out, dtype=np.float32)


@EMBEDDERS.register("openai")
class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (``http://host:port/v1#model``)."""

    def __init__(self, model: str, *, batch_size: int = 128, normalize: bool = True, api_key: str = "EMPTY",
                 prefix: str = "", dim: int | None = None) -> None:
        from lab.models import resolve

        self.ref = resolve(model)
        if self.ref.kind != "endpoint":
            raise LabError(f"openai embedder: {model!r} is not an endpoint; use 'http://host:port/v1#model'")
        from openai import OpenAI

        self.name, self.batch_size, self.normalize, self.prefix = model, batch_size, normalize, prefix
        self.client = OpenAI(base_url=self.ref.base_url, api_key=api_key)
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    def fingerprint(self) -> dict[str, Any]:
        # An endpoint's weights are invisible from here: the served model name is its identity.
        return {"kind": "openai", "base_url": self.ref.base_url, "model": self.ref.model,
                "normalize": self.normalize, "prefix": self.prefix}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = [self.prefix + t for t in texts[i:i + self.batch_size]]
            resp = self.client.embeddings.create(model=self.ref.model, input=batch)
            rows.extend(d.embedding for d in sorted(resp.data, key=lambda d: d.index))
        out = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        return _l2(out) if self.normalize else out


@EMBEDDERS.register("hf-mean")
class HFMeanPoolingEmbedder:
    """Any Hugging Face encoder (``AutoModel``) with attention-masked mean pooling."""

    def __init__(self, model: str, *, batch_size: int = 32, normalize: bool = True, max_seq_length: int = 512,
                 prefix: str = "", device: str = "cpu") -> None:
        import torch  # noqa: F401  (fail early with a clear ImportError)
        from transformers import AutoModel, AutoTokenizer

        from lab.models import resolve

        self.ref = resolve(model)
        if self.ref.path is None:
            raise LabError(f"hf-mean embedder: {model!r} is an endpoint; use the 'openai' embedder")
        self.name, self.batch_size, self.normalize = model, batch_size, normalize
        self.max_seq_length, self.prefix, self.device = max_seq_length, prefix, device
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.ref.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.ref.path), local_files_only=True).to(device).eval()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def fingerprint(self) -> dict[str, Any]:
        from lab.models import weights_digest

        return {"kind": "hf-mean", "model": self.name, "weights": weights_digest(self.ref.path),
                "normalize": self.normalize, "max_seq_length": self.max_seq_length, "prefix": self.prefix}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = [self.prefix + t for t in texts[i:i + self.batch_size]]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length,
                                     return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().cpu().numpy())
        vecs = np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return _l2(vecs) if self.normalize else vecs.astype(np.float32)


class HashedBagOfWords:
    """``embed(texts)``: hashed word counts (crc32 of lower-cased ``\\w+`` words), L2-normalised.

    The vectors of the ``hashed`` embedder, and the model-free ``embed`` callable of the
    ``semantic`` and ``cluster`` chunkers in tests and timings.

    Texts without a word map to the unit vector on the last dimension, so every row has norm 1.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashed-bow-{dim}"

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode("utf-8")) % self.dim] += 1.0
        out[~out.any(axis=1), self.dim - 1] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@EMBEDDERS.register("hashed")
class HashedEmbedder:
    """Hashed bag of words (``hashed-<dim>``): a deterministic, model-free lexical baseline for tests."""

    def __init__(self, model: str = "hashed-256", **_: Any) -> None:
        try:
            dim = int(model.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            raise LabError(f"hashed embedder: spec must look like 'hashed-256', got {model!r}") from None
        self.name, self._bow = model, HashedBagOfWords(dim)

    @property
    def dim(self) -> int:
        return self._bow.dim

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "hashed", "dim": self._bow.dim, "version": 1}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._bow(list(texts))


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def make_embedder(spec: str, kind: str | None = None, **options: Any) -> Embedder:
    """Build an embedder from a model spec; ``kind`` defaults by spec (endpoint -> ``openai``).

    Raises
    ------
    RegistryError
        Unknown ``kind``; the message lists the registered kinds.
    """
    if kind is None:
        if spec.startswith(("http://", "https://")):
            kind = "openai"
        elif spec.startswith("hashed-"):
            kind = "hashed"
        else:
            kind = "sentence-transformers"
    return EMBEDDERS.get(kind)(spec, **options)


# --------------------------------------------------------------------------- the store


@dataclass
class StoreStats:
    """Counters of one :class:`EmbeddingStore` (this process)."""

    hits: int = 0
    misses: int = 0          # texts embedded (distinct within each call)
    bytes_written: int = 0
    bytes_read: int = 0
    per_namespace: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "bytes_written": self.bytes_written,
                "bytes_read": self.bytes_read}


def text_key(text: str) -> bytes:
    """The content address of a text (sha256 of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def namespace(fingerprint: dict[str, Any]) -> str:
    """24 hex digits naming the store namespace of an embedder fingerprint."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:24]


class EmbeddingStore:
    """Content-addressed on-disk vectors, one SQLite file per embedder fingerprint.

    Parameters
    ----------
    root:
        Folder of the store; defaults to ``<lab cache>/embeddings`` (``LAB_CACHE_DIR``).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from lab.models import cache_dir

            root = cache_dir() / "embeddings"
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.stats = StoreStats()
        self._lock = threading.Lock()
        self._conns: dict[tuple[int, int, str], sqlite3.Connection] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Connections and locks do not travel (Ray workers, multiprocessing): a copy reopens lazily.
        state = self.__dict__.copy()
        state["_conns"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _db(self, ns: str, fingerprint: dict[str, Any] | None = None) -> sqlite3.Connection:
        # One connection per (process, thread, namespace): SQLite connections must not cross a fork
        # or be shared between threads.
        key = (os.getpid(), threading.get_ident(), ns)
        con = self._conns.get(key)
        if con is None:
            con = sqlite3.connect(self.root / f"{ns}.sqlite", timeout=60)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, dim INTEGER, vec BLOB)")
            con.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            con.commit()
            self._conns[key] = con
        if fingerprint is not None:
            with con:
                con.execute("INSERT OR IGNORE INTO meta VALUES ('fingerprint', ?)",
                            (json.dumps(fingerprint, sort_keys=True),))
        return con

    def close(self) -> None:
        """Close this process's connections (they reopen on the next use)."""
        for key, con in list(self._conns.items()):
            if key[0] == os.getpid():
                con.close()
            del self._conns[key]

    def get_many(self, ns: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """Stored vectors of ``keys`` (missing keys are absent from the result)."""
        con, found = self._db(ns), {}
        for i in range(0, len(keys), 900):  # SQLite's bound-parameter limit
            chunk = list(keys[i:i + 900])
            q = f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})"
            for key, dim, blob in con.execute(q.replace("SELECT key, vec", "SELECT key, dim, vec"), chunk):
                if len(blob) != 4 * dim:
                    raise LabError(f"embedding store {self.root / (ns + '.sqlite')}: a vector of dim {dim} has "
                                   f"{len(blob)} bytes (corrupt); delete the file to rebuild it")
                found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
                with self._lock:
                    self.stats.bytes_read += len(blob)
        return found

    def put_many(self, ns: str, items: dict[bytes, np.ndarray]) -> None:
        """Store vectors in one transaction (all or nothing)."""
        rows = [(k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        con = self._db(ns)
        with con:
            con.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)", rows)
        with self._lock:
            self.stats.bytes_written += sum(len(r[2]) for r in rows)

    def count(self, ns: str) -> int:
        return int(self._db(ns).execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def size_bytes(self) -> int:
        """Bytes on disk of the whole store."""
        return sum(p.stat().st_size for p in self.root.glob("*.sqlite*"))

    def embed(self, embedder: Embedder, texts: Sequence[str], *, batch_size: int = 1024,
              progress: bool = False) -> np.ndarray:
        """Vectors of ``texts``: stored ones read back, the rest embedded once and stored.

        Duplicate texts within ``texts`` are embedded once. Misses are embedded and committed in
        batches of ``batch_size`` so a killed run keeps what it finished.
        """
        fp = embedder.fingerprint()
        ns = namespace(fp)
        self._db(ns, fp)
        keys = [text_key(t) for t in texts]
        found = self.get_many(ns, list(dict.fromkeys(keys)))
        missing: dict[bytes, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in found and k not in missing:
                missing[k] = t
        hits = len(set(keys)) - len(missing)
        with self._lock:
            self.stats.hits += hits
            self.stats.misses += len(missing)
            counters = self.stats.per_namespace.setdefault(ns, {"hits": 0, "misses": 0})
            counters["hits"] += hits
            counters["misses"] += len(missing)
        todo = list(missing.items())
        bar = None
        if progress and todo:
            from lab.progress import bar as progress_bar

            bar = progress_bar(total=len(todo), desc=f"embedding ({embedder.name})", unit="text")
        for i in range(0, len(todo), batch_size):
            part = todo[i:i + batch_size]
            vecs = embedder.encode([t for _, t in part])
            if vecs.shape[0] != len(part):
                raise LabError(f"embedder {embedder.name!r} returned {vecs.shape[0]} vectors for {len(part)} texts")
            new = {k: v for (k, _), v in zip(part, vecs, strict=True)}
            self.put_many(ns, new)
            found.update(new)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


class CachedEmbedder:
    """An embedder bound to a store: ``cached(texts) -> vectors``; the one callable studies share."""

    def __init__(self, embedder: Embedder, store: EmbeddingStore | None = None, progress: bool = False) -> None:
        self.embedder = embedder
        self.store = store or EmbeddingStore()
        self.progress = progress

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def fingerprint(self) -> dict[str, Any]:
        return self.embedder.fingerprint()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.store.embed(self.embedder, texts, progress=self.progress)
