# Two commands on a fresh clone: `make demo` and `make test`. Every target installs .venv first when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A pinned CPU build installs in seconds here; an open range pulls a CUDA build of several GB.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup test test-all bench clean gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# a worker process a core (pytest-xdist), at most 2: each test's kernels use every core anyway, and
# OpenMP threads of more processes than that would contend for the cores
XDIST := -n auto --maxprocesses 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(XDIST)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST)

clean:
	rm -rf build runs .pytest_cache

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python representations.py && ../$(BIN)/python conversion.py --profile --cores 1 && ../$(BIN)/python loading.py && ../$(BIN)/python cluster.py --split && ../$(BIN)/python simulator.py

# make gpu-check, on a machine with an NVIDIA GPU whose python3 already holds torch with CUDA and
# numba-cuda (as the lent GPU machines do): the wheels in $(WHEELS) for what that python lacks
# (zarr, numcodecs, donfig, crc32c, numpy below 2.5, and for the cluster step dask, distributed and
# theirs) go to $(GPU_SITE), ahead of its own packages on PYTHONPATH; then benchmarks/gpu_check.py,
# at most $(GPU_BUDGET) seconds.
WHEELS ?= .whl
GPU_SITE ?= build/gpu-site
GPU_BUDGET ?= 480
gpu-check:
	if [ -d $(WHEELS) ]; then $(PYTHON) -m pip install -q --no-index --no-deps --no-compile --upgrade --target $(GPU_SITE) $(WHEELS)/*.whl; fi
	PYTHONPATH=$(abspath $(GPU_SITE)):$(CURDIR) $(PYTHON) benchmarks/gpu_check.py --budget $(GPU_BUDGET) $(if $(GPU_STEPS),--only $(GPU_STEPS))

# make demo (the main job on the embedded default), make ablation, make ddd17, make mvsec
include pipelines/demo.mk
include pipelines/datasets.mk
