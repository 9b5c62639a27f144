"""`pyflow run flow.yaml`: every stage in order, each writing its artifact to its own subfolder.

    RUN/train/        model.pt, metrics.json       (FP training; absent when the YAML names a checkpoint)
    RUN/fold/         folding.json                 (PE x SIMD per layer, chosen before compression)
    RUN/checkpoint/   model.pt, meta.json, metrics.json
    RUN/ir/           network.json, weights.npz, eval.json
    RUN/hls/          the Vitis HLS project, csim.json
    RUN/rtl/          the Verilog project, sim_icarus.json, sim_verilator.json, yosys.json
    RUN/report/       report.json, report.md, report.html
    RUN/run.json      the fingerprint of each finished stage
    RUN/.pyflow.lock  while a run is writing here: its pid, host and start time (pyflow/runlock.py)

A stage runs again only when its fingerprint — its own settings plus the fingerprints of the stages it
reads — differs from the one recorded for its finished artifact. csim, sim and synth only read the
generated projects, so they run side by side.
"""

from pyflow.flow.cli import register
from pyflow.flow.config import FlowConfig, Verify, load_flow
from pyflow.flow.runner import STAGES, run_flow

__all__ = ["STAGES", "FlowConfig", "Verify", "load_flow", "register", "run_flow"]
