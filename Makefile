# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create or reuse .venv at the repository root; `make install` only sets
# it up. Every target is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.mmaction_tdx-installed
WHEELS := $(VENV)/wheels
PYTEST_ARGS ?=
# The suite runs in one pytest-xdist worker per core (at most 4: each
# holds its own torch), each torch single-threaded so that workers do not
# fight over the cores. `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$((n < 4 ? n : 4)))

.PHONY: install demo test lint docs clean-venv

install: $(STAMP)

$(STAMP): setup.py Makefile requirements/*.txt tools/install/*.py \
		_mmaction_tdx_config_scope.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU wheel from the local wheel folder.
	$(PIP) install -q -c $(CONSTRAINTS) torch==2.13.0
	# decord 0.6.0's wheel says cp36 inside while its name says py3: install
	# a copy whose internal tags match its name, so `pip check` stays clean.
	rm -rf $(WHEELS) && mkdir -p $(WHEELS)/src
	$(PIP) download -q --no-deps -d $(WHEELS)/src decord==0.6.0
	$(PY) tools/install/match_wheel_tags.py $(WHEELS)/src/decord-*.whl $(WHEELS)
	$(PIP) install -q --no-deps $(WHEELS)/decord-*.whl
	# The extras' requirement files directly (`pip install .[tests,deploy]`
	# would install a copy of the package, not register this checkout).
	$(PIP) install -q -c $(CONSTRAINTS) mmcv-lite==2.1.0 openmim==0.3.9 \
		-r requirements/runtime.txt -r requirements/tests.txt \
		-r requirements/docs.txt -r requirements/deploy.txt
	# Register this checkout develop-style (egg-info here, a .pth there):
	# mim finds mmaction_tdx/.mim through it; see the script's docstring.
	$(PY) tools/install/develop.py
	$(PIP) check
	touch $(STAMP)

demo: install
	$(PY) tools/run_quickstart.py

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

docs: install
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean-venv:
	rm -rf $(VENV)

# Mutation testing (slow, not part of `make test`): each core module on a copy
# of the tree with its own test file; MUTATE="losses/temporal_diversity_loss.py"
# picks modules (default: all of them). Scores: docs/dev/testing.md.
MUTATE ?=
.PHONY: mutation
mutation: install
	tools/dev/mutation.sh $(MUTATE)
