# altcredit: two commands take a fresh clone to a running, tested platform.
#   make demo   create .venv, install, run the whole pipeline on a simulated population, serve it
#   make test   create .venv, install, run the whole test suite
# Installs happen only when pyproject.toml changed since the last install of those extras.

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
# The newest Python >= 3.11 that actually runs (a pyenv shim for a version that is not active does not).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then echo $$p; break; fi; done)

.PHONY: demo test lint bench clean-venv

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "altcredit needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras, remade whenever pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(subst +,$(comma),$*)]'
	@touch $@

comma := ,

demo: $(VENV)/.installed-postgres
	$(BIN)/altcredit demo $(DEMO_ARGS)

test: $(VENV)/.installed-dev+spark
	@status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; status=0; fi; exit $$status

lint: $(VENV)/.installed-dev+spark
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev+spark+bench
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script $(BENCH_ARGS) || exit 1; done

clean-venv:
	rm -rf $(VENV)
