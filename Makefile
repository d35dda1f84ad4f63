# Every target does its own idempotent set-up: a .venv with the project and its dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck unit drill sim worker beat flower mcp bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The main job on an embedded default: no Redis, no servers to start by hand.
demo: setup
	$(BIN)/nexus demo

## The whole test suite (lint, types, tests). CI runs exactly this.
test: setup lint typecheck
	$(BIN)/python -m pytest -q -m "not drill"

lint: setup
	$(BIN)/ruff check nexus clients tasks workers tests benchmarks

typecheck: setup
	$(BIN)/mypy

## Long fault drills (CI runs them through .ci/run).
drill: setup
	$(BIN)/python -m pytest -q -m drill

sim: setup
	$(BIN)/nexus sim --people 200 --seed 7 --env-file .env.sim --truth truth.json

worker: setup
	$(BIN)/nexus worker

bench: setup
	$(BIN)/python benchmarks/bench_orggen.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
