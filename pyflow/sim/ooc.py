"""Out-of-context synthesis units of a generated top: each module instance with its parameters, once.

The generated top (rtl_templates/pyflow_top.v.j2) is a flat list of instances of the hand-written
library (pf_*.v) - the layer engines, their feature buffers, the stream ports - plus glue: the wires
between them, the cycle counter, a few constant assigns. Every instance is a *unit*: its module and its
parameters, with each parameter naming a ROM file ($readmemh) replaced by a digest of that file's
contents, so two instances with the same parameters and the same ROM contents are one unit, synthesized
once, and counted as many times as they are instantiated.

Why the sum is honest: `synth_xilinx` without ``-flatten`` (the whole-top run of pyflow.sim.yosys) keeps
the hierarchy while it maps, so each distinct parameterisation is already optimised alone, inside its
own ports: out of context the same module sees the same ports. The glue is the top synthesized with the
library modules as blackboxes (their headers alone); its cells are the top's own and the blackbox
cells are left out. What the sum cannot see is an optimisation across an instance's ports (a constant
input or an unused output); on the tests' small tops the sum and the whole top agree (tests/test_yosys_ooc.py).
Each unit is synthesized with ``-noclkbuf`` (the clock buffer is the top's, counted once in the glue).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pyflow.errors import PyflowError

INSTANCE = re.compile(r"^[ \t]*(\w+)\s*#\((.*?)\)\s*(\w+)\s*\(", re.MULTILINE | re.DOTALL)
ANY_INSTANCE = re.compile(r"^[ \t]*(pf_\w+)\s*(?:#\(|\w+\s*\()", re.MULTILINE)
PARAMETER = re.compile(r"\.(\w+)\(([^()]*)\)")
INTEGER = re.compile(r"-?\d+|\d+'[sS]?[bBoOdDhH][0-9a-fA-F_xXzZ]+")
STRING = re.compile(r'"([^"\\]+)"')
TOP_PARAMETERS = ("MEM_DIR",)  # the top's own parameters, passed down: left at the module's default ("")


@dataclass(frozen=True)
class Instance:
    name: str
    module: str
    parameters: tuple[tuple[str, str], ...]  # (name, Verilog literal), as the top passes them


@dataclass(frozen=True)
class Unit:
    """One distinct module + parameters (+ ROM contents), and the instances that are it."""

    key: str
    module: str
    parameters: tuple[tuple[str, str], ...]
    instances: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.instances[0]


def library_modules(verilog: Path, top: str) -> dict[str, Path]:
    """Module name -> file of every pf_*.v beside the top."""
    modules = {}
    for path in sorted(verilog.glob("pf_*.v")):
        for name in re.findall(r"^\s*module\s+(\w+)", path.read_text(), re.MULTILINE):
            modules[name] = path
    if not modules:
        raise PyflowError(f"{verilog}: no pf_*.v library modules beside {top}.v; regenerate with `pyflow generate`")
    return modules


def top_instances(verilog: Path, top: str, modules: dict[str, Path]) -> list[Instance]:
    """The library instances of the generated top, in order; a one-line error for anything unexpected."""
    source = verilog / f"{top}.v"
    if not source.is_file():
        raise PyflowError(f"{verilog}: no {top}.v; regenerate the project with `pyflow generate`")
    text = re.sub(r"//[^\n]*", "", source.read_text())
    found = [Instance(name, module, _parameters(body, source, name))
             for module, body, name in INSTANCE.findall(text) if module in modules]
    expected = [module for module in ANY_INSTANCE.findall(text) if module in modules]
    if len(found) != len(expected):
        raise PyflowError(f"{source}: found {len(expected)} library instances but could read the parameters of "
                          f"{len(found)}; is it a top written by `pyflow generate`?")
    return found


def _parameters(body: str, source: Path, instance: str) -> tuple[tuple[str, str], ...]:
    pairs = tuple((name, value.strip()) for name, value in PARAMETER.findall(body))
    for name, value in pairs:
        if not (INTEGER.fullmatch(value) or STRING.fullmatch(value) or value in TOP_PARAMETERS):
            raise PyflowError(f"{source}: instance {instance}: parameter {name} = {value} is not a number or a "
                              "string literal; out-of-context synthesis cannot pass it")
    return pairs


def _digest(value: str, verilog: Path) -> str:
    """A string parameter naming a file beside the top (a ROM) stands for its contents."""
    match = STRING.fullmatch(value)
    if match and (verilog / match.group(1)).is_file():
        return "file:" + hashlib.sha256((verilog / match.group(1)).read_bytes()).hexdigest()
    return value


def units(verilog: Path, instances: list[Instance]) -> list[Unit]:
    """Group the instances into distinct units, in the order of their first instance."""
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        text = instance.module + "".join(f"\n{name}={_digest(value, verilog)}" for name, value in
                                         sorted(instance.parameters) if value not in TOP_PARAMETERS)
        groups.setdefault(hashlib.sha256(text.encode()).hexdigest()[:16], []).append(instance)
    return [Unit(key, group[0].module, group[0].parameters, tuple(i.name for i in group))
            for key, group in groups.items()]


def cost(unit: Unit, verilog: Path) -> float:
    """A rough guess of a unit's Yosys seconds, only to start the long ones first (measured on VGG-small:
    ~7 s of fixed cost, initialised block-RAM ROMs ~0.25 s per KB of .mem, wide rotators per lane)."""
    values = dict(unit.parameters)
    number = {name: int(value) for name, value in values.items() if re.fullmatch(r"\d+", value)}
    rom_kb = sum((verilog / match.group(1)).stat().st_size for value in values.values()
                 if (match := STRING.fullmatch(value)) and (verilog / match.group(1)).is_file()) / 1024
    lanes = (1 << number.get("LB", 0)) * (number.get("RD_LANES", 1) + number.get("WR_LANES", 1))
    return 7.0 + (10.0 if unit.module == "pf_matrix_layer" else 0.0) + 0.25 * rom_kb + \
        lanes * number.get("BITS", 0) / 8000 + 0.1 * number.get("C", 0)


def chparam_value(value: str) -> str:
    """A Verilog literal as `hierarchy -chparam` takes it: Yosys cannot decode a quoted string there, so a
    string goes as its bytes in a sized hex constant (what a Verilog string literal is)."""
    match = STRING.fullmatch(value)
    if match:
        data = match.group(1).encode()
        return f"{8 * len(data)}'h{data.hex()}"
    return value


def unit_script(unit: Unit, sources: list[str], out: str) -> str:
    """Synthesize one unit alone; ``out`` is its folder relative to the cwd (the verilog folder)."""
    chparams = "".join(f" -chparam {name} {chparam_value(value)}" for name, value in unit.parameters
                       if value not in TOP_PARAMETERS)
    return (f"read_verilog -defer {' '.join(sources)}\n"
            f"hierarchy -top {unit.module}{chparams}\n"
            f"synth_xilinx -noiopad -noclkbuf\n"
            f"tee -q -o {out}/pe_dsp.txt select -count *pf_pe_lanes*/t:DSP* *pf_adder_tree*/t:DSP*\n"
            f"flatten\n"
            f"tee -q -o {out}/stat.json stat -json\n")


def blackboxes(modules: dict[str, Path]) -> str:
    """Each library module's header alone (parameters and ports), marked a blackbox: `read_verilog -lib` of
    the real files still runs their $readmemh when it derives a parameterised module."""
    headers = []
    for path in sorted(set(modules.values())):
        text = re.sub(r"//[^\n]*", "", path.read_text())
        headers += [f"(* blackbox *)\n{match.group(0)}\nendmodule\n"
                    for match in re.finditer(r"\bmodule\s+\w+.*?\);", text, re.DOTALL)]
    return "".join(headers)


def glue_script(top: str, blackbox_file: str, out: str) -> str:
    """The top alone: the library modules are blackboxes, so only the top's own logic is mapped."""
    return (f"read_verilog -defer {top}.v\n"
            f"read_verilog -defer {blackbox_file}\n"
            f"hierarchy -top {top}\n"
            f"synth_xilinx -noiopad\n"
            f"tee -q -o {out}/stat.json stat -json\n")
