# The README's two commands: `make demo` and `make test`. Both set up everything they need
# on a fresh Debian machine (a virtualenv, the Python packages, the Debian tools the tests use).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: demo test venv debian-tools npm-deps lint typecheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests compare against (bcftools/samtools are the independent truth),
# and the libraries the TileDB-VCF binary in ../shared/tiledbvcf-bin needs at run time
# (libraries have no command to look for: dpkg-query says whether they are installed).
DEBIAN_LIBS := libhts3 libfmt9
debian-tools:
	@missing=""; for pair in bcftools:bcftools samtools:samtools tabix:tabix chromium:chromium \
	    nginx:nginx node:nodejs npm:npm redis-server:redis-server; do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	for lib in $(DEBIAN_LIBS); do \
	  dpkg-query -W -f='$${Status}' $$lib 2>/dev/null | grep -q ' installed$$' \
	    || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# npm packages: igv.js, which the portal serves (its genome browser), and playwright-core,
# which drives Debian's chromium in the tests. `make demo` needs npm only, not the test tools.
npm-deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	npm ci --no-audit --no-fund

test: venv debian-tools npm-deps
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check node tests bench conformance
	$(BIN)/mypy

# Serves the portal at http://$(HOST):$(PORT)/ (igv.js from node_modules: npm-deps).
demo: venv npm-deps
	$(BIN)/fednode demo --host $(HOST) --port $(PORT)

# wrk: the load generator of bench.beacon_bench (a C client leaves the cores to the servers).
bench: venv debian-tools
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
