# tenpo — one command per job; CI calls the same targets.
SHELL := /bin/bash
# uv from PATH, else as a module of the machine's Python (installed by `setup` when missing).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON_PREFERENCE := only-system
# Precompile site-packages: this machine sets PYTHONDONTWRITEBYTECODE, so imports would
# otherwise recompile ibis, dagster, pandas... in every process.
export UV_COMPILE_BYTECODE := 1
# Trust the machine's certificate store (package registries may sit behind a local CA).
export UV_SYSTEM_CERTS := 1
export UV_NATIVE_TLS := 1
RUN := $(UV) run --frozen

.PHONY: setup demo test check bench dagster services clean

# Install uv (with pip) when missing, then the locked environment.
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --quiet

## make demo: simulate a small chain and run it end to end, then serve the API on :8000.
demo: setup
	$(RUN) tenpo demo

## make test: start missing test servers, then run the whole suite.
test: setup services
	$(RUN) pytest

## make check: formatting, lint and types.
check: setup
	$(RUN) ruff format --check src tests bench
	$(RUN) ruff check src tests bench
	$(RUN) mypy

## make bench: every benchmark under bench/, results in bench/results/*.json.
bench: setup
	$(RUN) python -m bench

## make dagster: the Dagster UI on http://127.0.0.1:3000 over the local data dir.
dagster: setup
	$(RUN) tenpo jobs ui

## Start PostgreSQL, NATS and Mosquitto stand-ins when they are not already running.
services: setup
	@$(RUN) python scripts/ensure_services.py

clean:
	rm -rf .tenpo bench/results .pytest_cache .mypy_cache .ruff_cache
