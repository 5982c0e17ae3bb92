# Every target creates the virtualenv on first use, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit crds demo soak bench e2e clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

crds: $(STAMP)
	$(BIN)/extraction-operator crd > crds/extractionruns.yaml

demo: $(STAMP)
	$(BIN)/extraction-operator demo

# Long chaos and load runs, kept out of `make test`: 200 operator SIGKILLs during example runs,
# then every test marked soak (10 kill seeds, crash-point sweeps, HA joins, outage smoke run).
soak: $(STAMP)
	$(BIN)/python benchmarks/chaos.py --kills 200 --seed 7 --concurrency 2
	$(BIN)/pytest -m soak -o addopts='-ra --import-mode=importlib' --timeout 3600

# Measured figures, each printed as one JSON object on the script's last line.
bench: $(STAMP)
	$(BIN)/python benchmarks/emulator.py
	$(BIN)/python benchmarks/reconciler.py --runs 100
	$(BIN)/python benchmarks/outage.py

e2e: $(STAMP)
	$(BIN)/pytest -m e2e -o addopts='-ra --import-mode=importlib'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
