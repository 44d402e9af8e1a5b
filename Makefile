# One task runner for people and CI. `make demo` and `make test` bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint typecheck architecture pytest bench bench-scan bench-serve clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/tbhub demo

lint: venv
	$(BIN)/ruff check src tests benchmarks

typecheck: venv
	$(BIN)/mypy src

architecture: venv
	$(BIN)/lint-imports

pytest: venv
	$(BIN)/pytest

test: lint typecheck architecture pytest

bench: bench-scan bench-serve

bench-scan: venv
	$(BIN)/python benchmarks/scan.py

bench-serve: venv
	$(BIN)/python benchmarks/serve.py

clean-venv:
	rm -rf $(VENV)
