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

soak: $(STAMP)
	$(BIN)/pytest -m soak -o addopts='-ra' --timeout 3600

e2e: $(STAMP)
	$(BIN)/pytest -m e2e -o addopts='-ra'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
