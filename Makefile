# The README's truth: every target here is documented there.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help venv run test test-fast lint verify bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the package with its dev tools

run: $(STAMP) ## start the mock on $(HOST):$(PORT) with the embedded defaults
	$(BIN)/lipsync-mock --host $(HOST) --port $(PORT)

test: $(STAMP) ## run the whole suite (slow suites included)
	$(BIN)/pytest -n 2 -q

test-fast: $(STAMP) ## run the suite without the slow tests
	$(BIN)/pytest -n 2 -q -m "not slow"

lint: $(STAMP) ## ruff and mypy strict over the package, the kit, the examples and the tests
	$(BIN)/ruff check mock_server contracts examples tests bench
	$(BIN)/mypy mock_server contracts examples tests

verify: $(STAMP) ## contract-verify a running server: make verify BASE_URL=http://127.0.0.1:8000
	$(BIN)/python -m contracts verify --base-url $(or $(BASE_URL),http://$(HOST):$(PORT))

bench: $(STAMP) ## load benchmarks against the bare baseline and Prism; writes bench/RESULTS.md
	bash bench/run.sh

clean: ## remove the environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
