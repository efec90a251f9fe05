# backprop-lab: every target a README command refers to.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install lock test test-all test-slow lint format demo report ui bench tracking-server slurm-start slurm-stop clean

# Every version comes from uv.lock: uv (itself locked, in the dev extra) makes .venv exactly the
# lock, the project editable with the extras below. On a fresh machine pip first brings that uv
# into .bplab/uv-bootstrap. A .venv made by pip (older checkouts) is made again by uv, since uv
# keeps the setuptools that pip's venv seeds and the lock does not have.
UV_VERSION := $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)
UV_BOOT    := .bplab/uv-bootstrap
EXTRAS     := --extra dev --extra launchers --extra server

$(STAMP): pyproject.toml uv.lock
	@grep -qs '^uv = ' $(VENV)/pyvenv.cfg || { test ! -e $(VENV) || echo "recreating $(VENV) with uv"; rm -rf $(VENV); }
	@set -e; if $(BIN)/uv --version 2>/dev/null | grep -q '^uv $(UV_VERSION) '; then uv=$(BIN)/uv; else \
		test -x $(UV_BOOT)/bin/python || $(PYTHON) -m venv $(UV_BOOT); \
		$(UV_BOOT)/bin/python -m pip install -qq 'uv==$(UV_VERSION)'; uv=$(UV_BOOT)/bin/uv; fi; \
		echo "uv sync --locked --compile-bytecode $(EXTRAS)"; $$uv sync --locked --compile-bytecode --quiet --python $(PYTHON) $(EXTRAS)
	rm -rf $(UV_BOOT); rmdir .bplab 2>/dev/null || true
	@# Bytecode ahead of time (uv's --compile-bytecode for the packages, compileall for src/):
	@# where PYTHONDONTWRITEBYTECODE is set, every start would otherwise compile from source.
	$(BIN)/python -m compileall -q src > /dev/null
	touch $(STAMP)

install: $(STAMP)  ## create .venv with exactly the versions of uv.lock

lock: $(STAMP)  ## refresh uv.lock to the newest versions pyproject.toml allows
	$(BIN)/uv lock --upgrade

test: $(STAMP)  ## the fast suite
	$(BIN)/python -m pytest -q

test-all: $(STAMP)  ## everything, slow tests included
	$(BIN)/python -m pytest -q -m "slow or not slow"

test-slow: $(STAMP)  ## only the slow tests (launchers, SLURM, PostgreSQL + MLflow server, Chromium)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format src tests benchmarks

demo: $(STAMP)  ## run every study on the embedded store and build the report
	$(BIN)/python -m backprop_lab.demo

report: $(STAMP)
	$(BIN)/bplab-report --out experiments

ui: $(STAMP)  ## open the MLflow UI on the embedded store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_tracking.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_mlp.py
	$(BIN)/python benchmarks/bench_digits.py

tracking-server: $(STAMP)  ## PostgreSQL-backed MLflow server on 127.0.0.1
	bash scripts/tracking_server.sh

slurm-start:  ## a single-node SLURM with accounting on 127.0.0.1 (root; installs its packages)
	bash scripts/slurm_local.sh start

slurm-stop:  ## cancel its jobs and stop every daemon it started
	bash scripts/slurm_local.sh stop

clean:
	rm -rf outputs multirun mlartifacts mlflow.db .pytest_cache
