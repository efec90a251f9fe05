# backprop-lab: every target a README command refers to.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-all test-slow lint format demo report ui bench tracking-server slurm-start slurm-stop clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,launchers,server]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev extra

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
	$(BIN)/python benchmarks/bench_digits.py

tracking-server: $(STAMP)  ## PostgreSQL-backed MLflow server on 127.0.0.1
	bash scripts/tracking_server.sh

slurm-start:  ## a single-node SLURM with accounting on 127.0.0.1 (root; installs its packages)
	bash scripts/slurm_local.sh start

slurm-stop:  ## cancel its jobs and stop every daemon it started
	bash scripts/slurm_local.sh stop

clean:
	rm -rf outputs multirun mlartifacts mlflow.db .pytest_cache
