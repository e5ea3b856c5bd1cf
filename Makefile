# The README's truth: every target here is documented there.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help venv browser run test test-fast lint verify bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the package with its dev tools

browser: ## install Chromium and chromedriver (Debian packages) for the browser test, if missing
	bash scripts/install-browser.sh

run: $(STAMP) ## start the mock on $(HOST):$(PORT) with the embedded defaults
	$(BIN)/lipsync-mock --host $(HOST) --port $(PORT)

# The API suites run a second time on the SQLite store: both stores answer the same suite.
SQLITE_SUITES := tests/test_api.py tests/test_rules.py tests/test_auth.py tests/test_callbacks.py tests/test_domain.py

test: $(STAMP) browser ## run the whole suite (slow and browser tests included), the API suites again on SQLite
	$(BIN)/pytest -n 2 -q
	LIPSYNC_TEST_STORE=sqlite $(BIN)/pytest -n 2 -q $(SQLITE_SUITES)

test-fast: $(STAMP) ## run the suite without the slow tests
	$(BIN)/pytest -n 2 -q -m "not slow"

lint: $(STAMP) ## ruff and mypy strict over the package, the kit, the examples and the tests
	$(BIN)/ruff check mock_server contracts examples tests bench
	$(BIN)/mypy mock_server contracts examples tests

verify: $(STAMP) ## contract-verify a running server: make verify BASE_URL=http://127.0.0.1:8000
	$(BIN)/python -m contracts verify --base-url $(or $(BASE_URL),http://$(HOST):$(PORT))

bench: $(STAMP) ## the mock beside bare Starlette, Prism, WireMock and Mockoon (installs them); writes bench/RESULTS.md
	bash bench/run.sh

clean: ## remove the environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
