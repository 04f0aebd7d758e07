"""Rubrics: a judge's question, versioned, in YAML.

A rubric file holds ``name``, ``version`` (an integer you raise when you change what it asks),
``task`` (which inputs it needs), ``description`` (the criteria), ``labels`` (verdict word -> 0/1,
1 being what the judge exists to catch) and ``prompt`` (``system`` and ``user`` templates with the
placeholders ``{question}``, ``{answer}``, ``{context}``, ``{reference}`` and ``{instructions}``,
which the judge fills with how to answer: one word for a constrained choice, a JSON object
otherwise). ``spans: true`` lets the JSON verdict list the offending spans.

Besides the version, each rubric has a :attr:`Rubric.digest` of its whole content: the judgment
cache is keyed by both, so editing a rubric without raising its version can never reuse stale
judgments (and :func:`load_rubric` warns when a file's digest differs from the built-in of the same
name and version).

Built-in rubrics live in ``lab/judge/rubrics/*.yaml``: faithfulness, hallucination, correctness,
context_relevance, format_compliance, task_completion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config.loader import load_yaml
from lab.errors import ConfigError

log = logging.getLogger(__name__)
BUILTIN_DIR = Path(__file__).parent / "rubrics"
PLACEHOLDERS = frozenset({"question", "answer", "context", "reference", "instructions"})
#: Which inputs each task needs (checked before a judge runs).
TASK_INPUTS: dict[str, tuple[str, ...]] = {
    "grounded": ("question", "answer", "context"),
    "general": ("question", "answer"),
    "reference": ("question", "answer", "reference"),
    "context": ("question", "context"),
    "format": ("answer", "reference"),
}
_KEYS = {"name", "version", "task", "description", "labels", "prompt", "spans"}


def _read(path: Path) -> Any:
    return load_yaml(path.read_text(encoding="utf-8"), path)   # YAML 1.2: {yes: 0, no: 1} keeps its words


@dataclass(frozen=True)
class Rubric:
    """One rubric (see the module docstring for the fields)."""

    name: str
    version: int
    task: str
    description: str
    labels: dict[str, int]
    system: str
    user: str
    spans: bool = False
    source: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        """``name@vVERSION``: what reports and stored judgments name."""
        return f"{self.name}@v{self.version}"

    @property
    def digest(self) -> str:
        """sha256 (16 hex) of the rubric's content: part of every cache key."""
        blob = json.dumps({"name": self.name, "version": self.version, "task": self.task,
                           "description": self.description, "labels": self.labels, "system": self.system,
                           "user": self.user, "spans": self.spans}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.labels)

    def output_schema(self) -> dict[str, Any]:
        """The JSON schema of a verdict: ``verdict`` (one of the labels) and ``reason`` (and ``spans``)."""
        props: dict[str, Any] = {"verdict": {"type": "string", "enum": list(self.labels)},
                                 "reason": {"type": "string"}}
        if self.spans:
            props["spans"] = {"type": "array", "items": {"type": "string"}}
        return {"type": "object", "properties": props, "required": ["verdict", "reason"],
                "additionalProperties": False}

    def instructions(self, mode: str) -> str:
        words = " or ".join(f'"{w}"' for w in self.labels)
        if mode == "choice":
            return f"Answer with one word: {words}."
        spans = ', "spans": [<each unsupported or false phrase, copied exactly>]' if self.spans else ""
        return (f'Reply with a JSON object only: {{"verdict": {words}, "reason": "<one short sentence>"{spans}}}.')

    def render(self, item: dict[str, str | None], mode: str) -> list[dict[str, str]]:
        """Chat messages for one item (``question``/``answer``/``context``/``reference``)."""
        missing = [k for k in TASK_INPUTS[self.task] if not item.get(k)]
        if missing:
            raise ConfigError(f"rubric {self.id} (task {self.task!r}) needs {', '.join(missing)} for every "
                              f"item; this item has none")
        values = {k: (item.get(k) or "") for k in PLACEHOLDERS - {"instructions"}}
        values["instructions"] = self.instructions(mode)
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": self.system.format(**values).strip()})
        msgs.append({"role": "user", "content": self.user.format(**values).strip()})
        return msgs


def _check(data: Any, source: str) -> Rubric:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a rubric is a YAML mapping with keys {', '.join(sorted(_KEYS))}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
    for key in ("name", "version", "task", "labels", "prompt"):
        if key not in data:
            raise ConfigError(f"{source}: required key {key!r} is missing")
    if not isinstance(data["version"], int) or isinstance(data["version"], bool) or data["version"] < 1:
        raise ConfigError(f"{source}: version must be a positive integer, got {data['version']!r}")
    if data["task"] not in TASK_INPUTS:
        raise ConfigError(f"{source}: task must be one of {', '.join(TASK_INPUTS)}, got {data['task']!r}")
    labels = data["labels"]
    if (not isinstance(labels, dict) or len(labels) < 2 or sorted(set(labels.values())) != [0, 1]
            or not all(isinstance(k, str) and k.strip() == k and k for k in labels)):
        raise ConfigError(f"{source}: labels must map at least two verdict words to 0 and 1 "
                          f"(1 = what the judge catches), e.g. {{yes: 0, no: 1}}; got {labels!r}")
    prompt = data["prompt"]
    if not isinstance(prompt, dict) or not isinstance(prompt.get("user"), str):
        raise ConfigError(f"{source}: prompt needs a 'user' template (and optionally 'system')")
    extra = sorted(set(prompt) - {"system", "user"})
    if extra:
        raise ConfigError(f"{source}: prompt has unknown key(s) {', '.join(extra)}; allowed: system, user")
    for part in ("system", "user"):
        names = {f[1] for f in string.Formatter().parse(prompt.get(part) or "") if f[1] is not None}
        bad = sorted(names - PLACEHOLDERS)
        if bad:
            raise ConfigError(f"{source}: prompt.{part} uses unknown placeholder(s) {bad}; "
                              f"known: {', '.join(sorted(PLACEHOLDERS))}")
    if "{instructions}" not in prompt["user"]:
        raise ConfigError(f"{source}: prompt.user must contain {{instructions}} (how to answer is filled in there)")
    return Rubric(name=str(data["name"]), version=data["version"], task=data["task"],
                  description=str(data.get("description", "")).strip(), labels=dict(labels),
                  system=str(prompt.get("system") or ""), user=prompt["user"], spans=bool(data.get("spans", False)),
                  source=source)


def builtin_rubrics() -> list[str]:
    """Names of the built-in rubrics."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_rubric(spec: str | Path) -> Rubric:
    """A built-in rubric by name, or a YAML file by path.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the built-ins), unreadable or invalid file.
    """
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"rubric file {p} not found")
        data = _read(p)   # malformed YAML: a ConfigError naming the file
        rubric = _check(data, str(p))
        same = BUILTIN_DIR / f"{rubric.name}.yaml"
        if same.is_file():
            builtin = _check(_read(same), f"built-in {rubric.name}")
            if builtin.version == rubric.version and builtin.digest != rubric.digest:
                log.warning("rubric %s differs from the built-in %s of the same version: raise its version "
                            "so that reports tell them apart", p, builtin.id)
        return rubric
    path = BUILTIN_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown rubric {str(spec)!r}; built-in: {', '.join(builtin_rubrics())}, "
                          f"or give the path of a YAML rubric")
    return _check(_read(path), f"built-in {spec}")
