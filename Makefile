# The two set-up commands of the README:  make run  (the app)  and  make test  (the tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi
export MALLOC_MMAP_THRESHOLD_ := 1073741824
export MALLOC_TRIM_THRESHOLD_ := 4294967296

.PHONY: run test install install-dev browser services db weights lint bench

## make run: install, create/upgrade the SQLite database, fetch weights, start web + worker on :5000
run: install db weights
	PATH="$(abspath $(BIN)):$$PATH" PORT=5000 $(BIN)/honcho start --procfile Procfile web worker

## make test: install (with test tools, Debian's chromium, postgresql and redis-server) and run
## the whole test suite (tests/deploy starts its own throwaway servers on 127.0.0.1), then the
## numeric tests of tests/models again with oneDNN capped at AVX2, as an older CPU runs them
test: install-dev browser services
	$(BIN)/python -m pytest
	ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest tests/models -q -p no:cacheprovider

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# onnxruntime-web (npm, pinned in package-lock.json) copied into static/vendor/ort/: the page
# decodes taps with it; without Node.js the page sends taps to the worker instead.
static/vendor/ort/ort.wasm.min.mjs: package.json package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --no-audit --no-fund --loglevel=error && npm run --silent vendor; \
	else \
	  echo "npm not found: taps will be decoded by the worker (install Node.js for on-device taps)"; \
	fi

install: $(VENV)/.installed static/vendor/ort/ort.wasm.min.mjs
install-dev: $(VENV)/.installed-dev static/vendor/ort/ort.wasm.min.mjs

browser:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) \
	    apt-get install -y -q chromium; }

# PostgreSQL and Redis binaries for tests/deploy (the tests start their own servers on loopback
# ports; Debian may also start its default services, which the tests do not use).
services:
	@{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null; } || { \
	  echo "Installing Debian's postgresql and redis-server for the deploy tests..."; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) \
	    apt-get install -y -q postgresql redis-server; }

db: install
	$(BIN)/flask db upgrade

weights: install
	@$(BIN)/flask models download || { \
	  echo ""; echo "*** Could not download the model weights (offline?). The app starts anyway;"; \
	  echo "*** photos will fail with a message until you run:  $(BIN)/flask models download"; }

lint: install-dev
	$(BIN)/ruff check app models tests bench wsgi.py

bench: install
	$(BIN)/python -m bench
