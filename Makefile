# Run `make` to list the targets. Everything runs inside .venv, created on first use.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
# Wheel index for torch, e.g. https://download.pytorch.org/whl/cu128 (GPU) or .../whl/cpu (small CPU build).
TORCH_INDEX ?=
CONFIG ?= configs/textcnn.yaml
ARGS ?=
PYTEST_ARGS ?=

TORCH_INDEX_ARGS = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
STAMP = .venv/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast lint format bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

# torch goes first so that a CUDA build from TORCH_INDEX is kept by the editable install.
# The stamp is touched last: a failed install leaves it missing and the next make retries.
$(STAMP): pyproject.toml
	test -x .venv/bin/python || $(PYTHON) -m venv .venv
	.venv/bin/pip install -q torch==$(TORCH_VERSION) $(TORCH_INDEX_ARGS)
	.venv/bin/pip install -q -e ".[dev]"
	touch $@

install: $(STAMP) ## create .venv with torch, the package (editable) and dev tools

train: $(STAMP) ## train: make train CONFIG=configs/textcnn.yaml ARGS="--trainer.max_epochs=1"
	.venv/bin/textcls fit --config $(CONFIG) $(ARGS)

test: $(STAMP) ## run the whole test suite, slow tests included
	.venv/bin/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## run the tests not marked slow
	.venv/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: $(STAMP) ## fix imports and lint autofixes, then format
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: $(STAMP) ## run every benchmarks/*.py
	@for f in $(sort $(wildcard benchmarks/*.py)); do \
		echo "== $$f"; .venv/bin/python "$$f" || exit 1; \
	done

clean: ## remove .venv, caches and build artefacts (keeps runs/)
	rm -rf .venv build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./runs -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
