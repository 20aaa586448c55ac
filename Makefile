# audiopipe: `make run` and `make test` work on a fresh machine with Python 3.11, git and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_HOME ?= $(CURDIR)/data/.prefect
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180

.PHONY: run test lint bench bench-scale clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)  ## generate the demo corpus (first time) and ingest the default dataset
	$(VENV)/bin/audiopipe run

test: $(STAMP)  ## the whole suite (corpora tests need ../shared/corpora; required when CI is set)
	$(VENV)/bin/ruff check .
	@mkdir -p "$(PREFECT_HOME)"
	$(PY) -m pytest
	@echo "--- doctests and feature tests again on numpy's baseline SIMD kernels (NPY_DISABLE_CPU_FEATURES)"
	NPY_DISABLE_CPU_FEATURES="$$($(PY) tests/numpy_dispatch.py)" $(PY) -m pytest -q -p no:cacheprovider audiopipe tests/features

bench: $(STAMP)
	$(PY) benchmarks/features.py
	$(PY) benchmarks/ingest.py

bench-scale: $(STAMP)
	$(PY) benchmarks/scale.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf data/out .pytest_cache
