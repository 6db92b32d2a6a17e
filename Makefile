# The two commands: `make run` (the marketplace on its embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run seed lint test compile check-artifact clean-data screenshots bytecode
CHROMIUM ?= /usr/bin/chromium
SKOPEO ?= /usr/bin/skopeo

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt client/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# every process the suite and `make run` start (gunicorn, Celery, the inspection sandbox, the CLI)
# imports the project: with PYTHONDONTWRITEBYTECODE set (as on our machines) nothing caches its
# bytecode, and each start compiles it again (0.7-1 s here). compileall writes it whatever that
# variable says; a source edited later is recompiled in memory, never run stale.
bytecode: install
	@$(PY) -m compileall -q -j 0 config marketplace fleet royalties registry telemetry scripts client/hallmark manage.py >/dev/null

## run: migrate, start anvil (state in .data/chain), deploy if needed, worker if Redis answers, serve :8000
run: install bytecode
	$(PY) scripts/run_local.py

## seed: publish the demo vendor, model and buyers into the running marketplace's chain and database
seed: install
	$(PY) manage.py seed_demo

# the browser tests drive Debian's chromium (Playwright's own browser download is not used)
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium

# the OCI registry's tests pull with Debian's skopeo (tests/marketplace/test_oci_clients.py)
$(SKOPEO):
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends skopeo

## lint: ruff (ruff.toml), the layering contracts (.importlinter, docs/architecture.md), mypy on the client
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	cd client && ../$(VENV)/bin/mypy

## test: lint first (so CI holds it), then the whole suite against PostgreSQL, Redis + a real Celery worker, anvil and the contract
test: install bytecode lint $(CHROMIUM) $(SKOPEO)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/15} \
	$(PY) -m pytest $(PYTEST_ARGS)

## compile: rebuild registry/artifacts/ModelRegistry.json with solc-js (commit the result)
compile: node_modules/.installed
	node contracts/compile.js

check-artifact: node_modules/.installed
	node contracts/compile.js --check

## screenshots: the main pages at desktop and phone width, written to docs/screenshots/
screenshots: install $(CHROMIUM)
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots \
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/15} \
	$(PY) -m pytest tests/browser/test_pages.py tests/browser/test_catalog.py tests/browser/test_buyer_pages.py tests/browser/test_portal_oms.py -q

## clean-data: forget the local chain, database and files of `make run`
clean-data:
	rm -rf .data deployments/31337.json

.PHONY: bench bench-deps

## bench-deps: what the benchmarks need from Debian (installed if missing, never upgraded): nginx with its DAV module, curl, openssl, wrk, ab (apache2-utils)
bench-deps:
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends --no-upgrade nginx curl openssl wrk apache2-utils
	@$$(command -v nginx || echo /usr/sbin/nginx) -V 2>&1 | grep -q -- --with-http_dav_module || { echo "this nginx has no DAV module (dav_methods PUT)"; exit 1; }

## bench: every benchmark in bench/ (docs/benchmarks.md says what each measures)
bench: install
	$(PY) bench/gas.py
	$(PY) bench/hashing.py
	$(PY) bench/upload.py
	$(PY) bench/indexer.py
	$(PY) bench/download.py
	$(PY) bench/resolve_head.py
	$(PY) bench/ledger_scale.py
	$(PY) bench/catalog_page.py
	$(PY) bench/fleet_watch.py
	$(PY) bench/fleet_inventory.py
	$(PY) bench/pull.py
	$(PY) bench/receipts.py
	$(PY) bench/soak.py
