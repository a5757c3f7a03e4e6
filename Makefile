# Two commands for a fresh machine: `make demo` and `make test` (each creates the environment when missing).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo smoke test test-fast lint bench bench-gpu gpu-wheels clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)  ## create the environment (pinned versions from pyproject.toml)

demo: $(STAMP)  ## the main job on the embedded default
	$(BIN)/croc demo

smoke: $(STAMP)  ## the demo's quick variant
	$(BIN)/croc demo --smoke

lint: $(STAMP)
	$(BIN)/ruff check .

# Two pytest processes, each test file whole in one of them (module fixtures stay shared): most of an end-to-end
# case is waiting on Ray's process starts, so two of them share 2 cores well (about 15 min instead of 25).
PYTEST_PROCESSES := -n 2 --dist loadfile

test: $(STAMP)  ## lint, then the whole suite (slow cases included)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_PROCESSES)

test-fast: $(STAMP)  ## the suite without the slow cases
	$(BIN)/python -m pytest $(PYTEST_PROCESSES) -m "not slow"

bench: $(STAMP)  ## the training-step benchmark (GPU when present)
	$(BIN)/croc bench step --methods croc dino --modes eager compiled

bench-gpu: $(STAMP)  ## everything measured against the GPU targets, in one command (docs/benchmarks.md)
	$(BIN)/croc bench gpu --out bench-gpu.json

gpu-wheels: $(STAMP)  ## faiss-cpu and simplejpeg wheels for a GPU box without them (Python 3.12, x86-64)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux_2_28_x86_64 -d .gpu-wheels faiss-cpu==1.15.1 simplejpeg==1.9.0

clean-venv:
	rm -rf $(VENV)
