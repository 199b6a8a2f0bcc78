# Sketch2Fashion — every target works on a fresh machine (it runs `setup` first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
# Stage commands call `python` and `s2f`: run DVC with the project's venv first on PATH.
export PATH := $(BIN):$(PATH)
# The project `make serve` serves: . (the demo) or real (what `make real` writes).
PROJECT ?= .

.PHONY: help setup system test test-fast demo serve real smoke bench reliability data dag clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed system  ## create .venv, install torch (CPU wheel) then the project with [dev]
	@[ -d .dvc ] || $(BIN)/dvc init $$( [ -d .git ] || echo --no-scm )

system:  ## Debian packages: chromium (Playwright drives it for the page tests) g++ and Python headers (torch.compile's CPU kernels)
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	  command -v g++ >/dev/null || missing="$$missing g++"; \
	  $(PYTHON) -c "import os, sysconfig; exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" \
	    || missing="$$missing python3-dev"; \
	  [ -z "$$missing" ] || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test: setup  ## run the whole test suite (slow tests included)
	$(BIN)/pytest

test-fast: setup  ## the tests not marked slow
	$(BIN)/pytest -m 'not slow'

demo: setup  ## the main job: demo data -> dvc repro -> champions -> the page on 127.0.0.1:3000 from the first champion on
	@echo "details later: dvc metrics show | dvc plots show | mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db"
	$(BIN)/s2f demo --host 127.0.0.1 --port 3000

serve: setup  ## bentoml serve the champions, catalog search and the drawing page on http://127.0.0.1:3000 (PROJECT=real: the real run's)
	@echo "open http://127.0.0.1:3000  (Ctrl+C stops)"
	S2F_PROJECT_ROOT=$(PROJECT) $(BIN)/bentoml serve service:API --host 127.0.0.1 --port 3000

real: setup  ## every stage on the real photos in ../shared/data (no feed: generated cards) into real/, its own registry (REAL_ARGS=--budget gpu)
	$(BIN)/s2f real $(REAL_ARGS)

smoke: setup  ## the whole pipeline on the tiny profile in a scratch repo, twice (2nd must be a no-op)
	$(BIN)/s2f smoke

bench: setup  ## performance benchmarks -> bench/results.json + bench/README.md (40-50 min; BENCH_ARGS=--skip-1m)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

reliability: setup  ## hostile input, injected faults, upload memory -> reliability/results.json + README.md (~15 min)
	$(BIN)/python reliability/run.py $(RELIABILITY_ARGS)

dag: setup  ## draw the pipeline graph
	$(BIN)/dvc dag

clean:  ## remove pipeline outputs (the DVC cache keeps them: `dvc checkout` restores)
	rm -rf data
