# Set up a virtualenv with the project and its dev tools, then demo or test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system demo test lint typecheck pytest bench bench-emulated clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "twin needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages for the emulated network (iptables, bridge-utils, tcpdump, nmap, mininet,
# Suricata from bookworm-backports). Installs when root; otherwise says what is missing.
# A failed install does not stop the tests: the emulation tests then skip, naming it.
system:
	-scripts/setup-system

demo: setup
	$(BIN)/twin run flagship

test: setup system lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/scale.py --devices 1000

bench-emulated: setup system
	$(BIN)/python bench/emulated_deploy.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
