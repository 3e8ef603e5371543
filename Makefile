# The quick start is two commands: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test soak demo lint fmt bench screens clean

setup:
	@./scripts/setup.sh

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not soak" $(PYTEST_ARGS)

# The long end-to-end runs (a simulated day of 50 agents; worker, broker and fleet faults):
# minutes of wall clock each, kept out of `make test` so that it stays under 10 minutes.
soak: setup
	$(PY) -m pytest -m soak $(PYTEST_ARGS)

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
	$(PY) bench/gate.py
	$(PY) bench/trading.py

# A screenshot of every page of every site (tests/web/sites.py) under .atp/screens/.
screens: setup
	$(PY) -m tests.web.screens --out .atp/screens

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
