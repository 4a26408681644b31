# Every target installs what it needs on first use: a virtual environment in .venv,
# pinned by requirements.lock, with the project installed in editable mode; GraphiQL's
# scripts from the npm registry (the versions strawberry's page names), served by the API;
# for the tests, the graphql-http audit and a headless Chromium; for the benchmarks, pgbench
# and wrk.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GRAPHIQL := build/graphiql
GRAPHIQL_STAMP := $(GRAPHIQL)/.installed
TEST_TOOLS := build/test-tools
TEST_TOOLS_STAMP := $(TEST_TOOLS)/.installed
GRAPHQL_HTTP_VERSION := 1.23.1
NPM_INSTALL := npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error

.PHONY: up test chaos test-tools chromium pgbench wrk lint format bench install clean

up: $(STAMP) $(GRAPHIQL_STAMP)
	$(BIN)/sagaline up

test: $(STAMP) $(GRAPHIQL_STAMP) test-tools
	$(BIN)/pytest

# The whole deployment under faults (RELIABILITY.md); `make test` runs its quick version.
# CHAOS_ARGS passes options, e.g. make chaos CHAOS_ARGS="--transfers 300 --workers 3".
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run $(CHAOS_ARGS)

test-tools: $(TEST_TOOLS_STAMP) chromium

chromium:
	@command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# append_concurrent measures pgbench beside the store; Debian ships it with the server.
pgbench:
	@command -v pgbench >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-contrib; }

# graphql_query's load generator, a C program with a Lua script for the POST body.
wrk:
	@command -v wrk >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }

# Every bench/*.py (or those named by BENCHES=...), each one's stdout kept in build/bench,
# then a table of every figure against its goal; a failed script is listed and fails the run.
BENCHES ?= bench/[!_]*.py
BENCH_RESULTS := build/bench

bench: $(STAMP) pgbench wrk
	@rm -rf $(BENCH_RESULTS); mkdir -p $(BENCH_RESULTS); failed=""; \
	for script in $(BENCHES); do \
		echo "== $$script"; out=$(BENCH_RESULTS)/$$(basename $$script .py).out; \
		$(BIN)/python $$script > $$out || failed="$$failed $$script"; cat $$out; \
	done; \
	echo; echo "== every figure against its goal"; \
	$(BIN)/python bench/_table.py $(BENCH_RESULTS)/*.out; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

install: $(STAMP) $(GRAPHIQL_STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $(STAMP)

# Rebuilt with the virtual environment: a new strawberry may name other versions.
$(GRAPHIQL_STAMP): $(STAMP)
	rm -rf $(GRAPHIQL)
	$(NPM_INSTALL) --prefix $(GRAPHIQL) $$($(BIN)/python -m api.graphiql)
	touch $(GRAPHIQL_STAMP)

$(TEST_TOOLS_STAMP): Makefile
	rm -rf $(TEST_TOOLS)
	$(NPM_INSTALL) --prefix $(TEST_TOOLS) graphql-http@$(GRAPHQL_HTTP_VERSION)
	touch $(TEST_TOOLS_STAMP)

clean:
	rm -rf $(VENV) $(GRAPHIQL) $(TEST_TOOLS) .mypy_cache .ruff_cache .pytest_cache *.egg-info
