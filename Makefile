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
	$(PY) -m pytest $(PYTEST_ARGS)

docs: install
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean-venv:
	rm -rf $(VENV)
