# lossviz: two commands do all the set-up on a fresh machine with Python 3.11+.
#   make lab    create .venv if missing, install lossviz + notebook deps, open JupyterLab
#   make test   same set-up, then unit tests + every notebook through nbval on 2 workers
#
# TORCH_SPEC lets a machine choose its torch build before anything else is installed,
# e.g. `make test TORCH_SPEC=torch==2.13.0` (CI on our CPU machines does this in .ci/run).
# TORCH_INDEX takes torch from another index, e.g. PyTorch's CPU-only wheels on Linux:
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
# PIP_ARGS passes anything else to every pip install (a proxy, --index-url of a mirror, ...).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_SPEC ?=
TORCH_INDEX ?=
PIP_ARGS ?=
PIP := $(BIN)/python -m pip
WORKERS ?= 2
CELL_TIMEOUT ?= 300
PORT ?= 8888
# JupyterLab refuses to run as root without --allow-root (containers, CI machines)
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
STAMP  := $(VENV)/.lossviz-installed
PYDIRS := $(wildcard lossviz tests benchmarks scripts)

SEEDS ?= 0-19

.PHONY: test-gpu lab test test-unit test-notebooks test-seeds lint format install venv clean figure bench site test-browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

venv: $(BIN)/python

$(STAMP): pyproject.toml | $(BIN)/python
	@if [ -n "$(TORCH_SPEC)$(TORCH_INDEX)" ]; then \
	  $(PIP) install $(PIP_ARGS) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(or $(TORCH_SPEC),torch)"; fi
	$(PIP) install $(PIP_ARGS) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lab: install
	$(BIN)/jupyter lab --port=$(PORT) $(LAB_ARGS) notebooks/00_start_here.ipynb

# Unit tests and notebooks run together so pytest-xdist can balance them; --dist loadscope keeps
# all cells of one notebook on the same worker (they share one kernel).
# The browser tests (JupyterLab + Chromium; skipped with a hint where either is missing) run after
# the rest, on their own: beside the notebooks they would compete for the same two cores and push
# notebooks past their 60 s budget.
test: install
	OMP_NUM_THREADS=1 LOSSVIZ_QUICK=1 MPLBACKEND=Agg $(BIN)/python -m pytest \
	  -n $(WORKERS) --dist loadscope -m "not browser" \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  --doctest-modules tests notebooks lossviz
	OMP_NUM_THREADS=1 LOSSVIZ_QUICK=1 MPLBACKEND=Agg $(BIN)/python -m pytest -rs -m browser \
	  tests/test_browser.py tests/test_site_browser.py

test-unit: install
	$(BIN)/python -m pytest -n $(WORKERS) --doctest-modules tests lossviz

test-notebooks: install
	OMP_NUM_THREADS=1 LOSSVIZ_QUICK=1 $(BIN)/python -m pytest -n $(WORKERS) --dist loadscope \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) notebooks

# Every notebook under every seed of SEEDS (quick mode, WORKERS at a time): the claim checks must
# hold at any seed (CONTRIBUTING.md). Too long for `make test`; writes test-artifacts/seeds.md.
test-seeds: install
	$(BIN)/python scripts/test_seeds.py --seeds "$(SEEDS)" --workers $(WORKERS) $(NOTEBOOKS)

# On a machine with a CUDA GPU: the unit tests and every notebook (quick mode) with
# LOSSVIZ_DEVICE=cuda, then the GPU benchmark (benchmarks/gpu.py -> test-artifacts/gpu-bench.md).
# Without a GPU it says so and exits 0.
test-gpu: install
	@if ! $(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  echo "make test-gpu: no CUDA device (torch.cuda.is_available() is False): skipped"; exit 0; fi; \
	set -e; \
	LOSSVIZ_DEVICE=cuda MPLBACKEND=Agg $(BIN)/python -m pytest -n 1 --doctest-modules tests lossviz; \
	LOSSVIZ_DEVICE=cuda LOSSVIZ_QUICK=1 $(BIN)/python -m pytest -n 1 --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=$(CELL_TIMEOUT) notebooks; \
	$(BIN)/python benchmarks/gpu.py --device cuda --out test-artifacts/gpu-bench.md

# Widgets in a real browser (JupyterLab + headless Chromium via Playwright). Needs Debian's
# chromium (apt-get install chromium); `make test` runs it too when both are present.
test-browser: install
	$(PIP) install $(PIP_ARGS) -e ".[browser,site]"
	OMP_NUM_THREADS=1 LOSSVIZ_QUICK=1 $(BIN)/python -m pytest -v -s -rs tests/test_browser.py tests/test_site_browser.py

# The static book in site/ (Sphinx + MyST-NB; every notebook executed in quick mode, WORKERS at a
# time; unchanged notebooks come from the cache). Needs Node's npm once, for the bundled MathJax.
site: install
	$(PIP) install $(PIP_ARGS) -e ".[site]"
	OMP_NUM_THREADS=1 LOSSVIZ_QUICK=1 $(BIN)/python scripts/build_site.py --out site --jobs $(WORKERS)

lint: install
	$(BIN)/ruff check $(PYDIRS)
	$(BIN)/ruff format --check $(PYDIRS)
	$(BIN)/python -m lossviz._nblint notebooks

format: install
	$(BIN)/ruff check --fix $(PYDIRS)
	$(BIN)/ruff format $(PYDIRS)
	$(BIN)/nbstripout notebooks/*.ipynb notebooks/*/*.ipynb

figure: install
	$(BIN)/python scripts/make_readme_figure.py

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; OMP_NUM_THREADS=1 $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis site test-artifacts
