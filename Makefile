# Every target does its own idempotent set-up: a .venv with the project and its dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup prerequisites demo test lint typecheck unit drill sim worker beat flower mcp bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The main job on an embedded default: no Redis, no servers to start by hand.
demo: setup
	$(BIN)/nexus demo

## The whole test suite (lint, types, tests). CI runs exactly this. Installs the Debian packages its tests need when
## they are missing and it runs as root (else prints the apt-get line): scripts/test-prerequisites.sh.
test: setup prerequisites lint typecheck
	$(BIN)/python -m pytest -q -m "not drill"

prerequisites:
	scripts/test-prerequisites.sh

## The fast lane: tests that start no redis-server, slapd, simulator stack or worker process (tests/conftest.py marks
## the ones that do `integration`); under a minute.
unit: setup
	$(BIN)/python -m pytest -q -m "not integration and not drill and not slow"

## ruff, the layer contract (import-linter, .importlinter) and no import cycle (grimp; lazy imports included).
lint: setup
	$(BIN)/ruff check nexus clients tasks workers tests benchmarks scripts docker
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/import_cycles.py

typecheck: setup
	$(BIN)/mypy

## Long fault drills (CI runs them through .ci/run).
drill: setup prerequisites
	$(BIN)/python -m pytest -q -m drill

## The services of docker-compose.yml without Docker, one per terminal (Redis at REDIS_URL, default
## 127.0.0.1:6379). Settings come from the environment and .env; against the simulators, start `make sim` first
## and give the others its env file: `NEXUS_ENV_FILE=.env.sim make worker` (likewise beat, flower, mcp).
SIM_PEOPLE  ?= 200
SIM_SEED    ?= 7
QUEUES      ?=
CONCURRENCY ?= 2

sim: setup
	$(BIN)/nexus sim --people $(SIM_PEOPLE) --seed $(SIM_SEED) --env-file .env.sim --truth truth.json

## By default one worker per system queue plus one for compare/audit (a supervised group: a slow system never
## delays the others); `make worker QUEUES=workday CONCURRENCY=4` runs one worker on the queues given (as compose).
worker: setup
	$(BIN)/nexus worker --concurrency $(CONCURRENCY) $(if $(QUEUES),--queues $(QUEUES))

## The weekly fleet audit (NEXUS_FLEET_AUDIT_CRON); several can run: redbeat's lock keeps one active.
beat: setup
	$(BIN)/nexus beat

## http://127.0.0.1:5555, basic auth NEXUS_FLOWER_USER / NEXUS_FLOWER_PASSWORD (generated and printed when unset).
flower: setup
	$(BIN)/nexus flower

## MCP over streamable HTTP on http://127.0.0.1:8765 (bearer token NEXUS_MCP_TOKEN when set).
mcp: setup
	$(BIN)/nexus mcp --transport http

bench: setup
	$(BIN)/python benchmarks/bench_orggen.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
