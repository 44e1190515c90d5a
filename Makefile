# The two commands a newcomer runs (see README.md):
#   make demo   installs into .venv and reproduces the VAE paper's quick profile
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"

# Data: $$AUTOENCODERS_DATA if set, else ../shared/data when it sits beside the repo,
# else the user cache (downloaded there on first use).
DATA_DIR ?= $(or $(AUTOENCODERS_DATA),$(wildcard ../shared/data))

demo: install
	$(BIN)/autoencoders reproduce vae-mnist --profile quick $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: install
	$(BIN)/python -m pytest -q

# Benchmarks run in their own environment, with pythae beside our package.
BENCH_VENV ?= .venv-bench
bench:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet "torch==2.13.0"
	$(BENCH_VENV)/bin/pip install --quiet pythae==0.1.2 -e .
	$(BENCH_VENV)/bin/python benchmarks/all.py $(if $(DATA_DIR),--data-dir $(DATA_DIR))

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(BENCH_VENV) build src/*.egg-info
