# Every target installs what it needs first; `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test lint flops

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv, install the project (editable) with its test extras, and Fashion-MNIST

$(STAMP): pyproject.toml
	@# The embedded data set, Fashion-MNIST, comes from Debian when we may install packages.
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "warning: could not install dataset-fashion-mnist; see README (Data)"; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install ## run ruff and the test suite
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: install ## ruff only
	$(VENV)/bin/ruff check .

flops: install ## print and write experiments/complexity/<regime>.{csv,md} for both regimes
	$(PY) scripts/complexity.py
