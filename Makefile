# Two commands set up a fresh machine and use it: `make demo` and `make test`.
# Both create the virtual environment on first use (torch pinned to the local CPU build), after
# installing the Debian packages the tests need (scripts/system-packages.sh).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt scripts/system-packages.sh
	bash scripts/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt  # why: see that file
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/ualm run examples/demo.yaml

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_build.py

clean:
	rm -rf demo-run demo-out bench-out .pytest_cache
