"""A prompted judge: a rubric sent through any :mod:`lab.generate` backend.

How the verdict is asked for (``mode``), by what the backend supports:

``choice``  the backend scores each verdict word (``GenParams.choices``; transformers, llama.cpp,
            vLLM): the verdict can never fail to parse, and where the backend returns the words'
            log-probabilities (transformers, llama.cpp) the judgment carries ``score`` = P(positive);
            a ``threshold`` on that score (chosen on training items, see
            :func:`lab.metrics.agreement.best_threshold`) then decides instead of the argmax.
``json``    output constrained to the rubric's JSON schema (OpenAI-compatible servers, vLLM).
``text``    free text asked to be JSON, for backends with neither; parsed with one repair attempt.
``auto``    ``choice`` where the backend scores the words (``choice_scores``), else ``json``, else a
            plain ``choice``, else ``text`` (default).

Decoding is greedy by default. Backend failures (an endpoint's timeout after the client's own
retries) are retried ``retries`` times per item with backoff, then recorded as generation failures.
Every judgment is cached (:class:`lab.judge.cache.JudgmentCache`) by the judge's identity (backend,
model spec and content revision), the rubric id and digest, the input and the decoding settings.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.config import BackendSpec
from lab.errors import ConfigError
from lab.generate import Backend, GenerationError, GenParams, make_backend
from lab.judge.base import JUDGES, JudgeInput, Judgment
from lab.judge.cache import JudgmentCache, cache_key
from lab.judge.parse import parse_verdict
from lab.judge.rubric import Rubric, load_rubric

log = logging.getLogger(__name__)
MODES = ("auto", "choice", "json", "text")


def _model_identity(config: Mapping[str, Any] | BackendSpec) -> dict[str, Any]:
    if isinstance(config, BackendSpec):   # the same identity as its plain form (the cache keys stay)
        config = config.model_dump()
    spec = config.get("model")
    ident: dict[str, Any] = {"backend": config.get("backend"), "model": spec if isinstance(spec, str) else repr(spec),
                             "revision": None}
    if isinstance(spec, str) and not spec.startswith(("http://", "https://")) and config.get("backend") not in (
            "openai", "vllm-server"):
        from lab.models import resolve

        try:
            ident["revision"] = resolve(spec).revision
        except Exception as exc:  # noqa: BLE001 - the backend will raise the real error when it loads
            log.debug("no revision for %s: %s", spec, exc)
    if config.get("base_url"):
        ident["base_url"] = config["base_url"]
    return ident


def choice_probability(logprobs: Mapping[str, float], labels: Mapping[str, int]) -> float:
    """P(positive) from each verdict word's log-probability (normalised over the words)."""
    top = max(logprobs.values())
    weights = {w: math.exp(lp - top) for w, lp in logprobs.items()}
    total = sum(weights.values())
    return sum(v for w, v in weights.items() if labels.get(w) == 1) / total


@JUDGES.register("prompted")
class PromptedJudge:
    """A rubric asked of a model.

    Parameters
    ----------
    name : str
        How reports name this judge.
    rubric : str or Rubric
        A built-in rubric name, a YAML path, or a :class:`Rubric`.
    backend : mapping or Backend
        A :func:`lab.generate.make_backend` mapping (built on first use), or a built backend
        (then ``identity`` should name its model, for the cache).
    mode : str
        One of :data:`MODES`.
    max_new_tokens : int
        For ``json`` and ``text`` modes.
    threshold : float or None
        Decide ``score >= threshold`` (``choice`` mode with scores); None = the most likely word.
    retries : int
        Per-item retries after a backend failure.
    batch_size : int
        Items per call to the backend (the backend batches or runs them concurrently).
    cache : JudgmentCache, None or False
        None = the shared cache; False = no cache.
    """

    kind = "prompted"

    def __init__(self, name: str, rubric: str | Path | Rubric, backend: BackendSpec | Mapping[str, Any] | Backend, *,
                 mode: str = "auto", max_new_tokens: int = 96, threshold: float | None = None, retries: int = 2,
                 batch_size: int = 32, cache: JudgmentCache | None | bool = None,
                 identity: dict[str, Any] | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"judge {name!r}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.name = name
        self.rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
        self.rubric_id = self.rubric.id
        self.task = self.rubric.task
        spec = isinstance(backend, Mapping | BackendSpec)
        self._config: Any = (backend if isinstance(backend, BackendSpec) else dict(backend)) if spec else None
        self._backend: Backend | None = None if spec else backend
        self._identity = identity
        self.requested_mode = mode
        self.max_new_tokens = max_new_tokens
        self.threshold = threshold
        self.retries = retries
        self.batch_size = batch_size
        self.cache = JudgmentCache() if cache is None or cache is True else (cache or None)

    # ------------------------------------------------------------------ set-up
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            assert self._config is not None
            self._backend = make_backend(self._config)
        return self._backend

    @property
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = _model_identity(self._config) if self._config is not None else \
                {"backend": getattr(self._backend, "name", "?"), "model": repr(self._backend)}
        return self._identity

    @property
    def mode(self) -> str:
        if self.requested_mode != "auto":
            return self.requested_mode
        supports = self.backend.supports
        if "choice_scores" in supports:     # the verdict words scored: a probability, never a parse failure
            return "choice"
        if "json_schema" in supports:       # a verdict with its reason (and spans)
            return "json"
        return "choice" if "choice" in supports else "text"

    def params(self) -> GenParams:
        mode = self.mode
        if mode == "choice":
            return GenParams(max_new_tokens=8, choices=self.rubric.choices)
        if mode == "json":
            return GenParams(max_new_tokens=self.max_new_tokens, json_schema=self.rubric.output_schema())
        return GenParams(max_new_tokens=self.max_new_tokens)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "rubric": self.rubric_id, "rubric_digest": self.rubric.digest,
                "task": self.task, **{f"model_{k}": v for k, v in self.identity.items()}, "mode": self.mode,
                "threshold": self.threshold}

    # ------------------------------------------------------------------ judging
    def _key(self, item: JudgeInput, params: GenParams) -> str:
        return cache_key(self.identity, self.rubric_id, self.rubric.digest, item.digest(),
                         {"mode": self.mode, **params.to_dict()})

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        """One judgment per item, in order (cached ones are not recomputed)."""
        params = self.params()
        keys = [self._key(i, params) for i in items]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        first: dict[str, int] = {}
        for n, k in enumerate(keys):
            if k not in found:
                first.setdefault(k, n)      # an item repeated in the input is judged once
        todo = list(first.values())
        fresh: dict[str, Judgment] = {}
        from lab.progress import bar

        steps = bar(total=len(todo), desc=f"judge {self.name}", unit="item", enable=len(todo) > self.batch_size)
        for start in range(0, len(todo), self.batch_size):
            part = todo[start:start + self.batch_size]
            for n, j in zip(part, self._run([items[n] for n in part], params), strict=True):
                fresh[keys[n]] = j
            if self.cache is not None:
                self.cache.put_many({keys[n]: fresh[keys[n]] for n in part})
            steps.update(len(part))
        steps.close()
        out = [found.get(k) or fresh[k] for k in keys]
        return [self._decide(j) for j in out]

    def _decide(self, j: Judgment) -> Judgment:
        if self.threshold is not None and j.score is not None:
            j.verdict = int(j.score >= self.threshold)
        return j

    def _run(self, items: list[JudgeInput], params: GenParams) -> list[Judgment]:
        prompts = [self.rubric.render(i.as_dict(), self.mode) for i in items]
        t0 = time.perf_counter()
        try:
            gens = self.backend.generate(prompts, params)
            return [self._judgment(g.text, g.choice_logprobs, g.latency_s) for g in gens]
        except GenerationError as exc:
            log.warning("judge %s: a batch of %d failed (%s); retrying item by item", self.name, len(items), exc)
        out = []
        for prompt in prompts:
            for attempt in range(self.retries + 1):
                try:
                    g = self.backend.generate([prompt], params)[0]
                    out.append(self._judgment(g.text, g.choice_logprobs, g.latency_s))
                    break
                except GenerationError as exc:
                    if attempt == self.retries:
                        out.append(Judgment(None, None, None, str(exc), self.name, self.rubric_id,
                                            error=f"generation failed after {self.retries + 1} attempt(s): {exc}",
                                            error_kind="generation", latency_s=time.perf_counter() - t0))
                    else:
                        time.sleep(min(8.0, 0.5 * 2 ** attempt))
        return out

    def _judgment(self, text: str, logprobs: dict[str, float] | None, latency: float) -> Judgment:
        if self.mode == "choice":
            score = choice_probability(logprobs, self.rubric.labels) if logprobs else None
            raw = json.dumps({"choice": text, "logprobs": logprobs}) if logprobs else text
            if text in self.rubric.labels:
                return Judgment(self.rubric.labels[text], score, text, raw, self.name, self.rubric_id,
                                latency_s=latency)
        parsed = parse_verdict(text, self.rubric)
        score = None
        if self.mode == "choice" and logprobs:
            score = choice_probability(logprobs, self.rubric.labels)
        if parsed.verdict is None:
            return Judgment(None, None, None, text, self.name, self.rubric_id, error=parsed.error,
                            error_kind="parse", latency_s=latency)
        return Judgment(parsed.verdict, score, parsed.label, text, self.name, self.rubric_id, reason=parsed.reason,
                        spans=list(parsed.spans) or None, repaired=parsed.repaired, latency_s=latency)

    def close(self) -> None:
        if self._backend is not None and self._config is not None:
            self._backend.close()
            self._backend = None
