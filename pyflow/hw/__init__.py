"""Hardware knowledge in one home: plain functions of the IR (and the folding) that return figures.

* :mod:`pyflow.hw.sizing` — every width, depth, lane bank, alignment and latency of the RTL engines;
* :mod:`pyflow.hw.cycles` — the cycle model of those engines and of the pipeline;
* :mod:`pyflow.hw.resources` — the analytical LUT / FF / BRAM / DSP model over the sizing.

Layering of the package (each layer imports only the layers before it; tests/test_layering.py walks
the imports and fails on one that runs up):

1. ``errors``, ``artifacts``, ``config``, ``util``, ``tools`` — shared names, JSON, YAML, folders, tools;
2. ``ir`` — the IR, its packing, validation and files; ``data``, ``models`` (datasets, the model zoo);
3. ``golden`` — the integer oracle executing the IR; ``boards`` — board budgets;
4. ``hw`` — sizing, cycles, resources (this package);
5. ``random_ir``, ``folding`` — random test networks; PE × SIMD per layer from the cycle and resource models;
6. ``compress`` — PyTorch compression and export into the IR;
7. ``codegen`` — renders what ``hw`` computed; ``sim`` — C-sim, RTL sim, Yosys on generated projects;
8. ``report`` — reads the artifacts; ``flow`` — runs the stages; ``cli`` — the command line.
"""
