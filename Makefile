# One task runner for people and CI. `make demo` and `make test` bootstrap .venv on a fresh machine:
# `make demo` installs what running tbhub needs (`pip install -e .`), `make test` adds the development
# set (`.[dev]`: pytest, mypy, playwright, moto, ...). Each install has its own stamp, redone when
# pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# Extra arguments for `tbhub demo` (make demo DEMO_ARGS="--port 6105").
DEMO_ARGS ?=

.PHONY: venv dev-venv demo test lint typecheck architecture pytest bench bench-scan bench-serve docs clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

venv: $(RUN_STAMP)

dev-venv: $(DEV_STAMP)

# `tbhub demo` ends on Ctrl-C with exit 0 and takes the terminal's Ctrl-C for itself (see
# tbhub.interfaces.cli.demo), so make neither reports an error nor dies of the interrupt.
demo: venv
	@$(BIN)/tbhub demo $(DEMO_ARGS)

lint: dev-venv
	$(BIN)/ruff check src tests benchmarks

typecheck: dev-venv
	$(BIN)/mypy src

architecture: dev-venv
	$(BIN)/lint-imports

pytest: dev-venv
	$(BIN)/pytest

test: lint typecheck architecture pytest

bench: bench-scan bench-serve

bench-scan: dev-venv
	$(BIN)/python benchmarks/scan.py

bench-serve: dev-venv
	$(BIN)/python benchmarks/serve.py

# The CLI reference is every command's --help; tests/test_docs.py fails when it is stale.
docs: venv
	$(BIN)/python -m tbhub.interfaces.cli.reference > docs/cli-reference.md

clean-venv:
	rm -rf $(VENV)
