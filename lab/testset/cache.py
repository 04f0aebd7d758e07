"""The generation cache: content-addressed replies, on disk, so a rerun or a resumed run repeats no call.

A key is the sha256 of everything that changes a reply (the judge cache's rule,
:mod:`lab.judge.cache`): the generator's identity (backend, model spec and the model's content
revision, endpoint), the prompt version, the generation parameters and the prompt itself (which holds
the passage text). Replies are stored as soon as each batch returns, so Ctrl-C loses at most the
batch in flight. One SQLite file (``<lab cache>/testset_generations.sqlite``, ``LAB_CACHE_DIR``).

:class:`CachedGenerator` puts the cache in front of a backend that it builds only on the first miss:
a fully cached rerun loads no model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.config.generation import BackendSpec, backend_spec
from lab.generate import Backend, GenParams, Prompt, make_backend
from lab.kvstore import SqliteStore

log = logging.getLogger(__name__)
FILE_NAME = "testset_generations.sqlite"


def generator_identity(spec: BackendSpec) -> dict[str, Any]:
    """Backend, model spec, the model's content revision (local models) and endpoint: what names
    the generator in the cache key and in the test set's meta."""
    ident: dict[str, Any] = {"backend": spec.backend, "model": spec.model, "revision": None}
    model = spec.model
    if isinstance(model, str) and not model.startswith(("http://", "https://")) \
            and spec.backend not in ("openai", "vllm-server"):
        from lab.models import resolve

        try:
            ident["revision"] = resolve(model).revision
        except Exception as exc:  # noqa: BLE001 - the backend raises the real error when it loads
            log.debug("no revision for %s: %s", model, exc)
    if spec.base_url:
        ident["base_url"] = spec.base_url
    if spec.options:
        ident["options"] = dict(sorted(spec.options.items()))
    return ident


def generator_name(spec: BackendSpec) -> str:
    """The test set's ``generator`` column: ``hf:<model>`` for transformers, ``<backend>:<model>`` else."""
    prefix = "hf" if spec.backend == "transformers" else spec.backend
    return f"{prefix}:{spec.model}"


def generation_key(identity: Mapping[str, Any], prompt_version: str, params: GenParams, prompt: Prompt) -> str:
    blob = json.dumps({"generator": identity, "prompt_version": prompt_version, "params": params.to_dict(),
                       "prompt": prompt}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationCache(SqliteStore):
    """Replies by key (:class:`lab.kvstore.SqliteStore`); ``hits`` and ``misses`` count lookups since creation."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from lab.models import cache_dir

            path = cache_dir() / FILE_NAME
        super().__init__(path, "generations", "reply")

    get_many = SqliteStore.get_texts
    put_many = SqliteStore.put_texts


class CachedGenerator:
    """Replies to prompts through the cache; misses go to the backend in batches of ``batch_size``,
    each batch stored as it returns.

    Parameters
    ----------
    spec : BackendSpec or mapping
        The backend (:func:`lab.generate.make_backend`), built on the first miss.
    params : GenParams
    prompt_version : str
    cache : GenerationCache or None
        None: no cache (every call goes to the backend).
    backend : Backend or None
        An already built backend (tests pass a fake); ``identity`` then names it.
    identity : mapping or None
        Overrides :func:`generator_identity` (a fake backend has no model to resolve).
    """

    def __init__(self, spec: BackendSpec | Mapping[str, Any], params: GenParams, prompt_version: str, *,
                 cache: GenerationCache | None, backend: Backend | None = None,
                 identity: Mapping[str, Any] | None = None) -> None:
        self.spec = backend_spec(spec)
        self.params = params
        self.prompt_version = prompt_version
        self.cache = cache
        self._backend = backend
        self.identity = dict(identity) if identity is not None else generator_identity(self.spec)
        self.calls = 0            # backend calls (batches)
        self.generated = 0        # prompts answered by the backend
        self.cached = 0           # prompts answered from the cache
        self.seconds = 0.0        # wall time inside the backend (model loading included)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            t = time.perf_counter()
            self._backend = make_backend(self.spec)
            self.seconds += time.perf_counter() - t
        return self._backend

    def key(self, prompt: Prompt) -> str:
        return generation_key(self.identity, self.prompt_version, self.params, prompt)

    def replies(self, prompts: Sequence[Prompt]) -> list[str]:
        """One reply per prompt, in order."""
        keys = [self.key(p) for p in prompts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        self.cached += sum(k in found for k in keys)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        by_key = {k: p for k, p in zip(keys, prompts, strict=True)}
        size = max(1, self.spec.batch_size)
        for start in range(0, len(todo), size):
            part = todo[start:start + size]
            t = time.perf_counter()
            gens = self.backend.generate([by_key[k] for k in part], self.params)
            self.seconds += time.perf_counter() - t
            self.calls += 1
            self.generated += len(part)
            fresh = {k: g.text for k, g in zip(part, gens, strict=True)}
            if self.cache is not None:
                self.cache.put_many(fresh)   # stored now: an interrupt later does not lose this batch
            found.update(fresh)
        return [found[k] for k in keys]

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
