"""The ops of an imported network: the DAG that :mod:`pyflow.compress.importer` reads from the user's forward,
that ChainNet executes and that export turns into IR layers. Ops are plain JSON-able dicts, saved in the
checkpoint's meta.json.

Kinds: ``conv`` / ``linear`` (named ``conv0, conv1, …`` / ``fc0, …`` in forward order), ``bn`` and the
activation of the matrix layer before it — ``relu`` (unsigned) or ``quant`` (signed: a residual branch's end,
read only by adds) — ``maxpool`` / ``avgpool`` (``pool0, …``), ``flatten`` (``flatten0, …``) and ``add``
(``add0, …``, always read by its ``relu``), and ``logit_relu``: a forward ending in ReLU after the logits
layer (the IR's output layer with ``relu``: logits clamped at 0). An op reads the ops listed in ``inputs``
(indices; ``-1`` is the network input); without ``inputs`` it reads the op before it, so a chain is written as
it always was.
The last op gives the logits.
"""

from __future__ import annotations

from typing import Any

from pyflow.compress.ternary import Geometry
from pyflow.errors import PyflowError

MATRIX = ("conv", "linear")
INPUT_OP = -1  # what ``inputs`` calls the network input
_READER_NAMES = {"quant": "an add without ReLU", "relu": "a ReLU", "bn": "a BatchNorm"}


def op_inputs(ops: list[dict[str, Any]], index: int) -> list[int]:
    """The op indices ``ops[index]`` reads (INPUT_OP for the network input)."""
    inputs = ops[index].get("inputs", [index - 1])
    if not isinstance(inputs, list) or not all(isinstance(i, int) and INPUT_OP <= i < index for i in inputs):
        raise ValueError(f"op {index}: inputs {inputs!r} must name earlier ops")
    return inputs


def geometry(op: dict[str, Any], shares_input: bool = False) -> Geometry:
    flat = op.get("flat_from")
    return Geometry(op["name"], op["op"], op["c_in"], op["c_out"], op["kernel"], op["stride"], op["padding"],
                    tuple(op["in_shape"][1:]), op["bias"], tuple(flat) if flat else None, shares_input)


def geometries(ops: list[dict[str, Any]]) -> list[Geometry]:
    """The matrix layers' geometries; a layer reading an activation another op reads too (a fork: a residual
    block's first conv, its shortcut) is marked ``shares_input`` for the folding planner."""
    readers: dict[int, int] = {}
    for index in range(len(ops)):
        for source in op_inputs(ops, index):
            readers[source] = readers.get(source, 0) + 1
    return [geometry(op, any(readers[s] > 1 for s in op_inputs(ops, i))) for i, op in enumerate(ops)
            if op["op"] in MATRIX]


def geom_op(geom: Geometry, source: str) -> dict[str, Any]:
    """The op of a matrix layer; ``source`` is the user's module it came from."""
    return {"op": geom.kind, "name": geom.name, "c_in": geom.c_in, "c_out": geom.c_out, "kernel": geom.kernel,
            "stride": geom.stride, "padding": geom.padding, "bias": geom.bias, "in_shape": list(geom.in_shape),
            "flat_from": list(geom.flat_from) if geom.flat_from else None, "source": source}


def validate_graph(ops: list[dict[str, Any]], lines: list[str], output: int) -> None:
    """Every op but the ``output`` is read; a matrix layer and its BatchNorm are read once (a pyflow layer has one
    activation). ``lines`` says where each op was written, for the message."""
    readers: dict[int, list[int]] = {i: [] for i in range(INPUT_OP, len(ops))}
    for index in range(len(ops)):
        for source in op_inputs(ops, index):
            readers[source].append(index)
    for index, op in enumerate(ops):
        if index != output and not readers[index]:
            raise PyflowError(f"the result of {op.get('name', op['op'])!r} in layer {lines[index]} is never used by "
                              "the logits; remove it from the forward")
        if op["op"] in (*MATRIX, "bn") and len(readers[index]) > 1:
            ways = [f"{_READER_NAMES.get(ops[r]['op'], ops[r]['op'])} in layer {lines[r]}" for r in readers[index]]
            raise PyflowError(f"layer {lines[index]}: its output is read {len(ways)} ways ({'; '.join(ways)}); a "
                              "pyflow layer has one activation, so read it once: through its BatchNorm and then ReLU, "
                              "or only by adds")
