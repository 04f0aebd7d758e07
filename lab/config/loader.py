"""The one YAML reader of ``lab``: params files, overrides, experiment spaces, rubrics, ``dvc.yaml``
and every ``-p key value`` of the command line go through :func:`load_yaml`, so a value reads the
same wherever it is written.

The dialect is YAML 1.2's core schema on top of PyYAML's safe loader, which speaks YAML 1.1:

* exponent floats without a dot or a signed exponent are floats (``1e-4``, ``3e4``): ``dvc exp run
  -S`` writes ``1e-05`` back into params.yaml, and people write ``lr: 1e-4``;
* only ``true``/``false`` are booleans: under YAML 1.1 ``{yes: 0, no: 1}``, the natural way to
  write a rubric's verdict words, reads as ``{True: 0, False: 1}``, and ``on``/``off`` are booleans.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lab.errors import ConfigError

_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"


class YAML12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats and booleans (see the module docstring)."""


YAML12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YAML12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
YAML12Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789."))


def load_yaml(text: str, source: str | Path = "<string>") -> Any:
    """``text`` parsed as YAML 1.2 (see the module docstring).

    Raises
    ------
    ConfigError
        Malformed YAML; the message names ``source`` and PyYAML's line and column.
    """
    try:
        return yaml.load(text, Loader=YAML12Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc


def read_yaml(path: str | Path) -> Any:
    """The YAML file at ``path`` parsed by :func:`load_yaml`; a missing file is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: file not found")
    return load_yaml(p.read_text(encoding="utf-8"), p)


def parse_value(raw: str) -> Any:
    """A command-line value (``-p key value``) read as YAML 1.2: ``20`` -> int, ``1e-4`` -> float,
    ``[a, b]`` -> list; text that is not valid YAML stays the string it is, and so does a date or
    time (``2026-12-01T06:00Z``: YAML 1.2's core schema has no timestamps, and a notebook parameter
    must be JSON)."""
    import datetime

    try:
        value = load_yaml(raw)
    except ConfigError:
        return raw
    return raw if isinstance(value, datetime.date) else value
