# The quick start is two commands: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo lint fmt bench screens clean

setup:
	@./scripts/setup.sh

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/atp demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) bench/codec.py
	$(PY) bench/devices.py
	$(PY) bench/agent.py
	$(PY) bench/fman.py
	$(PY) bench/plan.py
	$(PY) bench/broker_security.py
	$(PY) bench/settle.py
	$(PY) bench/market.py
	$(PY) bench/faults.py
	$(PY) bench/api.py

# A screenshot of every page of every site (tests/web/sites.py) under .atp/screens/.
screens: setup
	$(PY) -m tests.web.screens --out .atp/screens

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
