"""A user's network → a chain of supported layers (torch.fx), and ChainNet, the model pyflow compresses.

Layer names (used by ``--folding``, per-layer reports and the IR alike), counted per kind in forward
order: ``conv0, conv1, …`` for Conv2d, ``fc0, fc1, …`` for Linear, ``pool0, pool1, …`` for max and
average pooling, ``flatten0, …`` for flattens. BatchNorm and ReLU belong to the matrix layer before them
(``conv0_bn``, ``conv0_act``); Dropout is dropped (the identity at inference).

Supported: Conv2d (groups=1, dilation=1, square kernel/stride/padding, zero padding), Linear,
BatchNorm1d/2d, ReLU (module, ``torch.relu``, ``F.relu``, ``.relu()``), MaxPool2d and AvgPool2d
(square, no padding), AdaptiveAvgPool2d (when it is a whole-window average), Flatten (``nn.Flatten``,
``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(x.size(0), -1)``), Dropout. The forward must be a
chain: every operation reads the previous one's output only.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from pyflow.compress.ternary import Geometry, TernaryMatrix
from pyflow.errors import PyflowError

SUPPORTED = ("Conv2d, Linear, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout "
             "in a chain")
_RELU_FUNCS = {torch.relu, F.relu}
_FLATTEN_FUNCS = {torch.flatten}
_DROPOUT_FUNCS = {F.dropout}


def _pair(value: Any, what: str, where: str) -> int:
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise PyflowError(f"layer {where!r}: non-square {what} {value} is not supported")
        value = value[0]
    return int(value)


def _where(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack), "") if stack else "forward"


def _describe(node: fx.Node, module: nn.Module | None) -> str:
    if module is not None:
        return type(module).__name__
    target = node.target
    return getattr(target, "__name__", str(target))


class _Tracer:
    """Walks the fx graph once, producing op descriptors (plain JSON-able dicts) and source modules."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
        self.model = model
        try:
            self.graph = fx.symbolic_trace(model)
        except Exception as exc:  # the user's forward: any tracing failure is reported in one line
            raise PyflowError(f"cannot trace the model's forward with torch.fx: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        self.modules = dict(self.graph.named_modules())
        self.x = torch.zeros(1, *input_shape)
        self.ops: list[dict[str, Any]] = []
        self.sources: list[nn.Module | None] = []
        self.counts: dict[str, int] = {}
        self.last_flatten: tuple[int, int, int] | None = None

    def name(self, kind: str) -> str:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        return f"{kind}{index}"

    def run(self) -> tuple[list[dict[str, Any]], list[nn.Module | None]]:
        current, size_nodes = None, set()
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                if current is not None:
                    raise PyflowError(f"the model's forward takes more than one input ({node.name!r})")
                current = node
                continue
            if node.op == "output":
                if node.args[0] is not current:
                    raise PyflowError("the model's forward does not return the end of its layer chain")
                break
            if node.op == "call_method" and node.target == "size":
                size_nodes.add(node)
                continue
            inputs = [n for n in node.all_input_nodes if n not in size_nodes]
            module = self.modules.get(node.target) if node.op == "call_module" else None
            if inputs != [current]:
                raise PyflowError(f"unsupported operation {_describe(node, module)!r} in layer {_where(node)!r}: "
                                  f"it reads {', '.join(n.name for n in inputs) or 'no tensor'}; "
                                  f"pyflow exports a chain of layers ({SUPPORTED}) — residual adds and "
                                  "concatenations are not supported yet")
            self.visit(node, module)
            current = node
        return self.ops, self.sources

    def unsupported(self, node: fx.Node, module: nn.Module | None) -> PyflowError:
        return PyflowError(f"unsupported operation {_describe(node, module)!r} in layer {_where(node)!r} "
                           f"(supported: {SUPPORTED})")

    def visit(self, node: fx.Node, module: nn.Module | None) -> None:
        where = _where(node)
        if module is not None:
            self.visit_module(node, module, where)
        elif node.op == "call_function" and node.target in _RELU_FUNCS:
            self.add({"op": "relu"}, nn.ReLU())
        elif node.op == "call_method" and node.target == "relu":
            self.add({"op": "relu"}, nn.ReLU())
        elif node.op == "call_function" and node.target in _DROPOUT_FUNCS:
            return
        elif self.is_flatten(node):
            self.flatten()
        else:
            raise self.unsupported(node, module)

    def is_flatten(self, node: fx.Node) -> bool:
        args = list(node.args[1:]) + list(node.kwargs.values())
        if node.op == "call_function" and node.target in _FLATTEN_FUNCS or \
                node.op == "call_method" and node.target == "flatten":
            return args in ([1], [1, -1])
        if node.op == "call_method" and node.target in ("view", "reshape") and len(args) == 2:
            first = args[0]
            batch = isinstance(first, fx.Node) and first.target == "size" and first.args[1:] == (0,)
            return batch and args[1] == -1
        return False

    def add(self, op: dict[str, Any], module: nn.Module | None) -> None:
        if module is not None:
            with torch.no_grad():
                self.x = module.eval()(self.x)
        op["out_shape"] = list(self.x.shape[1:])
        self.ops.append(op)
        self.sources.append(module)

    def flatten(self) -> None:
        shape = tuple(self.x.shape[1:])
        self.last_flatten = shape if len(shape) == 3 else None
        self.add({"op": "flatten", "name": self.name("flatten"), "in_shape": list(shape)}, nn.Flatten())

    def visit_module(self, node: fx.Node, module: nn.Module, where: str) -> None:
        if isinstance(module, nn.Conv2d):
            self.conv(module, where)
        elif isinstance(module, nn.Linear):
            self.linear(module, where)
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            if not module.track_running_stats or not module.affine:
                raise PyflowError(f"layer {where!r}: BatchNorm needs affine=True and running statistics")
            self.add({"op": "bn", "channels": module.num_features, "dims": 2 if isinstance(module, nn.BatchNorm2d)
                      else 1, "eps": float(module.eps)}, module)
        elif isinstance(module, nn.ReLU):
            self.add({"op": "relu"}, nn.ReLU())
        elif isinstance(module, nn.Dropout):
            return
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise PyflowError(f"layer {where!r}: Flatten(start_dim={module.start_dim}) — only start_dim=1 "
                                  "is supported")
            self.flatten()
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            self.pool(module, where)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            self.adaptive(module, where)
        else:
            raise self.unsupported(node, module)

    def conv(self, module: nn.Conv2d, where: str) -> None:
        if module.groups != 1 or _pair(module.dilation, "dilation", where) != 1 or module.padding_mode != "zeros" \
                or isinstance(module.padding, str):
            raise PyflowError(f"layer {where!r}: Conv2d with groups/dilation/padding mode other than "
                              "1/1/'zeros' (and numeric padding) is not supported")
        kernel, padding = _pair(module.kernel_size, "kernel", where), _pair(module.padding, "padding", where)
        if padding >= kernel:
            raise PyflowError(f"layer {where!r}: padding {padding} >= kernel {kernel} is not supported")
        geom = Geometry(self.name("conv"), "conv", module.in_channels, module.out_channels, kernel,
                        _pair(module.stride, "stride", where), padding, tuple(self.x.shape[2:]),
                        bias=module.bias is not None)
        self.add(_geom_op(geom, where), module)

    def linear(self, module: nn.Linear, where: str) -> None:
        if self.x.dim() != 2:
            raise PyflowError(f"layer {where!r}: Linear on a {tuple(self.x.shape[1:])} feature map — "
                              "flatten it first (nn.Flatten or torch.flatten(x, 1))")
        flat = self.last_flatten if self.ops and self.ops[-1]["op"] == "flatten" else None
        geom = Geometry(self.name("fc"), "linear", module.in_features, module.out_features,
                        bias=module.bias is not None, flat_from=flat)
        self.add(_geom_op(geom, where), module)

    def pool(self, module: nn.MaxPool2d | nn.AvgPool2d, where: str) -> None:
        kind = "maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"
        kernel = _pair(module.kernel_size, "kernel", where)
        stride = _pair(module.stride or module.kernel_size, "stride", where)
        dilation = _pair(getattr(module, "dilation", 1), "dilation", where)
        if _pair(module.padding, "padding", where) != 0 or module.ceil_mode or dilation != 1:
            raise PyflowError(f"layer {where!r}: {type(module).__name__} with padding, ceil_mode or dilation "
                              "is not supported")
        self.add({"op": kind, "name": self.name("pool"), "kernel": kernel, "stride": stride,
                  "in_shape": list(self.x.shape[1:]), "source": where}, module)

    def adaptive(self, module: nn.AdaptiveAvgPool2d, where: str) -> None:
        _, h, w = self.x.shape[1:]
        size = module.output_size if isinstance(module.output_size, tuple) else (module.output_size,) * 2
        if h != w or tuple(size) != (1, 1):
            raise PyflowError(f"layer {where!r}: AdaptiveAvgPool2d{tuple(size)} on {h}x{w} — only a global "
                              "average over a square map is supported")
        self.add({"op": "avgpool", "name": self.name("pool"), "kernel": int(h), "stride": int(h),
                  "in_shape": list(self.x.shape[1:]), "source": where}, module)


def _geom_op(geom: Geometry, where: str) -> dict[str, Any]:
    return {"op": geom.kind, "name": geom.name, "c_in": geom.c_in, "c_out": geom.c_out, "kernel": geom.kernel,
            "stride": geom.stride, "padding": geom.padding, "bias": geom.bias, "in_shape": list(geom.in_shape),
            "flat_from": list(geom.flat_from) if geom.flat_from else None, "source": where}


def geometry(op: dict[str, Any]) -> Geometry:
    flat = op.get("flat_from")
    return Geometry(op["name"], op["op"], op["c_in"], op["c_out"], op["kernel"], op["stride"], op["padding"],
                    tuple(op["in_shape"][1:]), op["bias"], tuple(flat) if flat else None)


def trace_chain(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[list[dict], list[nn.Module | None]]:
    """The model's forward as op descriptors (validated: see :func:`validate_chain`) and their modules."""
    was_training = model.training
    ops, sources = _Tracer(model, tuple(input_shape)).run()
    model.train(was_training)
    validate_chain(ops)
    return ops, sources


def validate_chain(ops: list[dict[str, Any]]) -> None:
    """Each hidden matrix layer is followed by (BatchNorm then) ReLU; the last is a matrix layer."""
    matrices = [i for i, op in enumerate(ops) if op["op"] in ("conv", "linear")]
    if not matrices:
        raise PyflowError("the model has no Conv2d or Linear layer")
    for position, index in enumerate(matrices):
        name = ops[index]["name"]
        after = index + 1 + (index + 1 < len(ops) and ops[index + 1]["op"] == "bn")
        if position == len(matrices) - 1:
            if after != len(ops):
                raise PyflowError(f"layer {name!r} gives the logits, so it must be the last operation "
                                  f"(found {ops[after]['op']} after it)")
        elif after >= len(ops) or ops[after]["op"] != "relu":
            found = ops[after]["op"] if after < len(ops) else "nothing"
            raise PyflowError(f"layer {name!r} is a hidden layer, so it must be followed by ReLU (optionally "
                              f"after BatchNorm) — the hardware's lower clamp; found {found}")
    for index, op in enumerate(ops):
        if op["op"] == "bn" and (index == 0 or ops[index - 1]["op"] not in ("conv", "linear")):
            raise PyflowError("BatchNorm must directly follow a Conv2d or Linear layer (found one at position "
                              f"{index} of the chain)")


class ActQuant(nn.Module):
    """ReLU, then (when enabled) fake quantization to ``a_bits`` unsigned steps of ``scale``.

    Rounds half up (``floor(v + 0.5)``), exactly like the integer requantizer's ``+2^(s−1)`` then ``>> s``.
    """

    def __init__(self, a_bits: int) -> None:
        super().__init__()
        self.levels = (1 << a_bits) - 1
        self.register_buffer("scale", torch.zeros(()))
        self.enabled = False
        self.observed = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        if self.observed is not None:
            self.observed = max(self.observed, float(x.detach().max()))
        if not self.enabled or float(self.scale) <= 0:
            return x
        q = torch.clamp(torch.floor(x / self.scale + 0.5), 0, self.levels) * self.scale
        return x + (q - x).detach()


def avgpool_requant(kernel: int) -> tuple[int, int, int]:
    """``(m, b, shift)`` of an average pool that keeps its input's step: ``(sum·m + b) >> shift``."""
    area = kernel * kernel
    limit = (1 << 15) - 1
    shift = max(s for s in range(41) if round(2.0**s / area) <= limit)
    return round(2.0**shift / area), 1 << shift >> 1, shift


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


class ChainNet(nn.Module):
    """The compressible model: a chain of TernaryMatrix / BatchNorm / ActQuant / pool / flatten modules."""

    def __init__(self, ops: list[dict[str, Any]], folding: dict[str, tuple[int, int]], a_bits: int = 8,
                 alpha_mode: str = "gaussian") -> None:
        super().__init__()
        self.ops = copy.deepcopy(ops)
        self.a_bits = a_bits
        self.names: list[str] = []
        owner, previous = "", ""
        for op in self.ops:
            kind = op["op"]
            if kind in ("conv", "linear"):
                owner = op["name"]
                name, module = owner, TernaryMatrix(geometry(op), *folding[owner], alpha_mode)
            elif kind == "bn":
                name = f"{owner}_bn"
                module = (nn.BatchNorm2d if op["dims"] == 2 else nn.BatchNorm1d)(op["channels"], eps=op["eps"])
            elif kind == "relu" and previous in ("conv", "linear", "bn"):
                name, module = f"{owner}_act", ActQuant(a_bits)
            elif kind == "relu":  # activations are already >= 0 here: a no-op kept for fidelity
                name, module = self._unique(f"{owner or 'input'}_relu"), nn.ReLU()
            elif kind == "maxpool":
                name, module = op["name"], nn.MaxPool2d(op["kernel"], op["stride"])
            elif kind == "avgpool":
                name, module = op["name"], QAvgPool(op["kernel"], op["stride"])
            else:
                name, module = op["name"], nn.Flatten()
            self.add_module(name, module)
            self.names.append(name)
            previous = kind

    def _unique(self, name: str) -> str:
        base, index = name, 1
        while name in self.names:
            name, index = f"{base}{index}", index + 1
        return name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = getattr(self, name)(x)
        return x

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
            if isinstance(module, ActQuant | QAvgPool):
                module.enabled = enabled

    def load_from(self, sources: list[nn.Module | None]) -> None:
        """Copy the traced user modules' parameters (and BN statistics) into this chain."""
        with torch.no_grad():
            for name, op, source in zip(self.names, self.ops, sources, strict=True):
                target = getattr(self, name)
                if op["op"] in ("conv", "linear"):
                    target.weight.copy_(source.weight.reshape(target.weight.shape))
                    if source.bias is not None:
                        target.bias.copy_(source.bias)
                elif op["op"] == "bn":
                    target.load_state_dict(source.state_dict())


def calibrate(model: ChainNet, images: torch.Tensor, batch: int = 256) -> None:
    """Set every activation quantizer's scale to (max activation)/(2^a−1) over ``images`` (x/255 floats)."""
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
    scale = 1.0 / 255.0
    for name in model.names:  # an average pool keeps the step of the activations it reads
        module = getattr(model, name)
        if isinstance(module, ActQuant):
            scale = float(module.scale)
        elif isinstance(module, QAvgPool):
            module.scale.fill_(scale)
    model.train(was_training)
