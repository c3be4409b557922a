# Every target creates .venv from pyproject.toml on first use; Python 3.11+ is all a fresh clone needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs on 6 pytest-xdist processes (most tests wait on subprocesses and fake servers, so
# more processes than cores pays). Tests are handed out one by one, long ones first, except that the
# tests of a Ray test file, which share its local Ray, stay in one process (tests/scheduling.py).
# Serially: make test PYTEST_ARGS=
PYTEST_ARGS ?= -n 6

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf build/demo && mkdir -p build/demo
	@echo "== shoal map: 20 records, one prompt, on the rehearsal provider"
	cd build/demo && ../../$(BIN)/shoal map ../../examples/map/records.jsonl \
		--prompt-file ../../examples/map/prompt.txt --model rehearsal:demo --max-tokens 160 --out summaries.jsonl
	@echo "== shoal run: a batch plan through the quality gate (examples/guides)"
	cp -r examples/guides build/demo/guides
	cd build/demo/guides && ../../../$(BIN)/shoal run PLAN.md --yes
	@echo "demo output: build/demo/summaries.jsonl, build/demo/guides/docs/guides/, build/demo/guides/PLAN.md"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/rate_ceiling.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/map_e2e.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
