"""params.yaml as DVC sees it: the stages of ``dvc.yaml`` that need a section (``lab params check``)
and ``dvc exp run -S`` arguments from an overrides file (``lab params overrides``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lab.config import SECTIONS, StageConfig, load_section, read_params
from lab.config.loader import read_yaml
from lab.errors import ConfigError


def dvc_stages(params_path: str | Path) -> list[str]:
    """Names of the stages of the ``dvc.yaml`` beside ``params_path`` (none when there is no such file)."""
    dvc = Path(params_path).resolve().parent / "dvc.yaml"
    if not dvc.is_file():
        return []
    return list((read_yaml(dvc) or {}).get("stages") or {})


def check_sections(path: str | Path = "params.yaml", sections: list[str] | None = None) -> dict[str, StageConfig]:
    """Validate ``sections`` (default: every section of the file) and return their configs.

    The stages that need a section are those of the ``dvc.yaml`` beside the params file (when there
    is one) that have a config model, plus any named in ``sections``.

    Raises
    ------
    ConfigError
        A top-level section no config model knows (a misspelt stage name: the message lists the
        known ones), a section a stage needs that is missing from the file, or any error of
        :func:`load_section`.
    """
    p = Path(path)
    present = read_params(p)
    known = SECTIONS.names()
    unknown = sorted(set(present) - set(known))
    if unknown:
        raise ConfigError(f"{p}: unknown section(s) {', '.join(map(repr, unknown))}; known sections: "
                          f"{', '.join(known)} (a misspelt stage name?)")
    stages = [s for s in dvc_stages(p) if s in known]
    wanted = list(dict.fromkeys([*(sections or [s for s in known if s in present]), *stages]))
    missing = [s for s in wanted if s not in present]
    if missing:
        raise ConfigError(f"{p}: section(s) {', '.join(map(repr, missing))} missing (sections present: "
                          f"{', '.join(sorted(present))}); every stage reads its own section")
    return {name: load_section(name, p) for name in wanted}


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [kv for k, v in value.items() for kv in _flatten(f"{prefix}.{k}", v)]
    return [(prefix, value)]


def override_args(overrides_file: str | Path, params_file: str | Path = "params.yaml") -> list[str]:
    """``dvc exp run`` arguments (``-S section.key=value`` ...) that apply an overrides file: a YAML
    mapping of params.yaml sections to the keys they change (an experiment profile such as
    ``experiments/finetune_qwen05.yaml``). Each section, merged with params.yaml, is validated by its
    typed config first, so a typo fails here, naming the file and key, not hours into a run.
    Values are written in Hydra's override grammar (which YAML reads back unchanged)."""
    p = Path(overrides_file)
    data = read_params(p)
    if not data:
        raise ConfigError(f"{p}: no overrides (expected a mapping of params.yaml sections to keys)")
    args: list[str] = []
    for section, keys in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{p}: unknown section {section!r}; known sections: {', '.join(SECTIONS.names())}")
        if not isinstance(keys, dict) or not keys:
            raise ConfigError(f"{p}: section {section!r} must be a non-empty mapping of keys to change")
        pairs = _flatten(section, keys)
        try:
            load_section(section, params_file, overrides={k.split(".", 1)[1]: v for k, v in pairs},
                         check_paths=False)
        except ConfigError as exc:
            raise ConfigError(f"{p} (applied to {params_file}): {exc}") from None
        args += [a for k, v in pairs for a in ("-S", f"{k}={_override_value(v)}")]
    return args


def _override_value(value: Any) -> str:
    """A value in Hydra's override grammar (what ``dvc exp run -S`` parses): scalars and strings as
    JSON, floats written positionally (``0.00001``, not ``1e-05``, which YAML 1.1 reads as a string),
    lists as ``[a,b]`` and mappings as ``{key:value}`` (Hydra takes no quoted keys, so a key must be
    a plain name)."""
    if isinstance(value, float) and "e" in repr(value):
        text = f"{value:.20f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, list):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        bad = [k for k in value if not (isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9_-]+", k))]
        if bad:
            raise ConfigError(f"override key(s) {', '.join(map(repr, bad))} cannot be written for dvc exp run -S "
                              "(Hydra's grammar takes letters, digits, '_' and '-' in a key)")
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, separators=(",", ":"))
