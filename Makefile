# `make run` starts the whole stack; `make test` runs every test suite. Both create the
# virtualenv on first use and find (or start) Postgres and Redis: see dev/infra.py.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := auth chat billing ai-worker gateway
STAMP := $(VENV)/.installed

.PHONY: install chromium promtool wrk run test bench lint format clean

install: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt shared/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-r requirements-dev.txt -e shared $(foreach s,$(SERVICES),-e services/$(s))
	@touch $@

run: install
	@$(PY) -m dev run

test: install chromium promtool
	@$(PY) -m dev test $(ARGS)

# The browser tests (tests/browser) drive Debian's chromium; nothing downloads a browser.
# Installed here when it is missing and we are root with apt-get; when it cannot be, those
# tests fail and say why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests (apt-get)..."; \
		log=$$(mktemp); export DEBIAN_FRONTEND=noninteractive; \
		if apt-get update -qq >$$log 2>&1 \
			&& apt-get install -y -qq --no-install-recommends chromium >>$$log 2>&1; then \
			rm -f $$log; \
		else \
			cat $$log; rm -f $$log; \
			echo "warning: chromium could not be installed; the browser tests will fail"; \
		fi; \
	fi

# The alert rules (deploy/observability) are checked with promtool, from Debian's prometheus
# package (nothing is started); installed here when missing and we are root with apt-get.
promtool:
	@if ! command -v promtool >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's prometheus for promtool (apt-get)..."; \
		log=$$(mktemp); export DEBIAN_FRONTEND=noninteractive; \
		if apt-get install -y -qq --no-install-recommends prometheus >$$log 2>&1 \
			|| { apt-get update -qq >>$$log 2>&1 \
				&& apt-get install -y -qq --no-install-recommends prometheus >>$$log 2>&1; }; then \
			rm -f $$log; \
		else \
			cat $$log; rm -f $$log; \
			echo "warning: promtool could not be installed; the alert rules test will fail"; \
		fi; \
	fi

# Every benchmark in one run (~5 minutes): starts its own stack, prints the tables and
# writes BENCHMARKS.md and docs/bench-latency.png. `$(PY) -m bench --quick` checks the harness.
bench: install wrk
	$(PY) -m bench

# The HTTP rows are measured with Debian's wrk, as the reference service's were; installed
# here when it is missing and we are root with apt-get.
wrk:
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's wrk for the benchmarks (apt-get)..."; \
		log=$$(mktemp); export DEBIAN_FRONTEND=noninteractive; \
		if apt-get install -y -qq --no-install-recommends wrk >$$log 2>&1 \
			|| { apt-get update -qq >>$$log 2>&1 \
				&& apt-get install -y -qq --no-install-recommends wrk >>$$log 2>&1; }; then \
			rm -f $$log; \
		else \
			cat $$log; rm -f $$log; \
		fi; \
	fi
	@command -v wrk >/dev/null || { echo "error: wrk is required (Debian/Ubuntu: apt-get install wrk)"; exit 1; }

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .data .pytest_cache .ruff_cache
