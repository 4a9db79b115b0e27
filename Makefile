# The commands people type. Each target sets itself up: a virtual environment in .venv, the project installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Everything the suite and `make run` need, with hashes: see requirements/ (make lock refreshes them).
LOCKS := requirements/build.txt requirements/runtime.txt requirements/demo.txt requirements/dev.txt
LOCK_FLAGS ?=
COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 $(LOCK_FLAGS)

.PHONY: help run test check compose-test lock contract docs lint bench clean

## make help: this list (the `## ` comments of this file)
help:
	@awk '/^## make /{print substr($$0, 4); next} /^## /{print "    " substr($$0, 4)}' $(MAKEFILE_LIST)

# Dependencies only from the lock (pip checks every hash), then the project itself without dependencies.
$(INSTALLED): pyproject.toml $(LOCKS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements/build.txt -r requirements/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

## make run: the whole pipeline on the local broker (demo DocSpace + mail catcher unless DOCSPACE_API_HOST is set)
run: $(INSTALLED)
	$(PY) -m ops.run

## make test: the whole suite, against the real broker, SMTP server and DocSpace simulator, in two lanes (the long
## tests, which mostly wait, beside the rest)
test: $(INSTALLED)
	$(PY) -m pytest -n 2 --dist loadgroup

## make check: the inner loop while you work: make lint, then the unit tests (under 2 minutes; make test before a push)
check: lint
	$(PY) -m pytest tests/unit -q -p no:cacheprovider

## make compose-test: docker-compose.yml for real: images, the demo stack, a delivery through the proxy, doctor,
## a broker outage across an ingress restart, Prometheus and promtool (starts a Docker engine if none runs)
compose-test: $(INSTALLED)
	$(PY) -m pytest tests/compose -m compose -p no:cacheprovider

## make lock: re-resolve requirements/*.txt from pyproject.toml (LOCK_FLAGS=--upgrade to move to newer versions)
lock: $(INSTALLED)
	$(COMPILE) -o requirements/build.txt requirements/build.in
	$(COMPILE) -o requirements/runtime.txt pyproject.toml
	$(COMPILE) -o requirements/demo.txt --extra demo -c requirements/runtime.txt pyproject.toml
	$(COMPILE) -o requirements/dev.txt --extra test --extra demo -c requirements/runtime.txt pyproject.toml

## make contract: regenerate the AsyncAPI document and JSON Schemas in contract/ from shared/core/events.py
contract: $(INSTALLED)
	$(PY) -m contract.generate

## make docs: regenerate docs/configuration-reference.md from the settings, then build the site into site/ (--strict)
docs: $(INSTALLED)
	$(PY) -m tools.config_reference
	@# Not --quiet: it hides the warnings --strict counts, and the build passes with broken links. Material prints a
	@# notice about MkDocs 2.0 on every build, which is no warning about this site.
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

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

## make clean: remove the virtual environment, the caches and the built site
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info site
