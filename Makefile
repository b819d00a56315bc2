# tenpo — one command per job; CI calls the same targets.
SHELL := /bin/bash
# uv from PATH, else as a module of the machine's Python (installed by `setup` when missing).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON_PREFERENCE := only-system
# Trust the machine's certificate store (package registries may sit behind a local CA).
export UV_SYSTEM_CERTS := 1
export UV_NATIVE_TLS := 1
RUN := $(UV) run --frozen

.PHONY: setup demo test test-spark check bench bench-scale dagster services clean web chromium

# Install uv (with pip) when missing, then the locked environment.
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	@# Precompiled: this machine sets PYTHONDONTWRITEBYTECODE, so every process would
	@# otherwise recompile ibis, dagster, pandas... on import.
	@# --inexact: extras installed by `make test` (spark, s3) stay; an exact sync here removed
	@# them, and the Spark tests of a later targeted pytest run silently skipped.
	@$(UV) sync --frozen --quiet --inexact --compile-bytecode

## make demo: simulate a small chain and run it end to end, then serve the API on :8000.
demo: setup web
	$(RUN) tenpo demo

## make test: start missing test servers, then run the whole suite (the PySpark tests
## included: extra "spark", Java 17; the S3 tests: extra "s3", moto from the dev group).
test: setup services web chromium
	$(UV) sync --frozen --quiet --extra spark --extra s3 --compile-bytecode
	TENPO_TEST_SPARK=1 $(RUN) --extra spark --extra s3 pytest

## make test-spark: the KPI jobs, and the whole flow's assets (production servers), on PySpark
## local mode vs DuckDB (extra "spark", Java 17; a few minutes).
test-spark: setup services
	$(UV) sync --frozen --quiet --inexact --extra spark
	TENPO_TEST_SPARK=1 $(RUN) --extra spark pytest tests/jobs/test_spark.py \
		tests/e2e/test_production_profile.py -k spark

## make check: formatting, lint and types.
check: setup
	$(RUN) ruff format --check src tests bench
	$(RUN) ruff check src tests bench
	$(RUN) mypy

## make bench: every benchmark under bench/, results in bench/results/*.json.
bench: setup
	$(RUN) python -m bench

## make bench-scale: the whole platform at 100 stores × 30 days, then 700 × 30 (each stage
## timed, KPIs checked against the ground truth; results in bench/results/scale_*.json).
bench-scale: setup services
	$(RUN) tenpo bench scale --stores 100 --days 30
	$(RUN) tenpo bench scale --stores 700 --days 30

## make dagster: the Dagster UI on http://127.0.0.1:3000 over the local data dir.
dagster: setup
	$(RUN) tenpo jobs ui

## Start PostgreSQL, NATS and Mosquitto stand-ins when they are not already running.
services: setup
	@$(RUN) python scripts/ensure_services.py

## make web: the dashboard's chart library from the npm registry (web/package-lock.json)
## into src/tenpo/api/static/vendor/. The built file is committed too, so a machine
## without npm still serves a working dashboard.
WEB_VENDOR := src/tenpo/api/static/vendor/chart.umd.min.js
web:
	@if command -v npm >/dev/null 2>&1 && (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then \
		cp web/node_modules/chart.js/dist/chart.umd.min.js $(WEB_VENDOR); \
	elif [ -f $(WEB_VENDOR) ]; then echo "npm unavailable: keeping the committed $(WEB_VENDOR)"; \
	else echo "npm unavailable and $(WEB_VENDOR) missing" >&2; exit 1; fi

## Debian's Chromium for the dashboard's browser tests (installed only when missing).
chromium:
	@test -x /usr/bin/chromium || { \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic) \
		|| echo "chromium could not be installed: the browser tests will be skipped"; }

clean:
	rm -rf .tenpo bench/results .pytest_cache .mypy_cache .ruff_cache
