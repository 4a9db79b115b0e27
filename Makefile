# The commands people type. Each target sets itself up: a virtual environment in .venv, the project installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

## make run: the whole pipeline on the local broker (demo DocSpace + mail catcher unless DOCSPACE_API_HOST is set)
run: $(INSTALLED)
	$(PY) -m ops.run

## make test: the whole suite, against the real broker, SMTP server and DocSpace simulator
test: $(INSTALLED)
	$(PY) -m pytest

## make bench: the performance benchmark, the product beside its baselines (installs wrk with apt-get if missing)
bench: $(INSTALLED)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq wrk); } \
		|| { echo "make bench needs wrk: install it (apt-get install wrk, brew install wrk)"; exit 1; }
	$(PY) -m bench

## make lint: ruff (lint + format check), then mypy (strict for the production code: [tool.mypy] in pyproject.toml)
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
