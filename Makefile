# The two quick-start commands: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test lint docs bench dev clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q -e . --group dev
	@touch $@

demo: venv
	$(PY) -m examples.demo

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check mistral_workflows tests examples bench
	$(VENV)/bin/ruff format --check mistral_workflows tests examples bench
	$(VENV)/bin/mypy

docs: venv
	$(VENV)/bin/mkdocs build --strict

bench: venv
	$(PY) -m bench

dev: venv
	$(VENV)/bin/mistral-workflows dev

clean:
	rm -rf $(VENV) .venv-ci-* .pytest_cache .mypy_cache .ruff_cache site
