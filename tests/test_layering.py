"""The package's layering (pyflow/__init__.py): no import of pyflow runs up, or sideways between units."""

from __future__ import annotations

import ast
from pathlib import Path

import pyflow

PACKAGE = Path(pyflow.__file__).parent
LAYER = {unit: index for index, units in enumerate(pyflow.LAYERS) for unit in units}


def _unit(module: str) -> str:
    """``pyflow.hw.sizing`` → ``hw``; ``pyflow`` itself → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every pyflow import in ``path``, at any depth (function-level imports too)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("pyflow")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyflow"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            # `from pyflow import golden` imports the unit golden, `from pyflow.ir import load` the unit ir
            found += [(node.lineno, name if node.module == "pyflow" else node.module) for name in names]
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _unit(_module_name(path))
        for line, module in imports(path):
            target = _unit(module)
            if target in ("__init__", importer) or module == "pyflow.__version__":
                continue
            if LAYER[target] >= LAYER[importer]:
                out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {importer} (layer {LAYER[importer]}) "
                           f"imports {module} (layer {LAYER[target]})")
    return out


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(path)) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= set(LAYER), f"units without a layer in pyflow.LAYERS: {sorted(units - set(LAYER))}"


def test_no_import_runs_up_the_layers():
    assert violations() == []


def test_the_walk_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself can fail: an ir module importing the golden model is reported."""
    planted = PACKAGE / "ir" / "_planted_upward.py"
    planted.write_text("from pyflow import golden\n")
    try:
        found = violations()
    finally:
        planted.unlink()
    assert found == ["pyflow/ir/_planted_upward.py:1: ir (layer 2) imports pyflow.golden (layer 3)"]
