# Run `make` to list the targets. Everything runs inside .venv, created on first use.
PYTHON ?= python3
# The torch that pyproject.toml pins (its `"torch==X"` line is the one place the version is written).
TORCH_VERSION ?= $(shell sed -n 's/^ *"torch==\([^"]*\)".*/\1/p' pyproject.toml)
# Wheel index for torch, e.g. https://download.pytorch.org/whl/cu128 (GPU) or .../whl/cpu (small CPU build).
TORCH_INDEX ?=
CONFIG ?= configs/textcnn.yaml
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers for make test / test-fast: one per core of the 2-core CI machine; each test file stays on
# one worker (--dist loadfile), so a module's fixtures are built once.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter 0 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
# Experiment tracking: W&B sweep, the same search with Optuna, and the optimizer study (docs/tracking.md).
SWEEP_CONFIG ?= configs/sweeps/textcnn.yaml
SWEEP_COUNT ?= 10
WANDB_PROJECT ?= textcls
SWEEP_LOCAL_ARGS ?=
STUDY_ARGS ?=
# The Results tables (benchmarks/accuracy.py): folder holding mr/, sst2/, imdb/ (label,text CSVs) and goemotions/.
DATA ?= ../shared/data
ACCURACY_ARGS ?= --seeds 0 1 2 --jobs 2
# data set:recipe, one per Results row; recipe configs/benchmarks/R.yaml stacks on configs/<R up to its first _>.yaml.
ACCURACY_RUNS = sst2:textcnn_rand sst2:mlp_bigram sst2:mlp_nb mr:textcnn_rand mr:mlp_bigram mr:mlp_nb \
	imdb:textcnn_imdb imdb:mlp_imdb imdb:mlp_nb_imdb

TORCH_INDEX_ARGS = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
STAMP = .venv/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast lint format docs docs-serve bench accuracy clean sweep sweep-local study

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

# torch goes first so that a CUDA build from TORCH_INDEX is kept by the editable install.
# The stamp is touched last: a failed install leaves it missing and the next make retries.
$(STAMP): pyproject.toml
	@test -n "$(TORCH_VERSION)" || { echo 'no "torch==X" line in pyproject.toml: set TORCH_VERSION' >&2; exit 1; }
	test -x .venv/bin/python || $(PYTHON) -m venv .venv
	.venv/bin/pip install -q torch==$(TORCH_VERSION) $(TORCH_INDEX_ARGS)
	.venv/bin/pip install -q -e ".[dev]"
	touch $@

install: $(STAMP) ## create .venv with torch, the package (editable) and dev tools

train: $(STAMP) ## train: make train CONFIG=configs/textcnn.yaml ARGS="--trainer.max_epochs=1"
	.venv/bin/textcls fit --config $(CONFIG) $(ARGS)

# The 15 slowest tests are listed at the end; with TEST_WORKERS=1, slow tests are also named as they start
# (tests/conftest.py).
# The serve page's browser test drives Debian's Chromium: installed here when missing and running as root (as CI
# does); elsewhere, or when apt cannot fetch it, that one test skips and says why.
.PHONY: browser
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	command -v google-chrome >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	echo "chromium not installed: tests/integration/test_serve_page.py will skip"

test: $(STAMP) browser ## run the whole test suite, slow tests included
	.venv/bin/python -m pytest $(PYTEST_PARALLEL) --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP) ## run the tests not marked slow
	.venv/bin/python -m pytest $(PYTEST_PARALLEL) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: $(STAMP) ## fix imports and lint autofixes, then format
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# The documentation site (mkdocs.yml, docs/): strict, so a broken link or a page missing from the nav fails the build.
docs: $(STAMP) ## build the documentation site into site/ (mkdocs build --strict, works offline)
	.venv/bin/mkdocs build --strict

docs-serve: $(STAMP) ## preview the documentation site at http://127.0.0.1:8000
	.venv/bin/mkdocs serve --dev-addr 127.0.0.1:8000

bench: $(STAMP) ## run every benchmarks/*.py except those that need a data set (accuracy.py: make accuracy)
	@for f in $(sort $(filter-out benchmarks/accuracy.py benchmarks/mlp_vs_fasttext.py,$(wildcard benchmarks/*.py))); do \
		echo "== $$f"; .venv/bin/python "$$f" || exit 1; \
	done

# Every textcls row of the README's Results tables, then fastText on the same splits; finished rows are kept, so an
# interrupted run continues. Results in docs/results/ (summary.md); hours on a 2-core CPU, most of it IMDB's TextCNN.
accuracy: $(STAMP) ## Results tables: make accuracy DATA=../shared/data ACCURACY_ARGS="--seeds 0 1 2 --jobs 2"
	@for run in $(ACCURACY_RUNS); do \
		data=$${run%%:*}; recipe=$${run#*:}; echo "== $(DATA)/$$data: configs/benchmarks/$$recipe.yaml"; \
		.venv/bin/python benchmarks/accuracy.py $(DATA)/$$data --config configs/$${recipe%%_*}.yaml \
			--config configs/benchmarks/$$recipe.yaml $(ACCURACY_ARGS) || exit 1; \
	done
	for model in mlp:mlp_nb_multilabel textcnn:textcnn_multilabel; do \
		.venv/bin/python benchmarks/accuracy.py $(DATA)/goemotions --config configs/$${model%%:*}.yaml \
			--config configs/benchmarks/$${model#*:}.yaml --config configs/benchmarks/multilabel.yaml $(ACCURACY_ARGS) || exit 1; \
	done
	for d in sst2 mr imdb goemotions; do .venv/bin/python benchmarks/accuracy.py $(DATA)/$$d --fasttext $(ACCURACY_ARGS) || exit 1; done
	for d in sst2 mr imdb goemotions; do .venv/bin/python benchmarks/accuracy.py $(DATA)/$$d --tfidf --seeds 0 || exit 1; done

# The agent runs the sweep's `${interpreter} -m textcls`, so the venv's python must come first on PATH.
sweep: $(STAMP) ## W&B sweep over SWEEP_CONFIG plus one agent for SWEEP_COUNT runs (needs `wandb login`)
	@id=$$(.venv/bin/python -c 'import sys, yaml, wandb; print(wandb.sweep(yaml.safe_load(open(sys.argv[1])), project=sys.argv[2]))' \
		$(SWEEP_CONFIG) $(WANDB_PROJECT) | tail -n 1) && test -n "$$id" && \
	PATH="$(CURDIR)/.venv/bin:$$PATH" WANDB_PROJECT=$(WANDB_PROJECT) \
		.venv/bin/wandb agent --project $(WANDB_PROJECT) --count $(SWEEP_COUNT) $$id

sweep-local: $(STAMP) ## same search space with Optuna, no account: make sweep-local SWEEP_LOCAL_ARGS="--trials 20"
	.venv/bin/python benchmarks/sweep_local.py --sweep $(SWEEP_CONFIG) $(SWEEP_LOCAL_ARGS)

study: $(STAMP) ## the optimizer study, resumable (hours): make study DATA=../shared/data STUDY_ARGS="--hours 3"
	.venv/bin/python studies/compare_optimizers.py --data-root $(DATA) --jobs 2 $(STUDY_ARGS)

clean: ## remove .venv, caches and build artefacts (keeps runs/)
	rm -rf .venv build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./runs -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
