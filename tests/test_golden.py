"""The golden model against an independent, obviously-correct per-pixel reference written here."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflow import golden
from pyflow.ir import LOGIT_BITS, FlattenLayer, MatrixLayer, Network, PoolLayer, accumulator_bits
from pyflow.ir.packing import layer_matrix, pack, pad_matrix, tiles_of
from pyflow.random_ir import random_network


def reference_conv(x, w, stride, padding):
    """x [B, C, H, W], w [O, C, k, k] → acc [B, O, Ho, Wo] by a loop over output pixels."""
    batch, c_in, height, width = x.shape
    k = w.shape[2]
    h_out, w_out = (height + 2 * padding - k) // stride + 1, (width + 2 * padding - k) // stride + 1
    acc = np.zeros((batch, w.shape[0], h_out, w_out), dtype=np.int64)
    for b in range(batch):
        for oy in range(h_out):
            for ox in range(w_out):
                patch = np.zeros((c_in, k, k), dtype=np.int64)
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = oy * stride + ky - padding, ox * stride + kx - padding
                        if 0 <= iy < height and 0 <= ix < width:
                            patch[:, ky, kx] = x[b, :, iy, ix]
                acc[b, :, oy, ox] = (w.astype(np.int64) * patch).sum(axis=(1, 2, 3))
    return acc


def reference_requant(acc, m, b, shift, out_bits, is_output):
    """Per-element requantization, Python integers (arbitrary precision), floor shift."""
    out = np.empty_like(acc)
    for index in np.ndindex(acc.shape):
        o = index[1]
        value = int(acc[index]) * int(m[o]) + int(b[o])
        out[index] = value if is_output else min(max(value >> shift, 0), (1 << out_bits) - 1)
    return out


def torch_order_weights(layer: MatrixLayer) -> np.ndarray:
    """The IR matrix back in torch's [O, C, k, k] order (the layout of pyflow.ir.model, restated)."""
    k = layer.kernel
    matrix = layer_matrix(layer).reshape(layer.m_pad, k, k, layer.c_in_pad)
    return matrix[:layer.out_channels, :, :, :layer.c_in].transpose(0, 3, 1, 2)


def reference_network(network: Network, images: np.ndarray) -> np.ndarray:
    x = images.astype(np.int64)  # NCHW throughout: nothing shared with the golden model's HWC path
    for layer in network.layers:
        if isinstance(layer, MatrixLayer):
            acc = reference_conv(x, torch_order_weights(layer), layer.stride, layer.padding)
            x = reference_requant(acc, layer.m, layer.b, layer.shift, layer.out_bits, layer.is_output)
        elif isinstance(layer, PoolLayer):
            x = reference_pool(x, layer)
        else:
            x = x.transpose(0, 2, 3, 1).reshape(len(x), -1, 1, 1)  # flatten in (y, x, c) order
    return x.reshape(len(x), -1)


def reference_pool(x, layer: PoolLayer):
    batch, channels, height, width = x.shape
    k, s = layer.kernel, layer.stride
    h_out, w_out = (height - k) // s + 1, (width - k) // s + 1
    out = np.zeros((batch, channels, h_out, w_out), dtype=np.int64)
    for oy in range(h_out):
        for ox in range(w_out):
            window = x[:, :, oy * s:oy * s + k, ox * s:ox * s + k]
            if layer.kind == "maxpool":
                out[:, :, oy, ox] = window.max(axis=(2, 3))
            else:
                total = window.sum(axis=(2, 3)) * layer.m + layer.b
                out[:, :, oy, ox] = np.clip(total >> layer.shift, 0, (1 << layer.in_bits) - 1)
    return out


@st.composite
def matrix_layers(draw):
    kernel = draw(st.sampled_from([1, 3, 5]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from([p for p in (0, 1, 2) if p < kernel]))
    pe, simd = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    c_in, c_out = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    size = draw(st.integers(max(1, kernel - 2 * padding), 9))
    in_bits, a_bits = draw(st.sampled_from([4, 8])), draw(st.sampled_from([4, 8]))
    is_output = draw(st.booleans())
    keep = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    weights = rng.integers(-1, 2, size=(c_out, c_in, kernel, kernel))
    matrix = pad_matrix(weights, weights.shape, pe, simd)
    mask = rng.random((matrix.shape[0] // pe, matrix.shape[1] // simd)) < keep
    packed = pack(matrix, mask, pe, simd)
    acc_bits = accumulator_bits(kernel * kernel * c_in, in_bits)
    shift = 0 if is_output else int(rng.integers(0, 12))
    m = rng.integers(-200, 200, size=c_out)
    b = rng.integers(-(1 << 14), 1 << 14, size=c_out)
    layer = MatrixLayer("conv", "conv", (c_in, size, size), c_out, kernel, stride, padding, pe, simd, in_bits,
                        LOGIT_BITS if is_output else a_bits, acc_bits, shift, m, b, *packed, is_output=is_output)
    kept = (tiles_of(matrix, pe, simd) * mask[:, :, None, None]).swapaxes(1, 2).reshape(matrix.shape)
    kept_torch = kept.reshape(-1, kernel, kernel, matrix.shape[1] // kernel**2)[:c_out, :, :, :c_in]
    x = rng.integers(0, 1 << in_bits, size=(2, c_in, size, size))
    return layer, kept_torch.transpose(0, 3, 1, 2), x


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrix_layers())
def test_matrix_layer_equals_per_pixel_reference(case):
    layer, kept_weights, x = case
    expected = reference_requant(reference_conv(x, kept_weights, layer.stride, layer.padding),
                                 layer.m, layer.b, layer.shift, layer.out_bits, layer.is_output)
    got = golden.run_layer(layer, x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["maxpool", "avgpool"]), kernel=st.integers(1, 3), stride=st.integers(1, 3),
       channels=st.integers(1, 9), size=st.integers(3, 9), in_bits=st.sampled_from([4, 8]),
       seed=st.integers(0, 2**31))
def test_pooling_equals_reference(kind, kernel, stride, channels, size, in_bits, seed):
    rng = np.random.default_rng(seed)
    m, b, shift = (int(rng.integers(1, 300)), int(rng.integers(-500, 500)), int(rng.integers(0, 9)))
    layer = PoolLayer("pool", kind, (channels, size, size), kernel, stride, in_bits, m=m, b=b, shift=shift)
    x = rng.integers(0, 1 << in_bits, size=(3, channels, size, size))
    got = golden.run_layer(layer, x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert np.array_equal(got, reference_pool(x, layer))


@pytest.mark.parametrize("spec,shape,pe,simd,keep,a_bits", [
    ("conv6k3p1 maxpool2 conv10k3p1 avgpool2 linear10", (1, 8, 8), 4, 4, 0.5, 8),
    ("conv5k5s2p2 conv7k1 flatten linear3", (3, 9, 9), 3, 5, 0.3, 4),
    ("conv8k3s2p1 maxpool2s1 linear6", (2, 7, 7), 16, 1, 1.0, 8),
    ("conv4k3 linear5", (1, 6, 6), 1, 16, 0.0, 4),
])
def test_network_equals_reference(spec, shape, pe, simd, keep, a_bits):
    network = random_network(spec, shape, pe=pe, simd=simd, keep=keep, a_bits=a_bits, seed=3)
    images = np.random.default_rng(0).integers(0, 256, size=(4, *shape), dtype=np.uint8)
    assert np.array_equal(golden.run(network, images), reference_network(network, images))


def test_random_network_activations_spread():
    """Calibration makes hidden activations use their range: neither all zero nor all saturated."""
    network = random_network("conv8k3p1 conv8k3p1 linear10", (1, 8, 8), seed=5)
    images = np.random.default_rng(1).integers(0, 256, size=(16, 1, 8, 8), dtype=np.uint8)
    for layer, out in zip(network.layers[:-1], golden.trace(network, images)[:-1], strict=True):
        assert 0.02 < (out == 0).mean() < 0.6, layer.name
        assert len(np.unique(out)) > 50, layer.name


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("kernel,c_in,in_bits,keep", [(1, 1, 8, 1.0), (3, 16, 8, 1.0), (5, 7, 4, 0.5),
                                                      (1, 784, 8, 1.0), (3, 64, 4, 0.25)])
def test_worst_case_fits_accumulator(sign, kernel, c_in, in_bits, keep):
    """All inputs at maximum, all kept weights +1 (then −1): |acc| stays inside the recorded width."""
    pe = simd = 4
    rng = np.random.default_rng(0)
    weights = np.full((8, c_in, kernel, kernel), sign)
    matrix = pad_matrix(weights, weights.shape, pe, simd)
    mask = rng.random((matrix.shape[0] // pe, matrix.shape[1] // simd)) < keep
    mask[0, :] = True  # output 0 sees its whole fan-in
    acc_bits = accumulator_bits(kernel * kernel * c_in, in_bits)
    layer = MatrixLayer("conv", "conv", (c_in, kernel, kernel), 8, kernel, 1, 0, pe, simd, in_bits, 8, acc_bits,
                        0, np.ones(8), np.zeros(8), *pack(matrix, mask, pe, simd))
    x = np.full((1, kernel, kernel, c_in), (1 << in_bits) - 1)
    acc = golden.accumulate(layer, x)
    assert acc[0, 0, 0, 0] == sign * kernel * kernel * c_in * ((1 << in_bits) - 1)
    assert -(1 << (acc_bits - 1)) <= acc.min() and acc.max() < 1 << (acc_bits - 1)


def test_golden_rejects_wrong_input():
    network = random_network("conv4k3 linear3", (1, 6, 6))
    with pytest.raises(Exception, match=r"takes uint8"):
        golden.run(network, np.zeros((1, 1, 6, 6), dtype=np.int32))
    with pytest.raises(Exception, match=r"shape \(1, 1, 5, 5\)"):
        golden.run(network, np.zeros((1, 1, 5, 5), dtype=np.uint8))


def test_flatten_keeps_hwc_order():
    layer = FlattenLayer("flat", (2, 2, 3), 8)
    x = np.arange(12).reshape(1, 2, 3, 2)  # HWC
    assert list(golden.run_layer(layer, x).ravel()) == list(range(12))


def _all_plus_one_linear(c_in: int, in_bits: int) -> MatrixLayer:
    """A 1×1 layer of 4 outputs, every weight +1: at full-scale inputs its acc is the worst case."""
    matrix = pad_matrix(np.ones((4, c_in, 1, 1)), (4, c_in, 1, 1), 4, 4)
    mask = np.ones((matrix.shape[0] // 4, matrix.shape[1] // 4), dtype=bool)
    return MatrixLayer("fc", "conv", (c_in, 1, 1), 4, 1, 1, 0, 4, 4, in_bits, 8, accumulator_bits(c_in, in_bits),
                       0, np.ones(4), np.zeros(4), *pack(matrix, mask, 4, 4))


@pytest.mark.parametrize("c_in,in_bits,expected", [(256, 16, np.float32), (257, 16, np.float64),
                                                   (65793, 8, np.float32), (65794, 8, np.float64)])
def test_float_matmul_is_exact_up_to_its_bound(c_in, in_bits, expected):
    """fan_in·(2^in_bits − 1) ≤ 2^24 is float32, just above is float64: worst-case vectors give ``==``."""
    layer = _all_plus_one_linear(c_in, in_bits)
    x = np.full((2, 1, 1, c_in), (1 << in_bits) - 1)
    assert golden.matmul_dtype(layer, x) is expected
    worst = c_in * ((1 << in_bits) - 1)
    assert (worst <= 1 << 24) == (expected is np.float32)
    assert (golden.accumulate(layer, x) == worst).all()
    assert np.array_equal(golden.accumulate(layer, x), golden.accumulate(layer, x, np.int64))


def test_float32_past_the_bound_is_wrong():
    """The bound is needed: float32 on the first case above it loses the odd worst-case sum."""
    layer = _all_plus_one_linear(257, 16)
    x = np.full((1, 1, 1, 257), (1 << 16) - 1)
    worst = 257 * ((1 << 16) - 1)  # 16,842,495: odd and above 2^24, so float32 cannot hold it
    assert (golden.accumulate(layer, x, np.int64) == worst).all()
    assert not (golden.accumulate(layer, x, np.float32) == worst).any()


def test_inputs_beyond_in_bits_fall_back_to_exact_types():
    """The bound also covers what a caller passes: values far above 2^in_bits go to int64."""
    layer = _all_plus_one_linear(8, 8)
    x = np.full((1, 1, 1, 8), 1 << 51)  # 8·2^51 = 2^54 > 2^53
    assert golden.matmul_dtype(layer, x) is np.int64
    assert (golden.accumulate(layer, x) == 8 << 51).all()


@pytest.mark.parametrize("case", range(12))
def test_float_path_equals_int64_on_the_fuzz_set(case):
    """Random chains and residual networks of the fuzzer, and 16-bit activations (float64 layers)."""
    from pyflow.fuzz import generate_case, generate_residual_case

    if case < 5:
        network = generate_case(case).network()
    elif case < 10:
        network = generate_residual_case(case).network()
    else:
        network = random_network("conv32k3p1 conv64k3p1 maxpool2 linear10", (3, 8, 8), a_bits=16, seed=case)
    images = np.random.default_rng(case).integers(0, 256, size=(6, *network.input_shape), dtype=np.uint8)
    kinds = {golden.matmul_dtype(layer, np.zeros(1, dtype=np.int64)) for layer in network.matrix_layers}
    assert kinds <= {np.float32, np.float64} and (case < 10 or np.float64 in kinds)
    for fast, reference in zip(golden.trace(network, images), golden.trace(network, images, np.int64), strict=True):
        assert np.array_equal(fast, reference)


def test_chunked_accumulate_equals_one_chunk(monkeypatch):
    """Large batches are cut into chunks of im2col columns; the cut changes nothing."""
    network = random_network("conv8k3p1 linear4", (2, 6, 6), seed=3)
    images = np.random.default_rng(3).integers(0, 256, size=(7, 2, 6, 6), dtype=np.uint8)
    whole = golden.run(network, images)
    monkeypatch.setattr(golden, "CHUNK_ELEMENTS", 1)
    assert np.array_equal(golden.run(network, images), whole)
    assert np.array_equal(golden.run(network, images, np.int64), whole)
