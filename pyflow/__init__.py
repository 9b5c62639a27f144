"""pyflow: a trained PyTorch CNN to a sparse, ternary, add-only FPGA accelerator, proven bit-exact.

Layering: each unit (a module or subpackage of ``pyflow``) imports only units of lower layers, and
``tests/test_layering.py`` walks every import of the package to keep it so. From the bottom up:

0. ``errors`` — the one user-facing exception;
1. ``artifacts`` (paths, the JSON writer, shared names), ``config`` (YAML), ``util`` (atomic folders),
   ``tools`` (external tools), ``runlock`` (one writer per run folder);
2. ``ir`` — the IR, its packing, checks, files and compression figures; ``data``, ``models``;
3. ``golden`` — the integer oracle executing the IR; ``boards`` — board budgets;
4. ``hw`` — sizing, cycle model, resource model: the hardware knowledge, in one home;
5. ``random_ir`` (random test networks), ``folding`` (PE × SIMD per layer from ``hw``);
6. ``compress`` — PyTorch compression and export into the IR;
7. ``codegen`` — renders the IR and what ``hw`` computed;
8. ``sim`` — C-simulation, RTL simulation and Yosys on generated projects;
9. ``report`` — reads the artifacts of a run; ``fuzz`` — networks through every view; ``mutate`` — hostile
   variations of valid IR files; ``host`` — streams images through a board over its serial port;
10. ``flow`` — runs the stages;
11. ``cli`` — the command line;
12. ``__main__`` — `python -m pyflow`.
"""

__version__ = "0.1.0"

LAYERS = (
    ("errors",),
    ("artifacts", "config", "util", "tools", "runlock"),
    ("ir", "data", "models"),
    ("golden", "boards"),
    ("hw",),
    ("random_ir", "folding"),
    ("compress",),
    ("codegen",),
    ("sim",),
    ("report", "fuzz", "mutate", "host"),
    ("flow",),
    ("cli",),
    ("__main__",),
)
