# mlgenai — `make help` lists the targets. `make ci` is exactly what .ci/run runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help install run migrate proto proto-check lint format typecheck buf-lint buf-breaking test test-sqlite test-pg bench bench-compare load soak client-wheel client-check ci clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e ./client -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the server, the client and the dev tools

run: $(STAMP) ## install, then run the server on the embedded SQLite default (127.0.0.1:50051)
	$(PY) -m server serve $(ARGS)

migrate: $(STAMP) ## upgrade the schema of MLGENAI_DATABASE_URL (default sqlite:///mlgenai.db)
	$(PY) -m server migrate

proto: $(STAMP) ## regenerate client/src/mlgenai/v1 from proto/
	$(PY) client/scripts/generate.py

proto-check: proto ## fail if the committed generated code differs from proto/
	@git diff --exit-code --stat -- client/src/mlgenai/v1 || (echo "generated code is stale: run 'make proto' and commit" && exit 1)
	@test -z "$$(git ls-files --others --exclude-standard client/src/mlgenai/v1)" || (echo "untracked generated files: run 'make proto' and commit" && exit 1)

buf-lint: $(STAMP) ## buf lint of the contract
	$(BIN)/buf lint

buf-breaking: $(STAMP) ## buf breaking against main (against the parent commit when on main)
	@if git rev-parse --verify -q main >/dev/null && [ "$$(git rev-parse HEAD)" != "$$(git rev-parse main)" ]; then \
		against='.git#branch=main'; \
	elif git rev-parse --verify -q HEAD~1 >/dev/null && git ls-tree -r --name-only HEAD~1 | grep -q '^proto/.*\.proto$$'; then \
		against='.git#ref=HEAD~1'; \
	else echo "buf breaking: no earlier contract to compare with"; exit 0; fi; \
	echo "buf breaking --against $$against"; BUF_CACHE_DIR=$${TMPDIR:-/tmp}/buf-cache $(BIN)/buf breaking --against "$$against"

format: $(STAMP) ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on server, store and the client's hand-written code
	$(BIN)/mypy server store client/src/mlgenai/client bench loadtest

lint: $(STAMP) proto-check buf-lint buf-breaking typecheck ## everything CI checks besides tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) ## run the whole suite: SQLite and PostgreSQL (when reachable; mandatory with CI=true)
	$(BIN)/pytest -n 2 --dist loadfile $(ARGS)

test-sqlite: $(STAMP) ## the suite on SQLite only
	$(BIN)/pytest -n 2 --dist loadfile --db sqlite $(ARGS)

test-pg: $(STAMP) ## the suite on PostgreSQL only
	$(BIN)/pytest -n 2 --dist loadfile --db postgresql $(ARGS)

bench: $(STAMP) ## benchmarks on SQLite and PostgreSQL (prints a table, writes bench/results/*.json)
	$(PY) -m bench $(ARGS)

bench-compare: $(STAMP) ## ours vs MLflow 3.18 and Phoenix on this PostgreSQL (installs them into .peers/ once)
	$(PY) -m bench.compare $(ARGS)

load: $(STAMP) ## load a running server: make load ARGS="--target 127.0.0.1:50051 --scenario mix --rate 200"
	$(PY) -m loadtest $(ARGS)

soak: $(STAMP) ## 10 min of mix on 2 workers + PostgreSQL: errors, p99 drift, memory growth (ARGS="--duration 120")
	$(PY) -m loadtest.soak $(ARGS)

client-wheel: $(STAMP) ## build the mlgenai-client wheel into client/dist
	rm -rf client/dist
	$(PY) -m build --wheel --outdir client/dist client/

client-check: client-wheel ## install the wheel alone in a fresh venv and call a running server with it
	$(PY) -m tests.interop.client_wheel_check client/dist/*.whl

ci: install lint test client-check ## what CI runs

clean: ## remove the virtual environment and build output
	rm -rf $(VENV) client/dist dist .mypy_cache .ruff_cache
