"""The generation backend spec: one typed model for every place that names a backend (the
fine-tune study's ``generation``, the judges' and ragas' ``backend``, :func:`lab.generate.make_backend`),
and the generation defaults the rest of ``lab`` shares."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import Field, field_validator

from lab.config.base import StrictModel

#: Backends lab ships (:mod:`lab.generate`); plugins add more through :data:`BACKEND_PLUGIN_GROUP`.
BUILTIN_BACKENDS: tuple[str, ...] = ("transformers", "llama-cpp", "vllm", "vllm-server", "openai")
#: Entry-point group of plugin backends: a backend registered there is a valid ``backend`` value.
BACKEND_PLUGIN_GROUP = "lab.generation_backends"

#: Tokens an answer may have unless a config says otherwise. The fine-tune study scores short spans
#: (its domain-QA prompt asks for the span alone), and the gateway and its canary serve that model with
#: that prompt: one default for all three, so the served answers are those the study measured.
DEFAULT_MAX_NEW_TOKENS = 24

#: Seconds one whole answer may take at the gateway (and its upstream's read timeout): a CPU server
#: under 64 concurrent prefills needs minutes.
ANSWER_TIMEOUT_S = 300.0

def plugin_names(group: str) -> list[str]:
    """Names registered in the entry-point group ``group`` (read from package metadata; nothing is imported)."""
    return sorted({ep.name for ep in entry_points(group=group)})


class BackendSpec(StrictModel):
    """A generation backend as config: :func:`lab.generate.make_backend` builds it.

    The common keys go to the backends whose constructor takes them (``batch_size`` to transformers,
    ``base_url`` to the server backends...); ``options`` holds the keys one backend alone has
    (``dtype``, ``n_ctx``, ``concurrency``...), checked against that backend's constructor when it is built.
    """

    backend: str = "transformers"
    model: str | None = None   # a model-store spec; None: the model of the section (the fine-tune arms')
    batch_size: int = Field(8, ge=1)
    threads: int | None = Field(None, ge=1)
    base_url: str = ""         # server backends only
    # transformers: auto = CUDA when torch sees one (lab.models.torch_device)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    options: dict[str, Any] = {}

    #: keys that are not constructor arguments of a backend
    NOT_KWARGS: ClassVar[frozenset[str]] = frozenset({"backend", "options"})

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value in BUILTIN_BACKENDS:
            return value
        plugins = plugin_names(BACKEND_PLUGIN_GROUP)
        if value not in plugins:
            raise ValueError(f"unknown generation backend {value!r} (allowed values: "
                             f"{', '.join((*BUILTIN_BACKENDS, *plugins))}; plugins register in the entry-point "
                             f"group {BACKEND_PLUGIN_GROUP})")
        return value


class GenerationSpec(BackendSpec):
    """How a study's model answers: its backend plus the answer length."""

    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1)


def backend_spec(config: Any) -> BackendSpec:
    """``config`` as a :class:`BackendSpec`: a spec is returned as it is; a mapping is validated, its
    keys that are not fields of the spec going to ``options`` (the flat form
    ``{"backend": "llama-cpp", "model": "x", "n_ctx": 2048}`` that Python callers write).

    Raises
    ------
    ConfigError
        A value of the wrong type, or an unknown backend (the message lists the allowed ones).
    """
    from collections.abc import Mapping

    from pydantic import ValidationError

    from lab.config.base import format_validation
    from lab.errors import ConfigError

    if isinstance(config, BackendSpec):
        return config
    if not isinstance(config, Mapping):
        raise ConfigError(f"Generation backend config must be a mapping, got {type(config).__name__}")
    data = dict(config)
    fields = set(BackendSpec.model_fields)
    extra = {k: data.pop(k) for k in list(data) if k not in fields}
    if extra:
        data["options"] = {**dict(data.get("options") or {}), **extra}
    if data.get("backend") is None:   # an endpoint spec "http://host/v1#model" selects openai
        data.pop("backend", None)
        model = data.get("model")
        if isinstance(model, str) and model.startswith(("http://", "https://")):
            data["backend"] = "openai"
    try:
        return BackendSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, "", BackendSpec, "generation backend config")) from None
