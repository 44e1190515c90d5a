# The two commands a newcomer runs (see README.md):
#   make demo   installs into .venv and reproduces the VAE paper's quick profile
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint bench bench-avx2 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: a wheel already on this machine (pip's find-links; torch's own dependencies
# then come with the package) if there is one, else the CPU build from PyTorch's CPU index
# (a few hundred MB, not the multi-GB CUDA build), or, with an NVIDIA GPU (nvidia-smi
# present), the default build from PyPI, which has CUDA.
# Override with `make install TORCH_INDEX=https://download.pytorch.org/whl/cu126`.
TORCH       ?= 2.13.0
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)

install: $(BIN)/python
	$(BIN)/pip install --quiet --no-index --no-deps "torch==$(TORCH)" 2>/dev/null || \
	  $(BIN)/pip install --quiet "torch==$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"

# Data: $$AUTOENCODERS_DATA if set, else ../shared/data when it sits beside the repo,
# else the user cache (downloaded there on first use).
DATA_DIR ?= $(or $(AUTOENCODERS_DATA),$(wildcard ../shared/data))

# the demo needs the package only, not the test tools
demo: $(BIN)/python
	$(BIN)/pip install --quiet --no-index --no-deps "torch==$(TORCH)" 2>/dev/null || \
	  $(BIN)/pip install --quiet "torch==$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -c constraints.txt .
	$(BIN)/autoencoders reproduce vae-mnist --profile quick $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: install
	$(BIN)/python -m pytest -q

# Benchmarks run in their own environment, with pythae beside our package (checked to
# import beside torch before anything is timed). `make bench BENCH_ARGS=--busy` passes
# options to benchmarks/all.py.
BENCH_VENV ?= .venv-bench
bench:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --no-index --no-deps "torch==$(TORCH)" 2>/dev/null || \
	  $(BENCH_VENV)/bin/pip install --quiet "torch==$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BENCH_VENV)/bin/pip install --quiet pythae==0.1.2 -e .
	$(BENCH_VENV)/bin/python -c "import torch, pythae.models; from importlib.metadata import \
	  version as v; print('bench venv: torch', torch.__version__, '+ pythae', v('pythae'))"
	$(BENCH_VENV)/bin/python benchmarks/all.py $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(BENCH_ARGS)

# the code paths of an AVX2-only CPU on a newer one: oneDNN, PyTorch's kernels and MKL capped
# to AVX2 (bf16 is then emulated and precision = "auto" picks fp32)
bench-avx2:
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 $(MAKE) bench

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(BENCH_VENV) build src/*.egg-info
