"""ChainNet, the model pyflow compresses: the imported DAG of ternary layers, BatchNorm, activation quantizers,
pooling, flatten and residual adds (the name is older than graphs: a chain is the DAG with one reader per op).

Module names (state_dict keys, ``--folding``, reports and the IR alike): a matrix layer is named by its op
(``conv0``, ``fc0``, …; see :mod:`pyflow.compress.graph`), its BatchNorm ``conv0_bn`` and its activation
quantizer ``conv0_act`` — unsigned after a ReLU, signed (no ReLU) when only adds read the layer; pooling,
flatten and adds by their op (``pool0``, ``flatten0``, ``add0``) and an add's ReLU ``add0_act``.

With activation quantization on, every module computes what its integer counterpart computes
(DESIGN §2): :class:`ActQuant` rounds half up to its steps, :class:`QAvgPool` and :class:`QAdd` run the
integer requantizer on the quantized codes themselves, so the golden model and this model agree.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyflow.compress.graph import INPUT_OP, MATRIX, geometry, op_inputs
from pyflow.compress.ternary import TernaryMatrix
from pyflow.errors import PyflowError
from pyflow.ir.model import M_BITS, M_MAX, MAX_SHIFT

INPUT_SCALE = 1.0 / 255.0  # the step of the uint8 input

__all__ = ["ActQuant", "ChainNet", "QAdd", "QAvgPool", "add_requant", "avgpool_requant", "calibrate", "geometry"]


class ActQuant(nn.Module):
    """ReLU (unless ``signed``), then — when enabled — fake quantization to ``a_bits``-bit steps of ``scale``.

    Unsigned: codes ``0 … 2^a − 1``; signed (a residual branch's end, before the add): symmetric codes
    ``−2^(a−1) … 2^(a−1) − 1``, the scale set by ``2^(a−1) − 1`` steps for the largest magnitude. Both round
    half up (``floor(v + 0.5)``), exactly like the integer requantizer's ``+2^(s−1)`` then ``>> s``.
    """

    def __init__(self, a_bits: int, signed: bool = False) -> None:
        super().__init__()
        self.signed = signed
        self.low, self.levels = (-(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1) if signed else (0, (1 << a_bits) - 1)
        self.register_buffer("scale", torch.zeros(()))
        self.enabled = False
        self.observed = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.signed:
            x = torch.relu(x)
        if self.observed is not None:
            self.observed = max(self.observed, float(x.detach().abs().max()))
        if not self.enabled or float(self.scale) <= 0:
            return x
        q = torch.clamp(torch.floor(x / self.scale + 0.5), self.low, self.levels) * self.scale
        return x + (q - x).detach()


def avgpool_requant(kernel: int) -> tuple[int, int, int]:
    """``(m, b, shift)`` of an average pool that keeps its input's step: ``(sum·m + b) >> shift``."""
    area = kernel * kernel
    limit = (1 << 15) - 1
    shift = max(s for s in range(41) if round(2.0**s / area) <= limit)
    return round(2.0**shift / area), 1 << shift >> 1, shift


def add_requant(scale_a: float, scale_b: float, scale_out: float, a_bits: int) -> tuple[int, int, int, int]:
    """``(m_a, m_b, c, shift)`` of a residual add: ``y = (a·m_a + b·m_b + c) >> shift`` with
    ``m = round(s_in/s_out·2^shift)`` and ``c = 2^(shift−1)`` (round half up), at the largest shift that keeps
    both multipliers in 16 signed bits and ``c`` in the add's sum (``|c| < 2^(a_bits + M_BITS + 1)``)."""
    for shift in range(min(MAX_SHIFT, a_bits + M_BITS + 1), -1, -1):
        m_a, m_b = round(scale_a / scale_out * 2.0**shift), round(scale_b / scale_out * 2.0**shift)
        if max(m_a, m_b) <= M_MAX:
            return m_a, m_b, 1 << shift >> 1, shift
    raise PyflowError(f"an add's input steps {scale_a:.3g}, {scale_b:.3g} are more than {M_MAX} times its output "
                      f"step {scale_out:.3g}: calibrate on more images")


class QAvgPool(nn.Module):
    """Average pooling; when enabled, it computes exactly what the integer pool does on the quantized input
    (window sum, ``(sum·m + b) >> shift``) and returns that times the input's step ``scale``."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.register_buffer("scale", torch.zeros(()))
        self.enabled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(x, self.kernel, self.stride)
        if not self.enabled or float(self.scale) <= 0:
            return y
        m, b, shift = avgpool_requant(self.kernel)
        codes = torch.round(x.detach().double() / float(self.scale))
        sums = F.avg_pool2d(codes, self.kernel, self.stride, divisor_override=1)
        q = (torch.floor((sums * m + b) / 2.0**shift) * float(self.scale)).to(y.dtype)
        return y + (q - y).detach()


class QAdd(nn.Module):
    """``a + b``; when enabled, exactly the integer add of the IR on the quantized inputs
    (``clamp((a·m_a + b·m_b + c) >> shift, 0, 2^a − 1)``, :func:`add_requant`) times the output step — the
    ReLU quantizer after it then passes it unchanged."""

    def __init__(self, a_bits: int) -> None:
        super().__init__()
        self.a_bits = a_bits
        for key in ("scale_a", "scale_b", "scale_out"):
            self.register_buffer(key, torch.zeros(()))
        self.enabled = False

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = a + b
        scales = [float(s) for s in (self.scale_a, self.scale_b, self.scale_out)]
        if not self.enabled or min(scales) <= 0:
            return y
        m_a, m_b, c, shift = add_requant(*scales, self.a_bits)
        codes_a = torch.round(a.detach().double() / scales[0])
        codes_b = torch.round(b.detach().double() / scales[1])
        total = torch.floor((codes_a * m_a + codes_b * m_b + c) / 2.0**shift)
        q = (torch.clamp(total, 0, (1 << self.a_bits) - 1) * scales[2]).to(y.dtype)
        return y + (q - y).detach()


class ChainNet(nn.Module):
    """The compressible model: the ops of :mod:`pyflow.compress.graph` as TernaryMatrix / BatchNorm / ActQuant /
    pool / flatten / QAdd modules, run in op order, each on the outputs of the ops it reads."""

    def __init__(self, ops: list[dict[str, Any]], folding: dict[str, tuple[int, int]], a_bits: int = 8,
                 alpha_mode: str = "gaussian") -> None:
        super().__init__()
        self.ops = copy.deepcopy(ops)
        self.a_bits = a_bits
        self.inputs = [op_inputs(self.ops, index) for index in range(len(self.ops))]
        self.names: list[str] = []
        self.owner: list[str] = []  # the matrix layer a bn / activation belongs to ('' for other ops)
        last_matrix = ""
        for index, op in enumerate(self.ops):
            name, module, owner = self._module(index, op, folding, alpha_mode, last_matrix)
            self.add_module(name, module)
            self.names.append(name)
            self.owner.append(owner)
            last_matrix = op["name"] if op["op"] in MATRIX else last_matrix

    def _module(self, index: int, op: dict[str, Any], folding: dict[str, tuple[int, int]], alpha_mode: str,
                last_matrix: str) -> tuple[str, nn.Module, str]:
        kind, source = op["op"], self.inputs[index][0] if self.inputs[index] else INPUT_OP
        owner = self.owner[source] if source != INPUT_OP and self.ops[source]["op"] == "bn" else \
            self.ops[source]["name"] if source != INPUT_OP and self.ops[source]["op"] in MATRIX else ""
        if kind in MATRIX:
            return op["name"], TernaryMatrix(geometry(op), *folding[op["name"]], alpha_mode), op["name"]
        if kind == "bn":
            norm = nn.BatchNorm2d if op["dims"] == 2 else nn.BatchNorm1d
            return f"{owner}_bn", norm(op["channels"], eps=op["eps"]), owner
        if kind == "logit_relu":  # the logits clamped at 0, unquantized like the logits
            return f"{owner}_relu", nn.ReLU(), owner
        if kind in ("relu", "quant") and owner:
            return f"{owner}_act", ActQuant(self.a_bits, signed=kind == "quant"), owner
        if kind == "relu" and source != INPUT_OP and self.ops[source]["op"] == "add":
            return f"{self.ops[source]['name']}_act", ActQuant(self.a_bits), ""
        if kind == "relu":  # activations are already >= 0 here: a no-op kept for fidelity (older checkpoints)
            return self._unique(f"{last_matrix or 'input'}_relu"), nn.ReLU(), ""
        if kind == "maxpool":
            return op["name"], nn.MaxPool2d(op["kernel"], op["stride"]), ""
        if kind == "avgpool":
            return op["name"], QAvgPool(op["kernel"], op["stride"]), ""
        if kind == "add":
            return op["name"], QAdd(self.a_bits), ""
        if kind == "flatten":
            return op["name"], nn.Flatten(), ""
        raise ValueError(f"op {index}: unknown kind {kind!r}")

    def _unique(self, name: str) -> str:
        base, index = name, 1
        while name in self.names:
            name, index = f"{base}{index}", index + 1
        return name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: list[torch.Tensor] = []
        for index, name in enumerate(self.names):
            args = [x if source == INPUT_OP else values[source] for source in self.inputs[index]]
            if self.ops[index]["op"] == "linear" and args[0].dim() > 2:  # a (F, 1, 1) vector input
                args[0] = args[0].flatten(1)
            values.append(getattr(self, name)(*args))
        return values[-1].flatten(1)  # a conv's 1x1 logits as [B, classes], as the user's flatten gave them

    def readers(self, index: int) -> list[int]:
        return [i for i, sources in enumerate(self.inputs) if index in sources]

    def matrices(self) -> list[TernaryMatrix]:
        return [m for m in self.children() if isinstance(m, TernaryMatrix)]

    def set_ternary(self, enabled: bool, init: bool = True) -> None:
        """Switch ternarization on or off; switching on with ``init`` sets Δ = 0.05·max|W|."""
        for layer in self.matrices():
            if enabled and init and not layer.ternary:
                layer.init_threshold()
            layer.ternary = enabled

    def set_act_quant(self, enabled: bool) -> None:
        for module in self.children():
            if isinstance(module, ActQuant | QAvgPool | QAdd):
                module.enabled = enabled

    def load_from(self, sources: list[nn.Module | None]) -> None:
        """Copy the traced user modules' parameters (and BN statistics) into this model."""
        with torch.no_grad():
            for name, op, source in zip(self.names, self.ops, sources, strict=True):
                target = getattr(self, name)
                if op["op"] in MATRIX:
                    target.weight.copy_(source.weight.reshape(target.weight.shape))
                    if source.bias is not None:
                        target.bias.copy_(source.bias)
                elif op["op"] == "bn":
                    target.load_state_dict(source.state_dict())

    def step_scales(self) -> list[float]:
        """The quantization step of every op's output (0 for a matrix layer or BatchNorm before its activation):
        the input's is 1/255, an activation's its scale, pooling and flatten keep their input's, an add has its
        ReLU's."""
        scales: list[float] = []
        for index, name in enumerate(self.names):
            module, source = getattr(self, name), self.inputs[index][0]
            if isinstance(module, ActQuant):
                scales.append(float(module.scale))
            elif isinstance(module, TernaryMatrix | nn.modules.batchnorm._BatchNorm):
                scales.append(0.0)
            elif isinstance(module, QAdd):
                scales.append(float(getattr(self, self.names[self.readers(index)[0]]).scale))
            else:
                scales.append(INPUT_SCALE if source == INPUT_OP else scales[source])
        return scales


def calibrate(model: ChainNet, images: torch.Tensor, batch: int = 256) -> None:
    """Set every activation quantizer's scale to (max |activation|)/(levels) over ``images`` (x/255 floats), then
    the steps average pools and adds work with."""
    quantizers = [m for m in model.children() if isinstance(m, ActQuant)]
    was_training = model.training
    model.eval()
    model.set_act_quant(False)
    for q in quantizers:
        q.observed = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            model(images[start:start + batch])
    for q in quantizers:
        q.scale.fill_(max(q.observed, 1e-6) / q.levels)
        q.observed = None
    scales = model.step_scales()
    for index, name in enumerate(model.names):
        module = getattr(model, name)
        steps = [INPUT_SCALE if source == INPUT_OP else scales[source] for source in model.inputs[index]]
        if isinstance(module, QAvgPool):
            module.scale.fill_(steps[0])
        elif isinstance(module, QAdd):
            module.scale_a.fill_(steps[0])
            module.scale_b.fill_(steps[1])
            module.scale_out.fill_(scales[index])
    model.train(was_training)
