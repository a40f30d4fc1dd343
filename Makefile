# `make run` starts the whole stack; `make test` runs every test suite. Both create the
# virtualenv on first use (`make run` with the runtime packages only) and find (or start)
# Postgres and Redis: see dev/infra.py.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := auth chat billing ai-worker gateway
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check --no-compile -c constraints.txt

.PHONY: install install-run chromium prometheus newman wrk run observe test bench lint typecheck format clean

# Two layers, pinned in constraints.txt's sections: the runtime (`make run`, `make observe`:
# the six packages and requirements-run.txt) and, on top of it, the tests and tools
# (requirements-dev.txt: `make test`, `make bench`, `make lint`, ...). Each stamp is
# remade when one of its files changes.
install: $(VENV)/.installed-dev
install-run: $(VENV)/.installed-run

# --no-compile: a module is compiled when first imported; compiling every module of every
# package up front (stripe alone has ~1,650) cost a fresh clone's `make test` time for
# modules nothing imports.
$(VENV)/.installed-run: constraints.txt requirements-run.txt shared/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements-run.txt -e shared $(foreach s,$(SERVICES),-e services/$(s))
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	@touch $@

run: install-run
	@$(PY) -m dev run

# Prometheus scraping the stack `make run` started, with the alert rules loaded (on
# PROMETHEUS_PORT, default 9090; its data in .data/prometheus): see README, Operations.
observe: install-run prometheus
	@$(PY) -m dev observe

test: install chromium prometheus newman
	@$(PY) -m dev test $(ARGS)

# Tools from Debian that some targets need, installed when missing and we are root with
# apt-get (nothing downloads them from anywhere else); when one cannot be, what needs it
# fails and says why. $(call debian,COMMAND,PACKAGE,WHAT NEEDS IT)
define debian
	@if ! command -v $(1) >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's $(2) for $(3) (apt-get)..."; \
		log=$$(mktemp); export DEBIAN_FRONTEND=noninteractive; \
		if apt-get install -y -qq --no-install-recommends $(2) >$$log 2>&1 \
			|| { apt-get update -qq >>$$log 2>&1 \
				&& apt-get install -y -qq --no-install-recommends $(2) >>$$log 2>&1; }; then \
			rm -f $$log; \
		else \
			cat $$log; rm -f $$log; \
			echo "warning: $(2) could not be installed; $(3) will fail"; \
		fi; \
	fi
endef

# The browser tests (tests/browser) drive Debian's chromium; nothing downloads a browser.
chromium:
	$(call debian,chromium,chromium,the browser tests)

# Debian's prometheus package: `make observe` and the end-to-end test of the dashboard
# run its prometheus; the alert rules (deploy/observability) are checked with its promtool.
prometheus:
	$(call debian,prometheus,prometheus,make observe and the observability tests)

# newman runs the Postman collection (postman/) in the end-to-end tests: this exact version
# from the npm registry, installed into .tools/ (gitignored; no package.json or
# package-lock.json). Needs Node.js 16+ and npm; without them the Postman test fails and says why.
NEWMAN_VERSION := 6.2.2
newman:
	@if [ "$$(node -p 'require("./.tools/node_modules/newman/package.json").version' 2>/dev/null)" \
			!= $(NEWMAN_VERSION) ]; then \
		if command -v npm >/dev/null; then \
			echo "installing newman $(NEWMAN_VERSION) into .tools/ (npm)..."; \
			npm install --silent --no-save --no-package-lock --no-audit --no-fund \
				--prefix .tools newman@$(NEWMAN_VERSION); \
		else \
			echo "warning: npm is missing, so newman could not be installed; the Postman test will fail"; \
		fi; \
	fi

# Every benchmark in one run (~5 minutes): starts its own stack, prints the tables and
# writes BENCHMARKS.md and docs/bench-latency.png. `$(PY) -m bench --quick` checks the harness.
bench: install wrk
	$(PY) -m bench

# The HTTP rows are measured with Debian's wrk, as the reference service's were.
wrk:
	$(call debian,wrk,wrk,the benchmarks)
	@command -v wrk >/dev/null || { echo "error: wrk is required (Debian/Ubuntu: apt-get install wrk)"; exit 1; }

lint: install typecheck
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Strict mypy over shared/ and the services' packages ([tool.mypy] in pyproject.toml); `make
# test` runs it too, after ruff. About a minute without .mypy_cache, seconds with it.
typecheck: install
	$(PY) -m mypy

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .data .tools .pytest_cache .ruff_cache .mypy_cache
