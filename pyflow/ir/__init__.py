"""The accelerator IR: layers, packing, validation, save/load (random test networks: pyflow.random_ir).

The data layout (lane, bit and loop order) is documented once, in :mod:`pyflow.ir.model`.
"""

from pyflow.ir.check import check_network
from pyflow.ir.io import load, save
from pyflow.ir.model import (
    LOGIT_BITS,
    M_BITS,
    SCHEMA_VERSION,
    FlattenLayer,
    Layer,
    MatrixLayer,
    Network,
    PoolLayer,
    accumulator_bits,
)

__all__ = [
    "LOGIT_BITS", "M_BITS", "SCHEMA_VERSION", "FlattenLayer", "Layer", "MatrixLayer", "Network", "PoolLayer",
    "accumulator_bits", "check_network", "load", "save",
]
