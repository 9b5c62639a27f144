"""What one torch.fx node is, whichever way the user wrote it: one normalised :class:`Form` per operation.

``nn.ReLU(inplace=True)``, ``F.relu``, ``F.relu_``, ``torch.relu``, ``x.relu()`` and ``x.relu_()`` are all the
form ``relu``; ``a + b``, ``a += b``, ``torch.add(a, b)`` and ``a.add_(b)`` the form ``add``; ``2 * x - 1``
is two ``scale`` forms. :mod:`pyflow.compress.graph` gives the forms their meaning (and refuses what pyflow
cannot represent); this module only reads syntax. Also here: tracing the forward, running it once for the
shapes, and where a node came from in the user's source.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from pyflow.errors import PyflowError

_TORCH_DIR = str(Path(torch.__file__).parent)

# activations pyflow refuses, with the reason: its activations are unsigned integers clamped at 0
_PASSES_NEGATIVES = "it passes negative values, and pyflow's activations are unsigned integers (the " \
                    "requantizer clamps at 0: a ReLU)"
_CLAMPS = "it clamps to a fixed range, and pyflow's activations are unsigned integers clamped at 0 and at the " \
          "calibrated maximum (a ReLU)"
_CURVED = "it is not piecewise linear, and pyflow's only activation is the requantizer's clamp at 0 (a ReLU)"
REFUSED_ACTIVATIONS: dict[Any, str] = {
    nn.LeakyReLU: _PASSES_NEGATIVES, nn.PReLU: _PASSES_NEGATIVES, nn.ELU: _PASSES_NEGATIVES,
    nn.SELU: _PASSES_NEGATIVES, nn.CELU: _PASSES_NEGATIVES, nn.GELU: _PASSES_NEGATIVES, nn.SiLU: _PASSES_NEGATIVES,
    nn.Mish: _PASSES_NEGATIVES, nn.Hardswish: _PASSES_NEGATIVES, nn.Hardtanh: _CLAMPS, nn.ReLU6: _CLAMPS,
    nn.Sigmoid: _CURVED, nn.Tanh: _CURVED, nn.Softplus: _CURVED, nn.Hardsigmoid: _CLAMPS,
    F.leaky_relu: _PASSES_NEGATIVES, F.elu: _PASSES_NEGATIVES, F.gelu: _PASSES_NEGATIVES, F.silu: _PASSES_NEGATIVES,
    F.hardtanh: _CLAMPS, F.relu6: _CLAMPS, torch.sigmoid: _CURVED, torch.tanh: _CURVED, F.sigmoid: _CURVED,
    F.tanh: _CURVED,
}
_REFUSED_METHODS = {"sigmoid": _CURVED, "tanh": _CURVED}

_RELU = {torch.relu: False, F.relu: False, torch.relu_: True, F.relu_: True}
_DROPOUT_FUNCS = {F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout}
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity)
_SOFTMAX = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
_ADD = {operator.add: False, operator.iadd: True, torch.add: False}
_INPLACE = {operator.iadd, operator.imul, operator.isub, operator.itruediv}
_ARITHMETIC_METHODS = {"add": operator.add, "add_": operator.iadd, "mul": operator.mul, "mul_": operator.imul,
                       "sub": operator.sub, "sub_": operator.isub, "div": operator.truediv, "div_": operator.itruediv}
_SCALE = {operator.mul, operator.imul, operator.sub, operator.isub, operator.truediv, operator.itruediv,
          operator.neg, torch.mul, torch.sub}


@dataclass(frozen=True)
class Form:
    """One operation, normalised: its kind, the tensor operands in order, and its parameters."""

    kind: str  # conv linear bn relu identity flatten reshape squeeze unsqueeze maxpool avgpool gap pad softmax add
    # scale activation
    operands: tuple[fx.Node, ...]
    params: dict[str, Any] = field(default_factory=dict)
    inplace: bool = False  # it overwrites its first operand (relu_, inplace=True, add_, +=)


def _bind(node: fx.Node, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """The arguments after the input tensor, by name (positional first, then keywords, then defaults)."""
    bound = dict(defaults)
    bound.update(zip(names, node.args[1:], strict=False))
    bound.update({k: v for k, v in node.kwargs.items() if k in names})
    return bound


_POOL_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "count_include_pad": True,
                  "divisor_override": None}
_MAXPOOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVGPOOL_ARGS = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


def _pool_params(source: Any) -> dict[str, Any]:
    """kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override of a pooling module."""
    params = {key: getattr(source, key, default) for key, default in _POOL_DEFAULTS.items()}
    return {"kernel": source.kernel_size, **params, "stride": source.stride or source.kernel_size}


def _input(node: fx.Node) -> tuple[Any, ...]:
    """The input tensor, passed first or as ``input=``."""
    return tuple(node.args[:1]) if node.args else tuple(v for k, v in node.kwargs.items() if k == "input")


def _module_form(node: fx.Node, module: nn.Module) -> Form | None:
    operands = _input(node)
    inplace = bool(getattr(module, "inplace", False))
    if isinstance(module, nn.Conv2d):
        return Form("conv", operands)
    if isinstance(module, nn.Linear):
        return Form("linear", operands)
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        return Form("bn", operands)
    if type(module) is nn.ReLU:
        return Form("relu", operands, inplace=inplace)
    if isinstance(module, _DROPOUT_MODULES):
        return Form("identity", operands)
    if isinstance(module, nn.Flatten):
        return Form("flatten", operands, {"start": module.start_dim, "end": module.end_dim})
    if isinstance(module, nn.MaxPool2d):
        return Form("maxpool", operands, _pool_params(module))
    if isinstance(module, nn.AvgPool2d):
        return Form("avgpool", operands, _pool_params(module))
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return Form("gap", operands, {"size": module.output_size})
    if isinstance(module, nn.ZeroPad2d | nn.ConstantPad2d):
        return Form("pad", operands, {"pad": tuple(module.padding), "value": getattr(module, "value", 0.0),
                                      "mode": "constant"})
    if isinstance(module, nn.Softmax | nn.LogSoftmax):
        return Form("softmax", operands, {"dim": module.dim})
    reason = next((why for kind, why in REFUSED_ACTIVATIONS.items()
                   if isinstance(kind, type) and isinstance(module, kind)), None)
    return Form("activation", operands, {"reason": reason}) if reason else None


def _binary(node: fx.Node, target: Any) -> Form | None:
    """``a + b`` (two tensors) is an add; a tensor and a number is a scale ``x·gain + shift``."""
    args = list(node.args)
    tensors = [a for a in args if isinstance(a, fx.Node)]
    numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
    alpha = node.kwargs.get("alpha", 1)
    if target in _ADD and len(tensors) == 2 and len(args) == 2 and alpha == 1:
        return Form("add", tuple(tensors), inplace=_ADD[target])
    if target is operator.neg and len(tensors) == 1:
        return Form("scale", tuple(tensors), {"gain": -1.0, "shift": 0.0})
    if len(tensors) != 1 or len(numbers) != 1 or len(args) != 2 or alpha != 1:
        return None
    k, first = float(numbers[0]), args[0] is tensors[0]
    if target in _ADD:
        gain, shift = 1.0, k
    elif target in (operator.mul, operator.imul, torch.mul):
        gain, shift = k, 0.0
    elif target in (operator.sub, operator.isub, torch.sub):
        gain, shift = (1.0, -k) if first else (-1.0, k)
    elif first and k != 0:  # x / k
        gain, shift = 1.0 / k, 0.0
    else:
        return None
    return Form("scale", tuple(tensors), {"gain": gain, "shift": shift}, inplace=target in _INPLACE)


def _function_form(node: fx.Node) -> Form | None:
    target, operands = node.target, _input(node)
    if target in _RELU:
        return Form("relu", operands, inplace=_RELU[target] or bool(node.kwargs.get("inplace", False)))
    if target in _DROPOUT_FUNCS:
        return Form("identity", operands)
    if target is torch.flatten:
        bound = _bind(node, ("start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1})
        return Form("flatten", operands, {"start": bound["start_dim"], "end": bound["end_dim"]})
    if target in (torch.squeeze, torch.unsqueeze):
        return Form(target.__name__, operands, {"dim": _bind(node, ("dim",), {"dim": None})["dim"]})
    if target is torch.reshape:
        shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("shape", ())
        return Form("reshape", operands, {"shape": tuple(shape) if isinstance(shape, tuple | list) else (shape,)})
    if target is F.max_pool2d:
        bound = _bind(node, _MAXPOOL_ARGS, {**_POOL_DEFAULTS, "return_indices": False})
        if bound.get("return_indices"):
            return None
        return Form("maxpool", operands, {"kernel": bound["kernel_size"], **_pool_args(bound)})
    if target is F.avg_pool2d:
        bound = _bind(node, _AVGPOOL_ARGS, _POOL_DEFAULTS)
        return Form("avgpool", operands, {"kernel": bound["kernel_size"], **_pool_args(bound)})
    if target is F.adaptive_avg_pool2d:
        return Form("gap", operands, {"size": _bind(node, ("output_size",), {"output_size": None})["output_size"]})
    if target is F.pad:
        bound = _bind(node, ("pad", "mode", "value"), {"mode": "constant", "value": None})
        value = bound["value"] or 0.0
        return Form("pad", operands, {"pad": tuple(bound["pad"]), "value": value, "mode": bound["mode"]})
    if target in _SOFTMAX:
        return Form("softmax", operands, {"dim": _bind(node, ("dim",), {"dim": None})["dim"]})
    if target in _ADD or target in _SCALE:
        return _binary(node, target)
    if target in REFUSED_ACTIVATIONS:
        return Form("activation", operands, {"reason": REFUSED_ACTIVATIONS[target]})
    return None


def _pool_args(bound: dict[str, Any]) -> dict[str, Any]:
    params = {key: bound.get(key, default) for key, default in _POOL_DEFAULTS.items()}
    return {**params, "stride": bound.get("stride") or bound["kernel_size"]}


def _method_form(node: fx.Node) -> Form | None:
    name, operands = node.target, _input(node)
    if name in ("relu", "relu_"):
        return Form("relu", operands, inplace=name == "relu_")
    if name == "flatten":
        bound = _bind(node, ("start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1})
        return Form("flatten", operands, {"start": bound["start_dim"], "end": bound["end_dim"]})
    if name in ("view", "reshape"):
        shape = node.args[1:]
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return Form("reshape", operands, {"shape": tuple(shape)})
    if name in ("squeeze", "unsqueeze"):
        return Form(name, operands, {"dim": _bind(node, ("dim",), {"dim": None})["dim"]})
    if name == "contiguous":
        return Form("identity", operands)
    if name in ("softmax", "log_softmax"):
        return Form("softmax", operands, {"dim": _bind(node, ("dim",), {"dim": None})["dim"]})
    if name in _ARITHMETIC_METHODS:
        return _binary(node, _ARITHMETIC_METHODS[name])
    if name in _REFUSED_METHODS:
        return Form("activation", operands, {"reason": _REFUSED_METHODS[name]})
    return None


def classify(node: fx.Node, module: nn.Module | None) -> Form | None:
    """The node's form, or None for an operation pyflow does not know."""
    if node.op == "call_module":
        return _module_form(node, module)
    if node.op == "call_function":
        return _function_form(node)
    if node.op == "call_method":
        return _method_form(node)
    return None


def _whole_size(node: Any) -> bool:
    """``x.size()`` or ``x.shape``."""
    return isinstance(node, fx.Node) and (
        node.op == "call_method" and node.target == "size" and len(node.args) == 1 and not node.kwargs
        or node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",))


def is_size(result: Any) -> bool:
    """Whether a node's recorded result is a size (``x.size(0)``, ``x.shape``, arithmetic on them), not a tensor."""
    if isinstance(result, tuple | list):
        return all(isinstance(item, int) for item in result)
    return isinstance(result, int)


def is_batch_size(node: Any) -> bool:
    """``x.size(0)``, ``x.size()[0]`` or ``x.shape[0]``."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size":
        return node.args[1:] == (0,) or node.kwargs.get("dim") == 0
    return node.op == "call_function" and node.target is operator.getitem and node.args[1] == 0 and \
        _whole_size(node.args[0])


def where(node: fx.Node) -> str:
    """The module a node belongs to (its dotted name), or ``forward`` for the top-level forward."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack), "") if stack else "forward"


def source_line(node: fx.Node) -> str:
    """``file.py:line`` of the innermost user frame that created the node ('' when every frame is torch's,
    as in an nn.Sequential)."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', node.meta.get("stack_trace") or "")
    user = [f"{path}:{line}" for path, line in frames if not path.startswith(_TORCH_DIR)]
    return user[-1] if user else ""


def describe(node: fx.Node, module: nn.Module | None) -> str:
    """The operation's name as the user wrote it: the module's class, the function's or the method's name."""
    if module is not None:
        return type(module).__name__
    if node.op == "call_method":
        return str(node.target)
    name = getattr(node.target, "__name__", str(node.target))
    return re.sub(r"_\d+$", "", node.name) if name == "fn" else name  # F.max_pool2d is a dispatch wrapper


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """The model's forward as an fx graph, each node knowing its source line (one-line error if it cannot be traced)."""
    tracer = fx.Tracer()
    tracer.record_stack_traces = True  # node.meta["stack_trace"]: the user's file:line in every refusal
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # the user's forward: any tracing failure is reported in one line
        raise PyflowError(f"cannot trace the model's forward with torch.fx: {type(exc).__name__}: {first_line(exc)} "
                          "(torch.fx reads the forward symbolically: no Python control flow on tensor values, no "
                          "modules created inside forward)") from None
    return fx.GraphModule(tracer.root, graph)


class Recorder(fx.Interpreter):
    """Runs the traced forward once and keeps every node's result (for the shapes)."""

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.results: dict[fx.Node, Any] = {}

    def run_node(self, node: fx.Node) -> Any:
        result = super().run_node(node)
        self.results[node] = result
        return result
