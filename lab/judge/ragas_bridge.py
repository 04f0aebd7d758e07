"""ragas through lab's own backends, with its parse failures counted instead of NaN.

ragas 0.4's metrics call an "instructor" LLM: ``agenerate(prompt, response_model)`` must return an
instance of a pydantic model. :class:`LabRagasLLM` is that LLM over any :mod:`lab.generate` backend
(transformers, llama.cpp, vLLM, an OpenAI-compatible endpoint, ragas' own ``llm_factory`` being the
other way in for endpoints): the response model's JSON schema constrains the output where the
backend supports ``json_schema``, and is otherwise asked for in the prompt; the text is validated
with pydantic, gets one repair attempt (``json_repair``), and a failure raises
:class:`RagasParseFailure` after being counted with its raw text (``failures``). Every raw output is
cached in the judgment cache, keyed by the backend's identity, the prompt and the schema.

:class:`RagasFaithfulnessJudge` wraps ragas' Faithfulness metric as a lab judge (kind ``ragas``):
score = 1 - faithfulness (so that 1 = unfaithful, as every judge here), verdict = score above the
threshold (default: any unsupported statement), and a metric that could not be computed (a parse
failure, or ragas finding no statements, which ragas itself returns as NaN) is a judgment with no
verdict and its reason, counted as a parse failure.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lab.aio import run_sync
from lab.config import BackendSpec
from lab.errors import LabError
from lab.generate import GenParams, make_backend
from lab.judge.base import JUDGES, JudgeInput, Judgment
from lab.judge.cache import JudgmentCache, cache_key
from lab.judge.prompted import _model_identity


class RagasParseFailure(LabError):
    """The backend's output did not validate as the response model ragas asked for, after one repair."""


def _instructor_base() -> type:
    from ragas.llms.base import InstructorBaseRagasLLM

    return InstructorBaseRagasLLM


def make_ragas_llm(backend: BackendSpec | Mapping[str, Any] | Any, *, max_new_tokens: int = 384,
                   cache: JudgmentCache | None | bool = None, identity: dict[str, Any] | None = None) -> Any:
    """A ragas instructor LLM over the lab backend ``backend`` (a make_backend mapping, or a built
    backend with ``identity`` naming its model for the cache)."""
    base = _instructor_base()

    class LabRagasLLM(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            built = not isinstance(backend, Mapping | BackendSpec)
            self.config: Any = None if built else backend if isinstance(backend, BackendSpec) else dict(backend)
            self.identity = identity or (_model_identity(self.config) if self.config is not None
                                         else {"backend": getattr(backend, "name", "?")})
            self._backend: Any = backend if built else None
            self.max_new_tokens = max_new_tokens
            self.cache = JudgmentCache() if cache is None or cache is True else (cache or None)
            self.calls = 0
            self.cache_hits = 0
            self.repaired = 0
            self.failures: list[dict[str, str]] = []

        @property
        def backend(self) -> Any:
            if self._backend is None:
                self._backend = make_backend(self.config)
            return self._backend

        def _raw(self, prompt: str, schema: dict[str, Any]) -> str:
            constrained = "json_schema" in self.backend.supports
            text = prompt if constrained else _unconstrained_prompt(prompt, schema)
            params = GenParams(max_new_tokens=self.max_new_tokens, json_schema=schema if constrained else None)
            key = cache_key(self.identity, "ragas-llm", "", _digest(text), params.to_dict())
            if self.cache is not None:
                hit = self.cache.get_many([key])
                if key in hit:
                    self.cache_hits += 1
                    return hit[key].raw
            self.calls += 1
            raw = self.backend.generate([[{"role": "user", "content": text}]], params)[0].text
            if self.cache is not None:
                self.cache.put_many({key: Judgment(None, None, None, raw, "ragas-llm", "ragas-llm")})
            return raw

        def generate(self, prompt: str, response_model: Any) -> Any:
            from pydantic import ValidationError

            raw = self._raw(prompt, response_model.model_json_schema())
            try:
                return response_model.model_validate_json(raw)
            except ValidationError:
                pass
            from json_repair import repair_json

            try:
                got = response_model.model_validate(repair_json(raw, return_objects=True))
                self.repaired += 1
                return got
            except (ValidationError, ValueError, TypeError) as exc:
                self.failures.append({"model": response_model.__name__, "raw": raw[:500], "error": str(exc)[:300]})
                raise RagasParseFailure(f"{response_model.__name__}: output did not validate after repair") from None

        async def agenerate(self, prompt: str, response_model: Any) -> Any:
            return self.generate(prompt, response_model)

    return LabRagasLLM()


def skeleton(schema: dict[str, Any], node: dict[str, Any] | None = None) -> Any:
    """An example instance of a JSON schema (``$ref``s resolved; one item per array): what a small
    model should imitate, where the schema itself is what it copies."""
    node = schema if node is None else node
    if "$ref" in node:
        node = schema.get("$defs", {}).get(node["$ref"].rsplit("/", 1)[-1], {})
    for key in ("anyOf", "oneOf", "allOf"):
        if node.get(key):
            return skeleton(schema, node[key][0])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {k: skeleton(schema, v) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return [skeleton(schema, node.get("items", {}))]
    if "enum" in node:
        return node["enum"][0]
    return {"integer": 0, "number": 0.0, "boolean": False, "null": None}.get(kind, "...")


def _unconstrained_prompt(prompt: str, schema: dict[str, Any]) -> str:
    """The prompt for a backend that cannot constrain its output to ``schema``.

    ragas writes the response model's JSON schema into its prompts; small local models (measured:
    Qwen2.5-Coder-0.5B on Faithfulness' NLI step, 10 of 10 items) then answer with the schema
    itself instead of an instance of it. So the schema is replaced by an example instance of it
    (:func:`skeleton`), and the prompt ends asking for one JSON object of that shape."""
    shape = json.dumps(skeleton(schema))
    inline = json.dumps(schema)
    if inline in prompt:
        prompt = prompt.replace(inline, f"(an instance, not the schema) shaped like {shape}")
    return f"{prompt}\n\nRespond with one JSON object only, shaped like {shape}"


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:32]


@JUDGES.register("ragas")
class RagasFaithfulnessJudge:
    """ragas' Faithfulness as a lab judge over a lab backend (see the module docstring)."""

    kind = "ragas"
    task = "grounded"

    def __init__(self, name: str, backend: Mapping[str, Any] | Any, *, threshold: float = 1e-9,
                 cache: JudgmentCache | None | bool = None, max_new_tokens: int = 384,
                 identity: dict[str, Any] | None = None) -> None:
        import ragas

        self.name = name
        self.threshold = threshold
        self.llm = make_ragas_llm(backend, max_new_tokens=max_new_tokens, cache=cache, identity=identity)
        self.rubric_id = f"ragas.faithfulness@{ragas.__version__}"

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        from ragas.metrics.collections import Faithfulness

        metric = Faithfulness(llm=self.llm)
        out = []
        for item in items:
            t0 = time.perf_counter()
            try:
                value = run_sync(metric.ascore(user_input=item.question or "-", response=item.answer or "-",
                                           retrieved_contexts=[item.context or ""]))
                value = value.value
            except RagasParseFailure as exc:
                out.append(Judgment(None, None, None, self.llm.failures[-1]["raw"] if self.llm.failures else "",
                                    self.name, self.rubric_id, error=str(exc), error_kind="parse",
                                    latency_s=time.perf_counter() - t0))
                continue
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out.append(Judgment(None, None, None, "", self.name, self.rubric_id,
                                    error="ragas found no statements in the answer (it returns NaN)",
                                    error_kind="parse", latency_s=time.perf_counter() - t0))
                continue
            score = 1.0 - float(value)
            out.append(Judgment(int(score >= self.threshold), score, None, f"faithfulness={value:.4f}", self.name,
                                self.rubric_id, latency_s=time.perf_counter() - t0))
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "rubric": self.rubric_id, "threshold": self.threshold,
                **{f"model_{k}": v for k, v in self.llm.identity.items()}, "llm_calls": self.llm.calls,
                "llm_cache_hits": self.llm.cache_hits, "llm_repaired": self.llm.repaired,
                "llm_parse_failures": len(self.llm.failures)}


def ragas_string_metrics(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ragas' non-LLM metrics of an answer against its reference answers (best over references):
    ExactMatch, StringPresence (the reference inside the answer), NonLLMStringSimilarity (Levenshtein)."""
    from ragas.metrics.collections import ExactMatch, NonLLMStringSimilarity, StringPresence

    scores: dict[str, float] = {}
    for metric in (ExactMatch(), StringPresence(), NonLLMStringSimilarity()):
        best = max(float(run_sync(metric.ascore(reference=r, response=prediction or "")).value) for r in references)
        scores[f"ragas_{metric.name}"] = best
    return scores
