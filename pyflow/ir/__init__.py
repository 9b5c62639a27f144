"""The accelerator IR: layers, packing, validation, save/load (random test networks: pyflow.random_ir).

The data layout (lane, bit and loop order) is documented once, in :mod:`pyflow.ir.model`.
An IR is a file users exchange: every field is checked when a layer or network is built
(:mod:`pyflow.ir.fields`), the files are read bounded and strict (:mod:`pyflow.ir.untrusted`), and
:mod:`pyflow.mutate` fuzzes both.
"""

from pyflow.ir.check import check_network
from pyflow.ir.io import load, save
from pyflow.ir.model import (
    INPUT,
    LOGIT_BITS,
    M_BITS,
    SCHEMA_VERSION,
    AddLayer,
    FlattenLayer,
    Layer,
    MatrixLayer,
    Network,
    PoolLayer,
    accumulator_bits,
)

__all__ = [
    "INPUT", "LOGIT_BITS", "M_BITS", "SCHEMA_VERSION", "AddLayer", "FlattenLayer", "Layer", "MatrixLayer", "Network",
    "PoolLayer",
    "accumulator_bits", "check_network", "load", "save",
]
