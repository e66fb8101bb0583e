# The two commands of the README:
#   make reproduce   executes every notebook (default profile) headlessly with papermill
#   make test        runs pytest: unit tests and nbval over the committed notebooks
# Both create the virtual environment first if it is missing or out of date.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
SEED    ?= 0

.PHONY: setup reproduce paper test test-fast clean-cache

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) (pinned by constraints.txt)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --progress-bar on "pip>=24"
	$(PY) -m pip install --progress-bar on -c constraints.txt -e ".[notebooks,dev]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) -m oneranker reproduce --profile $(PROFILE) --seed $(SEED)

PAPER_SEEDS ?= 0 1 2
paper: $(STAMP)
	$(PY) -m oneranker reproduce --profile paper --seed $(SEED) --device cuda --seeds $(PAPER_SEEDS)

# Notebook 07 needs real MovieLens-100k (GroupLens' files, not shipped): without them it is not
# verified, and the run says so.
ML100K ?= $(or $(ONERANKER_ML100K),../shared/data/ml-100k)
NB_SKIP := $(if $(wildcard $(ML100K)/u.data),,--ignore=notebooks/07_real_data.ipynb)

test: $(STAMP)
	@$(if $(NB_SKIP),echo "notebooks/07_real_data.ipynb not verified: MovieLens-100k not found at $(ML100K); get ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ and set ONERANKER_ML100K")
	$(PY) -m pytest -v --durations=10 tests notebooks --nbval-lax --nbval-current-env $(NB_SKIP)

test-fast: $(STAMP)
	$(PY) -m pytest -v tests

clean-cache:
	rm -rf cache
