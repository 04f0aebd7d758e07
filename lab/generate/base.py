"""What every generation backend shares: parameters, results, the protocol, the registry, config checks.

A backend is built by :func:`make_backend` from its typed spec (:class:`lab.config.BackendSpec`,
what every config section holds) or the spec's plain form (``{"backend": "transformers",
"model": "smollm2-135m-instruct", "batch_size": 8}``); its constructor's keyword arguments are
the accepted keys, so an unknown or mistyped key fails loudly before any model is loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, runtime_checkable

from lab.config.generation import BackendSpec, backend_spec
from lab.errors import ConfigError, LabError
from lab.registry import Registry

#: Everything a backend may declare in ``supports``.
#: ``choice_scores``: a constrained choice comes with every choice's log-probability
#: (:attr:`Generation.choice_logprobs`).
FEATURES = frozenset({"json_schema", "choice", "choice_scores", "stream", "batch", "seed"})

#: A prompt: chat messages (``[{"role": "user", "content": "..."}]``) or a raw prompt string.
Prompt = list[dict[str, Any]] | str


class UnsupportedFeatureError(LabError):
    """A backend was asked for something it cannot do; the message names the backends that can."""


class GenerationError(LabError):
    """A backend or endpoint failed to produce an answer; the message names the backend and model."""


@dataclass(frozen=True)
class GenParams:
    """How to generate. The same object drives every backend.

    Attributes
    ----------
    max_new_tokens : int
        Upper bound on generated tokens per prompt.
    temperature : float
        0 means greedy decoding (``seed`` is then irrelevant); above 0 samples.
    top_p : float
        Nucleus sampling mass (1.0 = off). No top-k is applied by any backend.
    seed : int
        Sampling seed: the same seed, prompts and backend config give identical texts.
    stop : tuple of str
        Generation ends at the first occurrence of any of these; it is cut from the text.
    json_schema : dict or None
        Constrain the answer to JSON valid under this schema (backends with ``"json_schema"``).
    choices : tuple of str or None
        Constrain the answer to exactly one of these strings (backends with ``"choice"``).
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    json_schema: dict | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Lists from YAML become tuples, so params stay comparable and safe to share between threads.
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise ConfigError(f"GenParams.max_new_tokens must be a positive integer, "
                              f"got {self.max_new_tokens!r}")
        if not isinstance(self.temperature, int | float) or self.temperature < 0:
            raise ConfigError(f"GenParams.temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise ConfigError(f"GenParams.top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"GenParams.seed must be an integer, got {self.seed!r}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"GenParams.stop must be non-empty strings, got {self.stop!r}")
        if self.choices is not None and (not self.choices or any(not isinstance(c, str) or not c
                                                                 for c in self.choices)):
            raise ConfigError(f"GenParams.choices must be a non-empty list of non-empty strings, "
                              f"got {self.choices!r}")
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise ConfigError(f"GenParams.json_schema must be a JSON schema dict, "
                              f"got {type(self.json_schema).__name__}")
        if self.json_schema is not None and self.choices is not None:
            raise ConfigError("GenParams: set json_schema or choices, not both")

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> GenParams:
        """Build from a config mapping; unknown keys are a :class:`ConfigError` listing the accepted ones."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ConfigError(f"Generation parameters: unknown key(s) {', '.join(unknown)}. "
                              f"Accepted: {', '.join(known)}")
        return cls(**dict(config))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        d["choices"] = list(self.choices) if self.choices is not None else None
        return d


@dataclass
class Generation:
    """One answer.

    Attributes
    ----------
    text : str
        The generated text, stop strings and special tokens removed.
    tokens_in, tokens_out : int
        Prompt tokens (padding excluded) and generated tokens (end-of-sequence token included,
        padding excluded), as the model's tokenizer counts them, or as the endpoint's ``usage``
        reports them.
    latency_s : float
        Wall time of this item's request. Backends that run a batch in one forward pass
        (transformers, vllm offline) report the wall time of the whole batch the item was in.
    ttft_s : float or None
        Time to first token: first streamed content for endpoints, the first decoding step of the
        batch for transformers; None where it cannot be measured.
    finish_reason : str
        ``"stop"`` (end of sequence, stop string, or a constrained choice), ``"length"``
        (``max_new_tokens`` reached) or what an endpoint reports.
    backend : str
        Name of the backend that produced it.
    choice_logprobs : dict or None
        For a constrained choice (``GenParams.choices``) scored by the backend: each choice's summed
        log-probability after the prompt (a judge turns them into a probability); None otherwise.
    """

    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    ttft_s: float | None
    finish_reason: str
    backend: str
    choice_logprobs: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    """A generation backend. ``generate`` returns one :class:`Generation` per prompt, in order."""

    name: str
    supports: frozenset[str]

    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Generation]: ...

    def close(self) -> None: ...


#: Backend classes by name: ``transformers``, ``vllm``, ``vllm-server``, ``openai``; plugins add
#: more through the entry-point group ``lab.generation_backends``.
BACKENDS: Registry[type] = Registry("generation_backends", item="generation backend")



def _accepted(cls: type) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_types(name: str, params: dict[str, inspect.Parameter], config: Mapping[str, Any]) -> None:
    """Type-check each value against its default (as nanoGPT does): bool, int, float, str defaults."""
    for key, value in config.items():
        default = params[key].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        expected: type | tuple[type, ...] = type(default)
        if expected is float:
            expected = (int, float)
        if expected not in (bool, int, (int, float), str):
            continue
        bad = not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool)
        if bad:
            raise ConfigError(f"Generation backend {name!r}: {key} must be of type {type(default).__name__} "
                              f"(default {default!r}), got {value!r}")


#: The common keys of :class:`lab.config.BackendSpec`, passed to the backends whose constructor takes them.
_COMMON = ("model", "batch_size", "threads", "base_url", "device")


def make_backend(config: BackendSpec | Mapping[str, Any], *, model: Any = None) -> Backend:
    """Build the backend a spec names.

    ``config`` is a :class:`lab.config.BackendSpec` (what every config section holds) or its plain
    form ``{"backend": "transformers", "model": "smollm2-135m-instruct", "batch_size": 8}``, where
    keys that are not fields of the spec are the backend's own options (``dtype``, ``n_ctx``...).
    Without ``backend``, a model spec ``"http(s)://host/v1#model"`` selects ``openai`` and anything
    else ``transformers``. ``model`` overrides the spec's model, e.g. with a loaded
    ``(model, tokenizer)`` pair. The spec's common keys go to the backends whose constructor takes
    them (``device: auto`` resolved by :func:`lab.models.torch_device`); setting one a backend does
    not take is an error.

    Raises
    ------
    RegistryError
        Unknown backend name; the message lists the registered ones.
    ConfigError
        A key the backend does not accept (the message names the backend and the accepted keys),
        a value of the wrong type, or a missing required key.
    """
    if isinstance(config, Mapping) and not isinstance(config.get("model"), str | None):
        config = dict(config)
        model = config.pop("model") if model is None else model   # a loaded (model, tokenizer) pair
    spec = backend_spec(config)
    cls = BACKENDS.get(spec.backend)
    params = _accepted(cls)
    kwargs: dict[str, Any] = {}
    for key in _COMMON:
        value = model if key == "model" and model is not None else getattr(spec, key)
        if key not in params:
            if key in spec.model_fields_set and value not in (None, ""):
                raise ConfigError(f"Generation backend {spec.backend!r} got unknown key(s) {key}. "
                                  f"Accepted: backend, {', '.join(params)}")
            continue
        if value is None or value == "":
            continue
        if key == "device":
            if key not in spec.model_fields_set:   # unset: the backend's own default (CPU), as before the spec
                continue
            from lab.models import torch_device

            value = torch_device(value)
        kwargs[key] = value
    unknown = sorted(set(spec.options) - set(params))
    if unknown:
        raise ConfigError(f"Generation backend {spec.backend!r} got unknown key(s) {', '.join(unknown)}. "
                          f"Accepted: backend, {', '.join(params)}")
    _check_types(spec.backend, params, spec.options)
    kwargs.update(spec.options)
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ConfigError(f"Generation backend {spec.backend!r} needs {', '.join(missing)}")
    return cls(**kwargs)


# --------------------------------------------------------------------------- helpers for backends


def backends_supporting(feature: str) -> list[str]:
    """Names of registered backends whose class declares ``feature`` in ``supports``."""
    return [n for n in BACKENDS.names() if feature in getattr(BACKENDS.get(n), "supports", ())]


def check_supported(backend: Backend, params: GenParams) -> None:
    """Raise :class:`UnsupportedFeatureError` when ``params`` asks for something ``backend`` lacks."""
    wanted = {"json_schema": params.json_schema is not None, "choice": params.choices is not None}
    for feature, asked in wanted.items():
        if asked and feature not in backend.supports:
            raise UnsupportedFeatureError(
                f"Generation backend {backend.name!r} does not support {feature} "
                f"(GenParams.{'json_schema' if feature == 'json_schema' else 'choices'}). "
                f"Backends that do: {', '.join(backends_supporting(feature)) or '(none)'}")


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest occurrence of any stop string; return (text, whether it was cut)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def is_chat(prompt: Prompt) -> bool:
    """True for chat messages, False for a raw string; anything else is a :class:`LabError`."""
    if isinstance(prompt, str):
        return False
    if isinstance(prompt, list | tuple) and all(isinstance(m, Mapping) and "role" in m for m in prompt):
        return True
    raise LabError(f"A prompt must be a string or a list of chat messages ({{'role': ..., 'content': ...}}), "
                   f"got {type(prompt).__name__}: {str(prompt)[:80]!r}")
