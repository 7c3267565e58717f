# mmvan: `make test`, `make test-fast` and `make demo` set up everything
# they need.
#
# The environment is the active virtualenv when there is one, else .venv in
# this folder; it is created on first use and reused afterwards.
PYTHON ?= python3.11
VENV := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: env test test-fast demo lint clean-demo

env:
	@bash tools/setup_env.sh $(PYTHON)

test: env
	$(PY) -m pytest $(PYTEST_ARGS) tests

# The tests that start no process and run no training (not marked slow).
test-fast: env
	$(PY) -m pytest $(PYTEST_ARGS) -m 'not slow' tests

demo: env
	$(PY) tools/demo.py

LINT_PATHS := mmvan tools tests configs demo setup.py

lint: env
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive $(LINT_PATHS)
	$(VENV)/bin/codespell $(LINT_PATHS) README.md

clean-demo:
	rm -rf work_dirs/demo data/demo
