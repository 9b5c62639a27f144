"""Hardware knowledge in one home: plain functions of the IR (and the folding) that return figures.

* :mod:`pyflow.hw.sizing` — every width, depth, lane bank, alignment and latency of the RTL engines;
* :mod:`pyflow.hw.cycles` — the cycle model of those engines and of their pipeline;
* :mod:`pyflow.hw.resources` — the analytical LUT / FF / BRAM / DSP model over the sizing.

Code generation renders what this package computes; folding, the simulators' summaries and the report
read it (generate writes it to ``rtl/sizing.json``). Its place in the package's layering: ``pyflow``'s
docstring.
"""
