# mmvsim: `make demo` runs the main job on synthetic data, `make test` runs every check.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEMO_DATA ?= data/demo
DEMO_STORE ?= data/demo_store

.PHONY: venv demo test check lint nbtest pytest browser lab export clean bench ablations tricks

# Create the virtual environment from the pinned requirements when it is missing or stale.
$(STAMP): requirements.txt setup.py settings.ini
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing pinned requirements into $(VENV) (2-3 minutes on a fresh machine)"
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v 'is ignored: it is neither' || true
	@$(PY) -m pip check
	@$(PY) -m pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e . 2>&1 | grep -v 'is ignored: it is neither' || true
	@$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mmvsim)" >/dev/null
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mmvsim demo --data $(DEMO_DATA) --store $(DEMO_STORE)

# Notebooks and library in sync, notebooks clean: export and clean a copy, compare.
check: $(STAMP)
	@tmp=$$(mktemp -d); cp -r settings.ini nbs mmvsim $$tmp/; \
	(cd $$tmp && $(CURDIR)/$(BIN)/nbdev_export && $(CURDIR)/$(BIN)/nbdev_clean) || exit 1; \
	diff -r -x __pycache__ mmvsim $$tmp/mmvsim >/dev/null || { echo "mmvsim/ is out of sync with nbs/: run 'make export'"; diff -r -x __pycache__ mmvsim $$tmp/mmvsim | head -20; rm -rf $$tmp; exit 1; }; \
	diff -r nbs $$tmp/nbs >/dev/null || { echo "notebooks carry outputs or metadata: run 'make export'"; diff -r nbs $$tmp/nbs | head -20; rm -rf $$tmp; exit 1; }; \
	rm -rf $$tmp; echo "notebooks and library in sync and clean"

# The linter on the notebooks (the source), the exported library, the scripts and the tests (rules in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check nbs mmvsim scripts tests

nbtest: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --timing

# Debian's Chromium for the real-browser test, when it is missing and this machine allows it (root with apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q chromium >/dev/null 2>&1)) || echo "chromium could not be installed: the browser test is skipped"; \
	else echo "no chromium, and no root with apt to install it: the browser test is skipped"; fi; }

pytest: $(STAMP) browser
	$(BIN)/pytest -q tests

test: check lint nbtest pytest

export: $(STAMP)
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir nbs

# The CPU ablation grid (71 minutes on 2 cores; not part of `make test`); rerun to finish what is missing.
ablations: $(STAMP)
	$(BIN)/mmvsim ablate nbs/experiments/grids/cpu.yaml

# The tricks grid: FGM, PGD, EMA, SWA, distillation and label treatments against the recipe (about an hour on 2 cores).
tricks: $(STAMP)
	$(BIN)/mmvsim ablate nbs/experiments/grids/tricks.yaml

# The benchmark: training loop against a plain PyTorch loop, data, padding, inference, scale (under 15 min on 2 cores).
bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(DEMO_DATA) $(DEMO_STORE) runs
