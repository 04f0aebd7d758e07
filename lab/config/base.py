"""The base of every config model, and loading a section of ``params.yaml`` into one.

Validation is strict: an unknown key, a value of the wrong type (YAML ``"5"`` is a string, not a
number) or a path that does not exist fails with a :class:`~lab.errors.ConfigError` naming
``params.yaml``, the dotted key and what was expected (the allowed keys or values). Relative paths
are resolved against the folder that holds ``params.yaml`` (the repository root, where DVC runs the
stages).
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lab.config.loader import load_yaml
from lab.errors import ConfigError
from lab.registry import Registry

#: Config model of each ``params.yaml`` section, by section name (= the stage that reads it).
SECTIONS: Registry[type[StageConfig]] = Registry("sections")

#: Prefix of the tags of lab's discriminated unions (``tag:pii``, ``tag:beir``): pydantic puts the
#: tag in an error's location, and the message leaves it out so the dotted key is the one in the file.
TAG_PREFIX = "tag:"


class StrictModel(BaseModel):
    """Base of every config model: unknown keys and type coercion are errors; instances are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StageConfig(StrictModel):
    """Base of a section's config."""

    def resolve(self, path: str | Path, root: Path) -> Path:
        """Return ``path`` made absolute against ``root`` (the folder of ``params.yaml``)."""
        from lab.paths import resolve_path

        return resolve_path(path, root)

    def paths(self) -> dict[str, str]:
        """Dotted key -> path of every file or folder this config names, checked for existence."""
        return {}

    def params_hash(self) -> str:
        """sha256 (first 16 hex) of the canonical JSON of this config: a stable identity for runs."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(TAG_PREFIX):
            continue   # a union member's tag, not a key of the file
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation(err: ValidationError, section: str, model: type[BaseModel], source: str) -> str:
    """A pydantic error as lab's message: the file, then one line per problem with the dotted key
    and what is allowed there (keys, values or the type)."""
    lines = [f"{source}: section {section!r} is invalid:" if section else f"{source} is invalid:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(filter(None, [section, _dotted(loc)]))
        ctx = e.get("ctx") or {}
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            lines.append(f"  - {key}: unknown key (allowed keys: {', '.join(allowed)})")
        elif e["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        elif e["type"] == "union_tag_invalid":
            tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            tags = [t.removeprefix(TAG_PREFIX) for t in tags]
            field = str(ctx.get("discriminator", "")).strip("'").removesuffix("()") or "check"
            lines.append(f"  - {key}.{field}: unknown value {str(ctx.get('tag', '')).removeprefix(TAG_PREFIX)!r} "
                         f"(allowed values: {', '.join(tags)})")
        elif e["type"] == "union_tag_not_found":
            field = str(ctx.get("discriminator", "")).strip("'").removesuffix("()")
            lines.append(f"  - {key}.{field}: required key is missing")
        elif e["type"] == "value_error" and "error" in ctx:
            lines.append(f"  - {key}: {ctx['error']}" if key else f"  - {ctx['error']}")   # a model-level check names its keys itself
        elif e["type"] == "literal_error":
            lines.append(f"  - {key}: {e.get('input')!r} is not allowed (allowed values: {ctx.get('expected')})")
        else:
            lines.append(f"  - {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _models_in(annotation: Any) -> list[tuple[str | None, type[BaseModel]]]:
    """The config models an annotation holds (through lists, unions, ``Annotated`` and tags), each
    with its union tag when it has one."""
    out: list[tuple[str | None, type[BaseModel]]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(None, annotation)]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        inner = _models_in(args[0])
        tags = [m.tag for m in args[1:] if hasattr(m, "tag") and isinstance(m.tag, str)]
        return [(tags[0] if tags else t, m) for t, m in inner]
    for a in args:
        out += _models_in(a)
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model found at ``loc``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(part, str) and part.startswith(TAG_PREFIX):
            continue   # resolved with the field that holds the union
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            break
        nested = _models_in(field.annotation)
        if nested:
            tagged = dict(nested)
            idx = loc.index(part)
            tag = next((p for p in loc[idx + 1:] if isinstance(p, str) and p.startswith(TAG_PREFIX)), None)
            current = tagged.get(tag) or nested[0][1]
    # a section may take keys that are no field of its own (a SQuAD task written at the top level)
    return sorted({*getattr(current, "model_fields", {}), *getattr(current, "SHORTHAND_KEYS", ())})


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` as a mapping; a missing or malformed file is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: file not found (run from the repository root or pass --params PATH)")
    data = load_yaml(p.read_text(encoding="utf-8"), p)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


#: ``${section.key}``: DVC's template syntax in dvc.yaml, resolved from params.yaml.
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


def interpolate(value: Any, params: dict[str, Any], source: str, where: str = "", _depth: int = 0) -> Any:
    """``value`` with every ``${section.key}`` in its strings replaced by that value of ``params``:
    ``dvc.yaml`` as DVC resolves it (its outs are ``${<stage>.out_dir}/...``).

    params.yaml itself does not use references: a ``${...}`` value in params.yaml makes
    ``dvc exp run -S`` rerun every stage holding one (checked with dvc 3.67), so its paths are literal.

    Raises
    ------
    ConfigError
        A reference to a key that does not exist, to a mapping or list, or a cycle; the message
        names the file, the key holding the reference and the reference.
    """
    if isinstance(value, dict):
        # keys too: a dvc.yaml entry with options is ``{"${stage.out_dir}/x": {...}}``
        return {interpolate(k, params, source, where, _depth): interpolate(v, params, source,
                                                                        f"{where}.{k}" if where else str(k), _depth)
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, params, source, f"{where}[{i}]", _depth) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    if _depth > 8:
        raise ConfigError(f"{source}: {where}: references nest more than 8 deep (a cycle?) in {value!r}")

    def lookup(match: re.Match[str]) -> str:
        ref, cur = match.group(1), params
        for part in ref.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise ConfigError(f"{source}: {where}: ${{{ref}}} names no key of the params file "
                                  f"(write ${{section.key}} with an existing section and key)")
            cur = cur[part]
        if isinstance(cur, dict | list) or cur is None:
            raise ConfigError(f"{source}: {where}: ${{{ref}}} is a {type(cur).__name__}, not a value to put in a string")
        return str(interpolate(cur, params, source, ref, _depth + 1))

    return _REFERENCE.sub(lookup, value)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``key='a.b'`` (creating mappings on the way)."""
    parts = key.split(".")
    cur = data
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
        cur = nxt
    cur[parts[-1]] = value


def load_section(
    section: str,
    path: str | Path = "params.yaml",
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> StageConfig:
    """Load and validate one section of ``params.yaml``.

    Parameters
    ----------
    section:
        Section name, which is also the stage name (``data_quality``).
    path:
        The params file.
    overrides:
        Dotted keys inside the section (``{"max_docs_per_corpus": 20}``) applied before validation.
    check_paths:
        Also require every file or folder the config names to exist, except another stage's outputs
        (paths under a section's ``out_dir``), which the pipeline makes.

    Raises
    ------
    ConfigError
        Unknown section, unknown key, wrong type or missing file; the message names the file and key.
    """
    p = Path(path)
    params = read_params(p)
    model = SECTIONS.get(section) if section in SECTIONS else None
    if model is None:
        raise ConfigError(f"{p}: no config model for section {section!r}; known sections: {SECTIONS.names()}")
    if section not in params:
        raise ConfigError(f"{p}: section {section!r} is missing (sections present: {sorted(params)})")
    raw = params[section]
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: section {section!r} must be a mapping, got {type(raw).__name__}")
    raw = json.loads(json.dumps(raw))  # deep copy of plain YAML data
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        cfg = model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, section, model, str(p))) from None
    if check_paths:
        root = p.resolve().parent
        # a path under a stage's out_dir is that stage's output: the pipeline makes it, and the
        # stage that reads it says which stage to run when it is missing (lab.handoff)
        outputs = [cfg.resolve(str(interpolate(sec["out_dir"], params, str(p))), root) for sec in params.values()
                   if isinstance(sec, dict) and isinstance(sec.get("out_dir"), str)]
        for key, value in cfg.paths().items():
            path = cfg.resolve(value, root)
            if not path.exists() and not any(path.is_relative_to(o) for o in outputs):
                raise ConfigError(
                    f"{p}: {section}.{key}: {value!r} does not exist (relative to {root}). "
                    "Restore the demo data with `dvc pull`, or point the key at an existing path."
                )
    return cfg
