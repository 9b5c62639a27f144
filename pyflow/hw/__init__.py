"""Hardware knowledge in one home: plain functions of the IR (and the folding) that return figures.

* :mod:`pyflow.hw.engines` — which layers are engines, how they connect (forks, adds), lanes, latencies;
* :mod:`pyflow.hw.cycles` — the cycle model of those engines and of their pipeline, and the image banks
  each feature buffer needs (a skip waits in more);
* :mod:`pyflow.hw.sizing` — every width, depth, lane bank and alignment of the RTL engines;
* :mod:`pyflow.hw.resources` — the analytical LUT / FF / BRAM / DSP model over the sizing.

Code generation renders what this package computes; folding, the simulators' summaries and the report
read it (generate writes it to ``rtl/sizing.json``). Its place in the package's layering: ``pyflow``'s
docstring.
"""
