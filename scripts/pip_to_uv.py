"""Print pip's CA bundle (or an empty line), then, one per line, the ``uv pip install``
arguments that make uv find packages where pip would: the index, extra indexes, find-links, constraints and CA bundle that pip's configuration
files and ``PIP_*`` variables name (uv reads neither), and pip's rule of taking the best version
over all indexes (uv's default takes the first index that has the package).

Used by scripts/setup.sh; run from the repository root with the .venv's Python (its pip answers
``pip config list``).
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

#: pip option -> uv flag; each may hold several whitespace-separated values.
FLAGS = {"index-url": "--default-index", "extra-index-url": "--index", "find-links": "--find-links",
         "constraint": "--constraint"}


def pip_config() -> dict[str, list[str]]:
    """Option name -> values of this Python's ``pip config list`` (see :func:`parse`)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                         check=False).stdout
    return parse(out)


def parse(out: str) -> dict[str, list[str]]:
    """Option name -> values, from the text of ``pip config list``; for options pip takes one
    value of (the index, the CA bundle) the value that wins comes last: PIP_* over files, a later
    file over an earlier one."""
    lines = [line for line in out.splitlines() if "=" in line]
    # pip lists PIP_* (":env:") first; they override the files, so they go last here
    lines.sort(key=lambda line: line.startswith(":env:"))
    seen: dict[str, list[str]] = {}
    for line in lines:
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        # shlex removes pip's quotes ('a b' is one token); the values inside split on whitespace
        for part in (p for token in shlex.split(value) for p in token.split()):
            values = seen.setdefault(name, [])
            if part in values:
                values.remove(part)
            values.append(part)
    return seen


def _missing_local(value: str) -> bool:
    """A local folder or file:// index that does not exist: pip skips it with a warning, uv fails."""
    url = urlparse(value)
    if url.scheme == "file":
        return not Path(url.path).exists()
    return not url.scheme and not Path(value).exists()


def uv_args(cfg: dict[str, list[str]]) -> list[str]:
    """The uv flags for ``cfg`` (see :func:`parse`)."""
    args = ["--index-strategy", "unsafe-best-match"]
    for option, flag in FLAGS.items():
        values = [v for v in cfg.get(option, []) if option == "constraint" or not _missing_local(v)]
        if option == "index-url":
            values = values[-1:]  # one default index: the one pip would use
        for v in values:
            args += [flag, v]
    return args


if __name__ == "__main__":
    cfg = pip_config()
    # first line: the CA bundle pip uses, or empty (uv reads it from SSL_CERT_FILE); then the flags
    print("\n".join([cfg.get("cert", [""])[-1], *uv_args(cfg)]))
