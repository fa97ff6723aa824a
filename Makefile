# Two commands on a fresh clone: `make demo` and `make test`. Every target installs .venv first when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A pinned CPU build installs in seconds here; an open range pulls a CUDA build of several GB.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
DEMO_DIR := build/demo

.PHONY: setup test test-all demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

# The main job on the embedded default: simulate the demo dataset, convert its recordings, look
# at a window. Later stages (pseudo-labels, EvDistill training, evaluation) join as they land.
demo: $(STAMP)
	$(BIN)/evtools simulate $(DEMO_DIR)/data --preset demo
	$(BIN)/evtools convert $(DEMO_DIR)/data/events/*.hdf5 -o $(DEMO_DIR)/caches/events --repr voxel
	$(BIN)/evtools convert $(DEMO_DIR)/data/test/*.hdf5 -o $(DEMO_DIR)/caches/test --repr voxel
	$(BIN)/evtools info $(DEMO_DIR)/caches/test/seq000.zarr
	$(BIN)/evtools render $(DEMO_DIR)/caches/test/seq000.zarr --index 25 -o $(DEMO_DIR)/window.png

clean:
	rm -rf build .pytest_cache

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python representations.py && ../$(BIN)/python conversion.py && ../$(BIN)/python simulator.py
