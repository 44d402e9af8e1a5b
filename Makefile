# One task runner for people and CI. `make demo` and `make test` bootstrap .venv on a fresh machine:
# `make demo` installs what running tbhub needs (`pip install -e .`), `make test` adds the development
# set (`.[dev]`: pytest, mypy, playwright, moto, ...). Each install has its own stamp, redone when
# pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# Keras' own venv for its tests (TensorFlow stays out of .venv: see tests/keras-requirements.txt).
KERAS_VENV ?= .venv-keras
KERAS_STAMP := $(KERAS_VENV)/.installed
# Extra arguments for `tbhub demo` (make demo DEMO_ARGS="--port 6105").
DEMO_ARGS ?=

.PHONY: venv dev-venv keras-venv demo test lint typecheck architecture pytest bench bench-scan bench-serve docs clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

# Best effort, like kubectl in .ci/run: where TensorFlow does not install, the Keras tests say so in a skip.
$(KERAS_STAMP): tests/keras-requirements.txt
	( $(PYTHON) -m venv $(KERAS_VENV) && $(KERAS_VENV)/bin/python -m pip install -q -r tests/keras-requirements.txt \
	  && touch $(KERAS_STAMP) ) || echo "TensorFlow did not install: the Keras tests will skip"

venv: $(RUN_STAMP)

dev-venv: $(DEV_STAMP)

keras-venv: $(KERAS_STAMP)

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

pytest: dev-venv keras-venv
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
	rm -rf $(VENV) $(KERAS_VENV)
