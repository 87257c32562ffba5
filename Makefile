# Set-up and the two jobs. `make demo` runs the main job, `make test` the tests; both create the
# virtual environment, install the package and fetch the pinned test assets first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that this project's machines carry; on a GPU machine set TORCH_SPEC to the
# build you want (e.g. TORCH_SPEC='torch>=2.4').
TORCH_SPEC ?= torch==2.13.0
# Lexicons and released data for tests come from ../shared (offline, sha256-checked).
SHARED ?= $(abspath $(CURDIR)/../shared)
# The demo reads the paper's lexicons and released scores from there too when it exists (still
# sha256-checked); elsewhere they are downloaded from their pinned upstream URLs.
LEXICON_DIR ?= $(wildcard $(SHARED)/corpora)
PAPER_DATA ?= $(wildcard $(SHARED)/paper-data)
export RMVALUES_CACHE ?= $(CURDIR)/.cache/rmvalues
PYTEST_ARGS ?= -n 2

.PHONY: demo test check install assets lint clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,train,scale]"
	touch $@

install: $(VENV)/.installed

assets: install
	$(VENV)/bin/rmvalues assets fetch

demo: assets
	RMVALUES_LEXICON_DIR=$(LEXICON_DIR) RMVALUES_PAPER_DATA=$(PAPER_DATA) \
		$(VENV)/bin/rmvalues demo --out demo-out

test: assets
	RMVALUES_LEXICON_DIR=$(SHARED)/corpora RMVALUES_PAPER_DATA=$(SHARED)/paper-data \
		$(PY) -m pytest $(PYTEST_ARGS)

# The everyday subset: the whole suite but the tests marked slow (real small models, long
# computations). `make test` stays the full suite that CI runs.
check: assets
	RMVALUES_LEXICON_DIR=$(SHARED)/corpora RMVALUES_PAPER_DATA=$(SHARED)/paper-data \
		$(PY) -m pytest $(PYTEST_ARGS) -m "not slow"

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .cache demo-out
