# The commands of the README:
#   make reproduce   executes every notebook (default profile) headlessly with papermill
#   make test        runs pytest: unit tests and every notebook at the smoke profile
#   make book        renders the executed notebooks to static HTML in book/ (book/index.html),
#                    to read them, figures included, without running anything
# Each creates the virtual environment first if it is missing or out of date.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
SEED    ?= 0

.PHONY: setup reproduce paper book wheels test test-notebooks smoke-tables test-fast clean-cache

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
# MPS=1: the GPU's processes share it under CUDA's Multi-Process Service (reproduce --mps)
MPS ?=
# DETERMINISTIC=1: CUDA training under torch's deterministic algorithms (reproduce --deterministic)
DETERMINISTIC ?=
paper: $(STAMP)
	$(PY) -m oneranker reproduce --profile paper --seed $(SEED) --device cuda --seeds $(PAPER_SEEDS) $(if $(filter 1,$(MPS)),--mps) $(if $(filter 1,$(DETERMINISTIC)),--deterministic)

# The executed notebooks (notebooks/, and results/<profile>/notebooks/ of other profiles) as HTML.
book: $(STAMP)
	$(PY) scripts/book.py

# Notebook 07 needs real MovieLens-100k (GroupLens' files, not shipped): without them it is not
# verified, and the run says so.
ML100K ?= $(or $(ONERANKER_ML100K),../shared/data/ml-100k)
NB_SKIP := $(if $(wildcard $(ML100K)/u.data),,--ignore=notebooks/07_real_data.ipynb)

# make test: the unit tests and every notebook top to bottom at the toy `smoke` profile, its
# tables compared with tests/smoke_tables (minutes; what CI runs). make test-notebooks: nbval
# re-executes the committed default-profile notebooks and checks their outputs exactly (over an
# hour on 2 cores from an empty cache). make smoke-tables: record the smoke tables again, after
# a change meant to move results.
test: $(STAMP)
	$(PY) -m pytest -v --durations=10 tests

test-notebooks: $(STAMP)
	@$(if $(NB_SKIP),echo "notebooks/07_real_data.ipynb not verified: MovieLens-100k not found at $(ML100K); get ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ and set ONERANKER_ML100K")
	$(PY) -m oneranker pretrain --profile $(PROFILE)
	$(PY) -m pytest -v --durations=10 notebooks --nbval-lax --nbval-current-env $(NB_SKIP)

smoke-tables: $(STAMP)
	$(PY) -c "from oneranker.reproduce import record_smoke_tables; print(record_smoke_tables())"

test-fast: $(STAMP)
	$(PY) -m pytest -v tests --deselect tests/test_notebooks.py::test_every_notebook_runs_at_smoke_and_writes_the_recorded_tables

# make wheels: every dependency but PyTorch as wheels for a GPU machine with its own torch and no
# package index (scripts/wheels.py; WHEEL_PYTHON is the target's Python). Install there with
#   python -m pip install --no-index --find-links wheels/ -e ".[notebooks,dev]"
# WHEEL_HAVE: a file naming the packages the target already has, left out too (e.g.
# scripts/h200_image.txt, the lent H200 machines' image: 84 wheels, 47 MiB instead of 132 and 204).
WHEEL_PYTHON ?= 3.12
WHEEL_HAVE ?=
wheels: $(STAMP)
	$(PY) scripts/wheels.py --out wheels --python $(WHEEL_PYTHON) $(if $(WHEEL_HAVE),--have $(WHEEL_HAVE))

clean-cache:
	rm -rf cache
