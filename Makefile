# The two commands a newcomer runs: `make run` (the main job) and `make test` (the whole suite).
# Each builds .venv from nothing on first use, pinned by constraints.txt (torch==2.13.0, CPU build).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
WORK := .work
# The suite runs on every core (pytest-xdist), a test file to a worker (--dist loadfile: a module's
# module-scoped fixtures and caches are built once), files in collection order (slow ones first:
# tests/conftest.py); it names its 20 slowest tests at the end, so CI shows where the time goes.
# (--dist loadgroup would group by xdist_group marks, but xdist 3.8 does not group under pytest 9.)
# One worker more than the cores: many end-to-end tests wait (outages, stale heartbeats, drivers
# starting), and a third worker keeps both cores busy meanwhile. On 2 cores, measured in one session:
# 3 workers 656 s, 2 workers 789 s, the CPU busy 99% of the 3-worker run (so a fourth gains nothing).
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1) + 1 )))
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

.PHONY: venv run test test-fast lint format services bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

services:
	./scripts/ensure-postgres.sh

run: venv
	mkdir -p $(WORK)
	$(VENV)/bin/demonlab demo

test: venv services
	$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest $(PYTEST_XDIST) -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy demon studies service

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv
	$(PY) bench/optimizer_step.py

clean:
	rm -rf $(VENV) $(WORK) .pytest_cache .ruff_cache .mypy_cache
