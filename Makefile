# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/pip --disable-pip-version-check -q
# `make run PORT=8080` (or PORT in the environment) picks the port; the demo's printed
# links and the served address follow it.
RUN_ENV := $(if $(PORT),PORT=$(PORT))

.PHONY: run test test-fast bench load fuzz lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/enablement init
	$(RUN_ENV) $(BIN)/enablement demo --if-empty
	$(RUN_ENV) $(BIN)/enablement serve

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop: pure and SQLite tests only (no PostgreSQL even with TEST_DATABASE_URL set, no
# browser, no fuzzing); `make test` runs everything.
FAST_SKIP := tests/browser tests/web/test_fuzz_api.py tests/unit/test_fuzz_files.py
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q --sqlite-only $(addprefix --ignore=,$(FAST_SKIP)) $(PYTEST_ARGS)

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run_all.py

# gunicorn on PostgreSQL under a bounded mixed load; FAULT=db-restart restarts its own PostgreSQL mid-run.
load: $(TEST_STAMP)
	$(BIN)/python benchmarks/load.py $(if $(FAULT),--fault $(FAULT)) $(LOAD_ARGS)

# Longer fuzzing than `make test`: schemathesis over the API with every role's token, hypothesis over files and links.
fuzz: $(TEST_STAMP)
	FUZZ_EXAMPLES=$(or $(EXAMPLES),100) $(BIN)/python -m pytest -q -p no:cacheprovider tests/web/test_fuzz_api.py tests/unit/test_fuzz_files.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check enablement integrations tests benchmarks wsgi.py

clean:
	rm -rf $(VENV) instance .pytest_cache
