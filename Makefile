# The two commands a newcomer needs: `make run` and `make test`. Both create .venv when it is
# missing or stale (pyproject.toml changed, or its Python is gone) and install the project into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.crewql-installed

.PHONY: run test lint format bench schema migrate clean help

help:
	@echo "make run     serve the API on http://127.0.0.1:8000 (embedded SQLite, GraphiQL at /graphql)"
	@echo "make test    run the whole test suite (PostgreSQL too when CREWQL_TEST_POSTGRES_URL is set)"
	@echo "make lint    ruff, mypy and the import contracts (layers)"
	@echo "make bench   benchmarks against a bare Strawberry app (see docs/performance.md)"
	@echo "make schema  export schema.graphql"

$(STAMP): pyproject.toml
	@if ! $(BIN)/python -c "import sys" >/dev/null 2>&1; then \
		echo "creating $(VENV)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Authentication off (every request acts as admin of the default workspace): allowed on 127.0.0.1
# only; deployments use keys (docs/security.md).
run: $(STAMP)
	CREWQL_AUTH_ENABLED=false $(BIN)/crewql serve

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: $(STAMP)
	$(BIN)/crewql export-schema --output schema.graphql

migrate: $(STAMP)
	$(BIN)/crewql migrate

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
