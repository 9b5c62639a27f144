"""Whole-network validation: every guarantee the backends rely on, each failure one line naming the layer."""

from __future__ import annotations

import numpy as np

from pyflow.errors import PyflowError
from pyflow.ir.fields import FieldError
from pyflow.ir.model import (
    CODE_INVALID,
    INPUT,
    LOGIT_BITS,
    M_BITS,
    M_MAX,
    M_MIN,
    MAX_SHIFT,
    AddLayer,
    FlattenLayer,
    MatrixLayer,
    Network,
    PoolLayer,
    accumulator_bits,
    signed_output,
)
from pyflow.ir.packing import layer_matrix, words_to_codes


def check_network(network: Network) -> Network:
    """Raise a one-line :class:`PyflowError` on the first broken guarantee; return the network."""
    if not network.layers:
        raise PyflowError(f"network {network.name!r} has no layers")
    outputs = {INPUT: (network.input_shape, network.input_bits)}
    for position, layer in enumerate(network.layers):
        if layer.name in outputs:
            raise PyflowError(f"layer {layer.name!r}: name: used twice")
        last = position == len(network.layers) - 1
        _check_inputs(network, layer, outputs)
        if isinstance(layer, MatrixLayer):
            _check_matrix(layer, network.a_bits, last)
        elif isinstance(layer, PoolLayer):
            _check_pool(layer)
        elif isinstance(layer, AddLayer):
            _check_add(layer, network.a_bits)
        elif not isinstance(layer, FlattenLayer):
            raise PyflowError(f"layer {layer.name!r}: unsupported layer type {type(layer).__name__}")
        if last and not isinstance(layer, MatrixLayer):
            raise PyflowError(f"layer {layer.name!r}: the last layer must be a conv or linear layer (the logits)")
        outputs[layer.name] = (layer.out_shape, layer.out_bits)
    _check_readers(network)
    return network


def _check_inputs(network: Network, layer, outputs: dict) -> None:
    """Every input exists before ``layer``, has its ``in_shape`` and ``in_bits``, and its signedness is allowed."""
    for source in network.inputs_of(layer):
        if source not in outputs:
            later = any(other.name == source for other in network.layers)
            raise PyflowError(f"layer {layer.name!r}: inputs: {source!r} is "
                              f"{'a later layer (layers must be in topological order)' if later else 'no layer'}")
        shape, bits = outputs[source]
        if layer.in_shape != shape:
            raise PyflowError(f"layer {layer.name!r}: in_shape: {layer.in_shape} does not match "
                              f"the output of {source!r} {shape}")
        if layer.in_bits != bits:
            raise PyflowError(f"layer {layer.name!r}: in_bits: {layer.in_bits}, the output of {source!r} has {bits}")
    if isinstance(layer, AddLayer):
        for source, flag, key in zip(network.inputs_of(layer), layer.signed_inputs, ("a_signed", "b_signed"),
                                     strict=True):
            if flag != signed_output(network.producer(source)):
                raise PyflowError(f"layer {layer.name!r}: {key}: {flag}, but {source!r} is "
                                  f"{'' if signed_output(network.producer(source)) else 'not '}signed")
    else:
        for source in network.inputs_of(layer):
            if signed_output(network.producer(source)):
                raise PyflowError(f"layer {layer.name!r}: reads the signed output of {source!r}; only an add "
                                  "may read a signed activation")


def _check_readers(network: Network) -> None:
    """Every layer but the last is read; nothing reads the logits."""
    last = network.layers[-1]
    for layer in network.layers[:-1]:
        if not network.consumers(layer.name):
            raise PyflowError(f"layer {layer.name!r}: no layer reads its output (only the last layer, "
                              f"{last.name!r}, may be unread)")
    if network.consumers(last.name):
        raise PyflowError(f"layer {last.name!r}: it gives the logits, so no layer may read it")


def _fail(layer: MatrixLayer | PoolLayer, what: str) -> PyflowError:
    return PyflowError(f"layer {layer.name!r}: {what}")


def _array_fail(layer: MatrixLayer, array: str, what: str) -> FieldError:
    """A broken array: a FieldError, so that `load` can name weights.npz, the file holding it."""
    return FieldError(layer.name, array, what, array=True)


def _check_matrix(layer: MatrixLayer, a_bits: int, last: bool) -> None:
    if layer.is_output != last:
        raise _fail(layer, f"is_output: {layer.is_output}, but the layer is {'' if last else 'not '}the last")
    if layer.kind == "linear" and (layer.in_shape[1:] != (1, 1) or layer.kernel != 1):
        raise _fail(layer, f"a linear layer takes a (C, 1, 1) input with kernel 1, got {layer.in_shape}")
    if min(layer.out_shape[1:]) < 1:
        raise _fail(layer, f"kernel {layer.kernel} with padding {layer.padding} does not fit "
                           f"the input {layer.in_shape}")
    expected_bits = LOGIT_BITS if last else a_bits
    if layer.out_bits != expected_bits:
        raise _fail(layer, f"out_bits: {layer.out_bits}, expected {expected_bits}")
    if layer.relu and not last:
        raise _fail(layer, "relu: only the output layer has one (a hidden layer's clamp at 0 is its ReLU)")
    if layer.signed and (last or layer.out_bits < 2):
        raise _fail(layer, "signed: the output layer returns logits; a signed activation needs 2 bits or more")
    need = accumulator_bits(layer.fan_in, layer.in_bits)
    if layer.acc_bits < need:
        raise _fail(layer, f"acc_bits: {layer.acc_bits} cannot hold a fan-in of {layer.fan_in} (needs {need})")
    _check_index(layer)
    _check_requant(layer)


def _check_index(layer: MatrixLayer) -> None:
    expect = (layer.out_channels,)
    for key in ("m", "b"):
        if getattr(layer, key).shape != expect:
            raise _array_fail(layer, key, f"shape {getattr(layer, key).shape}, expected {expect}")
    row_ptr, col_idx = layer.row_ptr, layer.col_idx
    if row_ptr.shape != (layer.out_folds + 1,):
        raise _array_fail(layer, "row_ptr", f"shape {row_ptr.shape}, expected ({layer.out_folds + 1},) for "
                           f"{layer.out_channels} outputs at PE={layer.pe}")
    if row_ptr[0] != 0 or (np.diff(row_ptr) < 0).any() or row_ptr[-1] != len(col_idx):
        raise _array_fail(layer, "row_ptr", "not a CSR pointer (start 0, non-decreasing, end at the tile count)")
    if len(col_idx) and (col_idx.min() < 0 or col_idx.max() >= layer.col_folds):
        raise _array_fail(layer, "col_idx", f"tile index out of range: column folds must lie in [0, {layer.col_folds})")
    for fold in range(layer.out_folds):
        if (np.diff(col_idx[row_ptr[fold]:row_ptr[fold + 1]]) <= 0).any():
            raise _array_fail(layer, "col_idx", f"column folds of output fold {fold} are not strictly ascending")
    if layer.words.shape != (len(col_idx), layer.word_bytes):
        raise _array_fail(layer, "words", f"shape {layer.words.shape}, expected ({len(col_idx)}, {layer.word_bytes}) "
                           f"for PE={layer.pe} x SIMD={layer.simd}")
    if (words_to_codes(layer.words, layer.pe * layer.simd) == CODE_INVALID).any():
        raise _array_fail(layer, "words", "invalid 2-bit weight code 10")
    spare_bits = layer.word_bytes * 8 - layer.word_bits
    if spare_bits and (layer.words[:, -1] >> (8 - spare_bits)).any():
        raise _array_fail(layer, "words", "bits above the last lane must be zero")
    matrix = layer_matrix(layer).reshape(layer.m_pad, -1, layer.c_in_pad)
    if matrix[layer.out_channels:].any() or matrix[:, :, layer.c_in:].any():
        raise _array_fail(layer, "words", "padded rows or channels hold non-zero weights")


def _check_requant(layer: MatrixLayer) -> None:
    if (layer.m < M_MIN).any() or (layer.m > M_MAX).any():
        raise _array_fail(layer, "m", f"multipliers must fit {M_BITS}-bit signed integers")
    if layer.is_output:
        worst = (1 << (layer.acc_bits - 1)) * int(np.abs(layer.m).max(initial=0)) + int(np.abs(layer.b).max(initial=0))
        if layer.shift != 0:
            raise _fail(layer, f"shift: {layer.shift}, the output layer has none (it returns acc*m+b)")
        if worst >= 1 << (LOGIT_BITS - 1):
            raise _array_fail(layer, "m", f"logits acc*m+b may overflow int{LOGIT_BITS}")
        return
    b_limit = 1 << (layer.acc_bits + M_BITS - 2)
    if (np.abs(layer.b) >= b_limit).any():
        raise _array_fail(layer, "b", f"biases must lie within ±2^{layer.acc_bits + M_BITS - 2}")
    if not 0 <= layer.shift <= MAX_SHIFT:
        raise _fail(layer, f"shift: {layer.shift} outside [0, {MAX_SHIFT}]")


def _check_add(layer: AddLayer, a_bits: int) -> None:
    if layer.out_bits != a_bits or layer.in_bits != a_bits:
        raise _fail(layer, f"in_bits/out_bits: {layer.in_bits}/{layer.out_bits}, an add works on {a_bits}-bit "
                           "activations")
    if abs(layer.c) >= 1 << (layer.sum_bits - 2):
        raise _fail(layer, f"c: {layer.c} is out of range (|c| < 2^{layer.sum_bits - 2})")


def _check_pool(layer: PoolLayer) -> None:
    if layer.kind == "maxpool":
        return
    if not M_MIN <= layer.m <= M_MAX:
        raise _fail(layer, f"m: {layer.m} does not fit a {M_BITS}-bit signed integer")
    if abs(layer.b) >= 1 << (layer.sum_bits + M_BITS - 1):
        raise _fail(layer, f"b: {layer.b} is out of range")
    if not 0 <= layer.shift <= MAX_SHIFT:
        raise _fail(layer, f"shift: {layer.shift} outside [0, {MAX_SHIFT}]")
