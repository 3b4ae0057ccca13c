# iqa: two commands on a fresh machine with Python 3.11+:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# An editable install leaves iqa's own modules without bytecode, and where PYTHONDONTWRITEBYTECODE
# is set none is ever written: every start would recompile them (~0.1 s of a cold 'iqa analyze').
# A wheel install compiles at install time; this does the same.
SOURCES := iqa kernels phantoms cli fixtures

.PHONY: demo test test-fast bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q $(SOURCES)
	touch $(STAMP)

install: $(STAMP)

## Build a synthetic multi-scanner archive with drift, analyse it, trend it, write the report.
demo: $(STAMP)
	$(BIN)/iqa demo

## Install what the tests need and run them (CI runs exactly this).
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup tests
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/kernels

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow" tests

## Benchmarks (not part of the tests): Markdown table to stdout, JSON in bench-results/.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --output bench-results/bench.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
