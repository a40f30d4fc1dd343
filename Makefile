# `make run` starts the whole stack; `make test` runs every test suite. Both create the
# virtualenv on first use and find (or start) Postgres and Redis: see dev/infra.py.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := auth chat billing ai-worker gateway
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint format clean

install: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt shared/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-r requirements-dev.txt -e shared $(foreach s,$(SERVICES),-e services/$(s))
	@touch $@

run: install
	@$(PY) -m dev run

test: install
	@$(PY) -m dev test $(ARGS)

# Benchmarks print figures (see BENCHMARKS.md); they start their own stack.
bench: install
	$(PY) -m bench.pipeline
	$(PY) -m bench.worker

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .data .pytest_cache .ruff_cache
