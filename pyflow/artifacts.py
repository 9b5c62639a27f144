"""What crosses between stages, named once: artifact paths, the one JSON writer, shared names and defaults.

A stage writes its artifact with :func:`write_json` (sorted keys, two-space indent, trailing newline,
so equal figures give equal bytes); every later stage reads it from the path named here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SIMULATORS = ("icarus", "verilator")  # the RTL simulators of the flow, in report order
DEFAULT_BOARD = "pynq-z2"

# Files inside a stage folder (a run folder holds one folder per stage, see pyflow.flow).
FOLDING_FILE = "folding.json"  # fold/: the folding plan chosen before compression
EVAL_FILE = "eval.json"  # ir/: golden-model accuracy and compression figures (written by export)
CSIM_FILE = "csim.json"  # hls/: C-simulation against the golden model
SIZING_FILE = "sizing.json"  # rtl/: every width, depth and modelled cycle count the generated RTL was sized with
YOSYS_FILE = "yosys.json"  # rtl/: Yosys cell counts
PNR_DIR = "pnr"  # rtl/pnr/: the board wrapper placed and routed (ECP5 boards), its bitstream
PNR_FILE = "pnr.json"  # rtl/pnr/: measured Fmax, utilization, critical path, run time and memory


def sim_file(simulator: str) -> str:
    """rtl/: one RTL simulation against the golden model, with the hardware cycle counters."""
    return f"sim_{simulator}.json"


def write_json(path: str | Path, doc: Any) -> Path:
    """The one JSON writer of the package: sorted keys, a trailing newline (byte-stable artifacts)."""
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def project_root() -> Path:
    """The repository (or installed source tree) root holding hls_templates/, rtl_templates/, boards/."""
    return Path(__file__).resolve().parents[1]
