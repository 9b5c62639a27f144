"""A user's network → the ops of :mod:`pyflow.compress.graph` (torch.fx), or a one-line refusal.

The forward is traced with torch.fx and run once on a zero input (``[1, C, H, W]``, or ``[1, F]`` for a
vector dataset) for the shapes; each fx node then becomes an op, a rewrite of a later op, or a refusal.

Accepted, whichever way it is written (:mod:`pyflow.compress.forms`): Conv2d (groups 1, dilation 1, square,
zero padding), Linear, BatchNorm1d/2d, ReLU, max/average pooling without padding, global average pooling
(``AdaptiveAvgPool2d(1)``), flatten (``nn.Flatten``, ``torch.flatten(x, 1)``, ``x.flatten(1)``,
``x.view(x.size(0), -1)``, ``x.view(x.shape[0], -1)``, ``x.view(-1, N)``, ``reshape`` alike), Dropout and
Identity (dropped), ``a + b`` / ``torch.add`` / ``+=`` of two activations followed by ReLU. ``squeeze`` /
``unsqueeze`` (``x.squeeze(…)``, ``torch.squeeze``, alike) that add or remove size-1 dimensions but not the batch
are no-ops, or a flatten when they turn a ``[B, C, 1, 1]`` map into ``[B, C]``; between an unsqueeze and the
squeeze undoing it only a Linear on the last dimension, Dropout and other squeezes may run. A squeeze names its
dims (``x.squeeze()`` would drop a batch of 1 too). Rewritten exactly:

* max pooling and flatten between a layer and its ReLU move after the ReLU (they commute with it);
* a BatchNorm after a ReLU, a constant scaling ``x·k + b`` (``2*x - 1``) of the input or of a ReLU output,
  and zero padding (``ZeroPad2d``, ``ConstantPad2d(p, 0)``, ``F.pad``, symmetric) fold into the Conv2d or
  Linear reading them (a constant shift cannot fold into a padded Conv2d: refused);
* two Linears with nothing between them (Dropout aside), the first read by nothing else, fold in float into one
  Linear, ``W = W2·W1``, ``b = W2·b1 + b2`` (on the trained weights, before compression; see
  :func:`~pyflow.compress.folds.fold_linear_pair`);
* Softmax / log-softmax on the logits is dropped: it does not change the argmax, the prediction;
* a ReLU right after the logits layer (then maybe flattens) ends the forward as the IR output layer's ``relu``:
  the logits clamped at 0, in every backend (``logit_relu``).

Everything else is refused with one line naming the operation, the module, the source ``file:line`` (the
innermost frame of the user's code; none for an ``nn.Sequential``) and what to write instead.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from pyflow.compress.folds import Value, bn_affine, composed, fold_affine, fold_linear_pair
from pyflow.compress.forms import (
    Form,
    Recorder,
    classify,
    describe,
    first_line,
    is_batch_size,
    is_size,
    source_line,
    symbolic_trace,
    where,
)
from pyflow.compress.graph import INPUT_OP, MATRIX, geom_op, op_inputs, validate_graph
from pyflow.compress.ternary import Geometry
from pyflow.errors import PyflowError

_PASS_THROUGH = ("identity", "squeeze", "unsqueeze")  # a Linear's output read through these still folds
_ON_VIEWS = (*_PASS_THROUGH, "linear", "flatten", "reshape")  # what may read an unsqueezed tensor
SUPPORTED = ("Conv2d, Linear, BatchNorm, ReLU, max/average pooling, global average pooling, flatten, Dropout, "
             "residual adds followed by ReLU")


def _square(value: Any, what: str, at: str) -> int:
    if isinstance(value, tuple | list):
        if len(set(value)) != 1:
            raise PyflowError(f"layer {at}: non-square {what} {tuple(value)} is not supported; use a square one")
        value = value[0]
    return int(value)


class _Importer:
    """Walks the fx graph once, in its (topological) order, building ops, their source modules and lines."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int], vector: bool) -> None:
        self.graph_module = symbolic_trace(model)
        self.modules = dict(self.graph_module.named_modules())
        used = [n for n in self.graph_module.graph.nodes if n.op == "placeholder" and n.users]
        if len(used) > 1:
            names = ", ".join(repr(n.name) for n in used)
            raise PyflowError(f"the model's forward takes more than one input ({names}; "
                              f"the second is read in layer {self.at(next(iter(used[1].users)))}); pyflow accelerates "
                              "a network of one input: combine them in the dataset and give the forward one tensor")
        example = torch.zeros(1, input_shape[0]) if vector else torch.zeros(1, *input_shape)
        recorder = Recorder(self.graph_module.eval())
        try:
            with torch.no_grad():
                recorder.run(example)
        except Exception as exc:  # the user's forward: reported in one line
            raise PyflowError(f"the model's forward failed on a {tuple(example.shape)} input: "
                              f"{type(exc).__name__}: {first_line(exc)}") from None
        self.tensors = recorder.results
        self.ops: list[dict[str, Any]] = []
        self.sources: list[nn.Module | None] = []
        self.lines: list[str] = []  # where each op was written, for the refusals of validate()
        self.nodes: list[fx.Node] = []  # the fx node whose result each op is
        self.env: dict[fx.Node, Value] = {}
        self.counts: dict[str, int] = {}
        self.activation_of: dict[tuple[str, int], int] = {}  # ("relu" | "quant", op) → its activation op

    # ---- bookkeeping -------------------------------------------------------------------------------------------

    def name(self, kind: str) -> str:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        return f"{kind}{index}"

    def at(self, node: fx.Node) -> str:
        """``'layer' at file:line`` for messages."""
        line = source_line(node)
        return f"{where(node)!r}" + (f" at {line}" if line else "")

    def emit(self, op: dict[str, Any], inputs: list[int], source: nn.Module | None, node: fx.Node,
             shape: tuple[int, ...]) -> int:
        if inputs != [len(self.ops) - 1]:
            op["inputs"] = list(inputs)
        op["out_shape"] = list(shape)
        self.ops.append(op)
        self.sources.append(source)
        self.lines.append(self.at(node))
        self.nodes.append(node)
        return len(self.ops) - 1

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        return tuple(int(v) for v in self.tensors[node].shape[1:])

    def refuse(self, node: fx.Node, why: str, module: nn.Module | None = None) -> PyflowError:
        return PyflowError(f"unsupported operation {describe(node, module)!r} in layer {self.at(node)}: {why}")

    def value_of(self, node: fx.Node, user: fx.Node) -> Value:
        if node in self.env:
            return self.env[node]
        if node.op == "get_attr":
            raise self.refuse(user, f"it reads the tensor {node.target!r} directly; pyflow imports parameters only "
                                    "through modules (nn.Conv2d, nn.Linear, nn.BatchNorm2d): move it into one")
        raise self.refuse(user, f"it reads {node.name!r}, which is not a tensor pyflow imports")

    # ---- the walk ----------------------------------------------------------------------------------------------

    def run(self) -> tuple[list[dict[str, Any]], list[nn.Module | None]]:
        placeholders = [n for n in self.graph_module.graph.nodes if n.op == "placeholder"]
        placeholder = next((n for n in placeholders if n.users), placeholders[0] if placeholders else None)
        if placeholder is None:
            raise PyflowError("the model's forward takes no input")
        self.env[placeholder] = Value(INPUT_OP, "act", self.shape(placeholder))
        for node in self.graph_module.graph.nodes:
            if node.op == "output":
                return self.finish(node)
            if node.op not in ("placeholder", "get_attr") and not is_size(self.tensors.get(node)):
                self.visit(node)
        raise PyflowError("the model's forward returns nothing")

    def visit(self, node: fx.Node) -> None:
        module = self.modules.get(node.target) if node.op == "call_module" else None
        form = classify(node, module)
        if form is None or not form.operands or not all(isinstance(o, fx.Node) for o in form.operands):
            raise self.refuse(node, f"pyflow imports {SUPPORTED}", module)
        values = [self.value_of(operand, node) for operand in form.operands]
        extra = [n for n in node.all_input_nodes if n not in form.operands and not is_size(self.tensors.get(n))]
        if extra:
            self.value_of(extra[0], node)  # a tensor argument pyflow cannot fold: refused there
            raise self.refuse(node, f"it takes a second tensor ({extra[0].name!r}); pyflow imports {SUPPORTED}",
                              module)
        viewed = next((v for v in values if v.view is not None), None)
        if viewed is not None and form.kind not in _ON_VIEWS:
            raise self.refuse(node, f"it reads a tensor unsqueezed to {list(viewed.view)} (without the batch); "
                                    "squeeze it back to the shape before the unsqueeze first", module)
        if form.kind in ("flatten", "reshape"):  # from the user's shape: the unsqueeze is undone
            values = [replace(v, view=None) for v in values]
        value = getattr(self, f"on_{form.kind}")(node, form, module, *values)
        self.env[node] = value
        if form.inplace:  # relu_ / inplace=True / += overwrite their input: later readers see the result
            self.env[form.operands[0]] = value

    # ---- matrix layers, BatchNorm, activations ---------------------------------------------------------------

    def on_conv(self, node: fx.Node, form: Form, module: nn.Conv2d, x: Value) -> Value:
        at = self.at(node)
        self.need_activation(node, x, module)
        if module.groups != 1 or _square(module.dilation, "dilation", at) != 1 or module.padding_mode != "zeros" \
                or isinstance(module.padding, str):
            raise self.refuse(node, "pyflow's conv has groups=1, dilation=1, zero padding given as a number; "
                                    "write nn.Conv2d(c_in, c_out, k, stride, padding)", module)
        kernel, padding = _square(module.kernel_size, "kernel", at), _square(module.padding, "padding", at) + x.pad
        if padding >= kernel:
            raise self.refuse(node, f"padding {padding}{' (with the padding before it)' if x.pad else ''} >= kernel "
                                    f"{kernel}; pyflow's conv pads less than its kernel: pad at most {kernel - 1}",
                              module)
        source = self.fold(node, module, x, padding)
        geom = Geometry(self.name("conv"), "conv", module.in_channels, module.out_channels, kernel,
                        _square(module.stride, "stride", at), padding, x.shape[1:], bias=source.bias is not None)
        return Value(self.emit(geom_op(geom, where(node)), [x.op], source, node, self.shape(node)), "raw",
                     self.shape(node))

    def on_linear(self, node: fx.Node, form: Form, module: nn.Linear, x: Value) -> Value:
        view = self.linear_view(node, module, x)
        if self.folds_into_linear(node, x):
            return replace(self.fold_linears(node, module, x), view=view)
        self.need_activation(node, x, module)
        if len(x.shape) != 1 or x.pad:
            raise self.refuse(node, f"a Linear on a {x.shape} feature map; flatten it first (nn.Flatten or "
                                    "torch.flatten(x, 1))", module)
        producer = self.ops[x.op] if x.op != INPUT_OP else {}
        flat = tuple(producer["in_shape"]) if producer.get("op") == "flatten" else None
        source = self.fold(node, module, x, 0)
        geom = Geometry(self.name("fc"), "linear", module.in_features, module.out_features,
                        bias=source.bias is not None, flat_from=flat)
        shape = (module.out_features,)
        return Value(self.emit(geom_op(geom, where(node)), [x.op], source, node, shape), "raw", shape, view=view)

    def linear_view(self, node: fx.Node, module: nn.Linear, x: Value) -> tuple[int, ...] | None:
        """The user's output shape of a Linear reading an unsqueezed vector ``[B, 1, …, F]`` (None otherwise)."""
        if x.view is None:
            return None
        if len(x.shape) != 1 or x.view[-1] != x.shape[0] or any(size != 1 for size in x.view[:-1]):
            raise self.refuse(node, f"a Linear on a tensor unsqueezed to {list(x.view)} (without the batch); pyflow's "
                                    "Linear reads [B, F]: squeeze it back first", module)
        return self.shape(node)

    def folds_into_linear(self, node: fx.Node, x: Value) -> bool:
        """Whether ``x`` is a Linear's output read only by this Linear (Dropout, squeezes aside): they fold."""
        if x.kind != "raw" or x.deferred or x.op == INPUT_OP or self.ops[x.op]["op"] != "linear":
            return False
        return self.readers(self.nodes[x.op]) == {node}

    def readers(self, node: fx.Node) -> set[fx.Node]:
        """The nodes reading ``node``'s tensor, looking through Dropout, Identity and squeezes (not sizes)."""
        found: set[fx.Node] = set()
        for user in node.users:
            if is_size(self.tensors.get(user)):
                continue
            form = classify(user, self.modules.get(user.target) if user.op == "call_module" else None)
            found |= self.readers(user) if form is not None and form.kind in _PASS_THROUGH else {user}
        return found

    def fold_linears(self, node: fx.Node, module: nn.Linear, x: Value) -> Value:
        """The Linear producing ``x`` and this one as one Linear, in place of the first (keeping its name)."""
        folded = fold_linear_pair(self.sources[x.op], module)
        op = self.ops[x.op]
        op.update(c_out=module.out_features, bias=folded.bias is not None, out_shape=[module.out_features],
                  source=f"{op['source']}+{where(node)}")
        self.sources[x.op], self.nodes[x.op] = folded, node
        return Value(x.op, "raw", (module.out_features,))

    def need_activation(self, node: fx.Node, x: Value, module: nn.Module | None) -> None:
        """A matrix layer reads an unsigned activation (or the input), never another layer's raw output."""
        if x.kind == "raw":
            owner = self.ops[x.op]
            name = owner["name"] if owner["op"] in MATRIX else self.ops[op_inputs(self.ops, x.op)[0]]["name"]
            raise PyflowError(f"layer {name!r} is a hidden layer, so it must be followed by ReLU (optionally after "
                              f"BatchNorm) — the hardware's lower clamp; found {describe(node, module)} in layer "
                              f"{self.at(node)}: pyflow's hidden layers end in ReLU: put a ReLU between {name} and it")
        if x.kind != "act":
            raise self.refuse(node, self.after_what(x), module)

    def after_what(self, x: Value) -> str:
        if x.kind == "sum":
            return f"it reads {self.ops[x.op]['name']} before a ReLU; pyflow's adds are followed by ReLU " \
                   "(write torch.relu(a + b), as in a ResNet block)"
        return "it reads the softmax of the logits; softmax may only end the forward (it is dropped: argmax " \
               "is unchanged)"

    def fold(self, node: fx.Node, module: nn.Conv2d | nn.Linear, x: Value, padding: int) -> nn.Module:
        """The module with the pending per-channel ``gain·x + shift`` of its input folded into its weights."""
        if x.gain is None:
            return module
        if padding and np.any(x.shift != 0):
            fix = "move the BatchNorm before the ReLU (conv → BatchNorm → ReLU)" if "BatchNorm" in x.pending else \
                "scale the data in the dataset instead"
            raise self.refuse(node, f"{x.pending} adds a constant to its input, and this Conv2d pads with zeros "
                                    f"(padding {padding}): the constant cannot fold at the border; use padding=0 here, "
                                    f"or {fix}", module)
        return fold_affine(module, x.gain, x.shift)

    def on_bn(self, node: fx.Node, form: Form, module: nn.Module, x: Value) -> Value:
        if not module.track_running_stats or not module.affine or module.running_var is None:
            raise self.refuse(node, "BatchNorm needs affine=True and running statistics (track_running_stats=True)",
                              module)
        if x.kind == "raw" and not x.deferred and self.ops[x.op]["op"] in MATRIX:
            dims = 2 if isinstance(module, nn.BatchNorm2d) else 1
            op = {"op": "bn", "channels": module.num_features, "dims": dims, "eps": float(module.eps)}
            return Value(self.emit(op, [x.op], module, node, x.shape), "raw", x.shape)
        if x.kind == "act":  # after a ReLU (or on the input): folded into the Conv2d or Linear reading it
            gain, shift = bn_affine(module)
            return composed(x, gain, shift, f"the {type(module).__name__} in layer {self.at(node)}")
        why = "BatchNorm follows a Conv2d or Linear (before its ReLU), or a ReLU (folded into the next layer)" \
            if x.kind == "raw" else self.after_what(x)
        raise self.refuse(node, why, module)

    def on_scale(self, node: fx.Node, form: Form, module: None, x: Value) -> Value:
        if x.kind != "act":
            raise self.refuse(node, "pyflow folds a constant scaling x * k + b only on the network input or on a "
                                    "ReLU output read by a Conv2d or Linear")
        return composed(x, form.params["gain"], form.params["shift"], f"the constant scaling in layer "
                                                                          f"{self.at(node)}")

    def on_relu(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        if x.kind == "act":
            self.no_pending(node, x, module)
            return x  # already >= 0
        if x.kind not in ("raw", "sum"):
            raise self.refuse(node, self.after_what(x), module)
        key = ("relu", x.op)
        if key in self.activation_of and not x.deferred:
            return Value(self.activation_of[key], "act", x.shape)
        index = self.emit({"op": "relu"}, [x.op], None, node, x.shape)
        self.activation_of[key] = index
        value = Value(index, "act", x.shape)
        for deferred_node, deferred in x.deferred:  # they commute with ReLU: they run after it
            value = self.on_maxpool(deferred_node, deferred, None, value) if deferred.kind == "maxpool" else \
                self.flatten(deferred_node, value)
        return value

    def no_pending(self, node: fx.Node, x: Value, module: nn.Module | None) -> None:
        if x.gain is not None or x.pad:
            raise self.refuse(node, f"it reads {x.pending}, which pyflow folds only into the Conv2d or Linear reading "
                                    "it directly; move the BatchNorm before the ReLU (conv → BatchNorm → ReLU), or "
                                    "the scaling/padding right before a Conv2d", module)

    def on_identity(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        return x  # Dropout is the identity at inference

    def on_squeeze(self, node: fx.Node, form: Form, module: None, x: Value) -> Value:
        dims = form.params["dim"]
        rank = self.tensors[form.operands[0]].dim()
        if dims is None:
            raise self.refuse(node, "a squeeze without dims also drops the batch when it is 1; name the dims: "
                                    "x.squeeze(-1).squeeze(-1) or torch.flatten(x, 1) for [B, C, 1, 1] -> [B, C]")
        if dims is not None and 0 in {d % rank for d in (dims if isinstance(dims, tuple | list) else (dims,))}:
            raise self.refuse(node, "a squeeze of the batch dimension (dim 0); pyflow keeps the batch: squeeze "
                                    "dimensions from 1 on")
        return self.resized(node, form, x)

    def on_unsqueeze(self, node: fx.Node, form: Form, module: None, x: Value) -> Value:
        return self.resized(node, form, x)

    def resized(self, node: fx.Node, form: Form, x: Value) -> Value:
        """``x`` after a squeeze or unsqueeze: unchanged, flattened, or waiting (``view``) for its undoing."""
        before, after = tuple(self.tensors[form.operands[0]].shape), tuple(self.tensors[node].shape)
        if not after or after[0] != before[0] or [s for s in before if s != 1] != [s for s in after if s != 1]:
            raise self.refuse(node, f"a {form.kind} of {list(before[1:])} to {list(after[1:])} that does not keep the "
                                    "batch or not only adds or removes size-1 dimensions; pyflow squeezes only to undo "
                                    "an unsqueeze or to flatten [B, C, 1, 1] to [B, C]")
        shape = after[1:]
        if shape == x.shape:
            return replace(x, view=None)
        if len(shape) == 1 and len(x.shape) == 3:  # [B, C, 1, 1] -> [B, C]
            return self.flatten(node, replace(x, view=None))
        return replace(x, view=shape)

    def on_activation(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        raise self.refuse(node, f"{form.params['reason']}; use ReLU (nn.ReLU() or F.relu) instead and retrain", module)

    def on_softmax(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        if x.kind != "raw" or x.deferred or form.params["dim"] not in (None, 1, -1):
            raise self.refuse(node, "pyflow drops a softmax over the classes (dim=1) of the logits only, at the end "
                                    "of the forward (it does not change the argmax)", module)
        return replace(x, kind="logits")

    # ---- data movement: flatten, pooling, padding ---------------------------------------------------------

    def on_flatten(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        if (form.params["start"], form.params["end"]) != (1, -1):
            raise self.refuse(node, f"flatten(start_dim={form.params['start']}, end_dim={form.params['end']}); "
                                    "pyflow flattens from dim 1 to the end: write torch.flatten(x, 1)", module)
        return self.flatten(node, x, form)

    def on_reshape(self, node: fx.Node, form: Form, module: None, x: Value) -> Value:
        before, after = self.shape(form.operands[0]), self.shape(node)
        shape = form.params["shape"]
        sizes = [self.tensors.get(v) if isinstance(v, fx.Node) else v for v in shape]  # x.shape[1] * … as numbers
        keeps_batch = len(shape) == 2 and (is_batch_size(shape[0]) or sizes == [-1, math.prod(before)])
        if after == before and keeps_batch:
            return x
        if len(shape) != 2 or len(after) != 1 or after[0] != math.prod(before) or not keeps_batch:
            raise self.refuse(node, f"a reshape of {before} to {after}; pyflow reshapes only to flatten, keeping the "
                                    "batch: write x.view(x.size(0), -1) or torch.flatten(x, 1)")
        return self.flatten(node, x, form)

    def flatten(self, node: fx.Node, x: Value, form: Form | None = None) -> Value:
        if len(x.shape) == 1:
            return x  # a vector stays a vector
        if x.kind == "raw":
            return replace(x, deferred=x.deferred + ((node, form or Form("flatten", ())),))
        if x.kind != "act" or x.pad:
            raise self.refuse(node, self.after_what(x) if x.kind != "act" else "padding before a flatten: pad right "
                                                                               "before a Conv2d")
        op = {"op": "flatten", "name": self.name("flatten"), "in_shape": list(x.shape)}
        shape = (math.prod(x.shape),)
        index = self.emit(op, [x.op], None, node, shape)
        area = math.prod(x.shape[1:])  # torch's (c, y, x) order: each channel's gain repeats over its pixels
        gain = None if x.gain is None else np.repeat(x.gain, area)
        shift = None if x.shift is None else np.repeat(x.shift, area)
        return Value(index, "act", shape, gain=gain, shift=shift, pending=x.pending)

    def pool_geometry(self, node: fx.Node, form: Form, module: nn.Module | None) -> tuple[int, int]:
        at, params = self.at(node), form.params
        kernel, stride = _square(params["kernel"], "kernel", at), _square(params["stride"], "stride", at)
        if _square(params["padding"], "padding", at) != 0:
            why = "average pooling over zero padding (count_include_pad) is not representable; use padding=0 and " \
                  "pad in the Conv2d before it" if form.kind == "avgpool" else "use padding=0 (pad in the Conv2d " \
                                                                                "before it)"
            raise self.refuse(node, f"pooling with padding {params['padding']}: {why}", module)
        if params["ceil_mode"] or _square(params["dilation"], "dilation", at) != 1 or params["divisor_override"]:
            raise self.refuse(node, "pooling with ceil_mode, dilation or divisor_override; use the defaults", module)
        return kernel, stride

    def on_maxpool(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        kernel, stride = self.pool_geometry(node, form, module)
        if x.kind == "raw" and not any(f.kind == "flatten" for _, f in x.deferred):
            return replace(x, deferred=x.deferred + ((node, form),))  # max pooling commutes with ReLU
        return self.pool(node, "maxpool", kernel, stride, x, module)

    def on_avgpool(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        kernel, stride = self.pool_geometry(node, form, module)
        if x.kind == "raw":
            raise self.refuse(node, "average pooling before the ReLU (averaging does not commute with ReLU, unlike max "
                                    "pooling); put the ReLU first", module)
        return self.pool(node, "avgpool", kernel, stride, x, module)

    def on_gap(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        size = form.params["size"]
        size = tuple(size) if isinstance(size, tuple | list) else (size, size)
        if size != (1, 1) or len(x.shape) != 3 or x.shape[1] != x.shape[2]:
            raise self.refuse(node, f"adaptive average pooling to {size} on {x.shape}; pyflow averages a square map "
                                    "to 1x1 (global average pooling): write F.adaptive_avg_pool2d(x, 1)", module)
        if x.kind == "raw":
            raise self.refuse(node, "average pooling before the ReLU; put the ReLU first", module)
        return self.pool(node, "avgpool", x.shape[1], x.shape[1], x, module)

    def pool(self, node: fx.Node, kind: str, kernel: int, stride: int, x: Value, module: nn.Module | None) -> Value:
        if x.kind != "act":
            raise self.refuse(node, self.after_what(x), module)
        self.no_pending(node, x, module)
        c, h, w = x.shape
        shape = (c, (h - kernel) // stride + 1, (w - kernel) // stride + 1)
        op = {"op": kind, "name": self.name("pool"), "kernel": kernel, "stride": stride, "in_shape": list(x.shape),
              "source": where(node)}
        return Value(self.emit(op, [x.op], None, node, shape), "act", shape)

    def on_pad(self, node: fx.Node, form: Form, module: nn.Module | None, x: Value) -> Value:
        pad, value = form.params["pad"], form.params["value"]
        if len(pad) != 4 or len(set(pad)) != 1 or form.params["mode"] != "constant" or value != 0:
            raise self.refuse(node, f"padding {pad} with {form.params['mode']} value {value}; pyflow folds only "
                                    "symmetric zero padding into the next Conv2d: use the Conv2d's padding", module)
        if x.kind != "act":
            raise self.refuse(node, "padding before the ReLU; pad right before a Conv2d", module)
        return replace(x, pad=x.pad + int(pad[0]), pending=x.pending or f"the padding in layer {self.at(node)}")

    # ---- residual adds, the end -----------------------------------------------------------------------------

    def on_add(self, node: fx.Node, form: Form, module: None, a: Value, b: Value) -> Value:
        shapes = [self.shape(operand) for operand in form.operands]
        if shapes[0] != shapes[1]:
            raise self.refuse(node, f"an add of {shapes[0]} and {shapes[1]} (broadcasting); pyflow adds two "
                                    "activations of the same shape")
        inputs = [self.add_operand(node, v) for v in (a, b)]
        op = {"op": "add", "name": self.name("add"), "in_shape": list(a.shape), "source": where(node)}
        return Value(self.emit(op, inputs, None, node, a.shape), "sum", a.shape)

    def add_operand(self, node: fx.Node, x: Value) -> int:
        """The op an add reads for ``x``: an activation, or a matrix layer's signed quantizer (a branch's end)."""
        if x.kind == "act":
            self.no_pending(node, x, None)
            return x.op
        if x.kind != "raw" or x.deferred:
            raise self.refuse(node, self.after_what(x) if x.kind != "raw" else
                              "an add of a pooled or flattened layer output without ReLU; add the feature maps first")
        key = ("quant", x.op)
        if key not in self.activation_of:
            self.activation_of[key] = self.emit({"op": "quant"}, [x.op], None, node, x.shape)
        return self.activation_of[key]

    def finish(self, node: fx.Node) -> tuple[list[dict[str, Any]], list[nn.Module | None]]:
        result = node.args[0]
        if not isinstance(result, fx.Node):
            line = source_line(next(iter(node.all_input_nodes), node))
            raise PyflowError(f"the model's forward returns a {type(result).__name__}{f' ({line})' if line else ''}; "
                              "pyflow exports one logits tensor: return only the logits")
        x = self.value_of(result, node)
        if not any(op["op"] in MATRIX for op in self.ops):
            raise PyflowError("the model has no Conv2d or Linear layer: nothing for pyflow to compress")
        clamp = self.logits_relu(x)
        if clamp is not None:
            validate_graph(self.ops, self.lines, clamp)
            return self.ops, self.sources
        deferred_ok = all(f.kind == "flatten" for _, f in x.deferred) and math.prod(x.shape[1:]) == 1
        if x.kind not in ("raw", "logits") or not deferred_ok:
            raise self.bad_end(result, x)
        if x.view is not None:
            raise PyflowError(f"the model's forward returns logits unsqueezed to {list(x.view)} (without the batch; "
                              f"layer {self.at(result)}); pyflow's logits are [B, classes]: squeeze them back")
        validate_graph(self.ops, self.lines, x.op)
        return self.ops, self.sources

    def logits_relu(self, x: Value) -> int | None:
        """A forward ending in ReLU (and maybe flattens) right after its logits layer: the flattens go (the logits
        are flattened anyway), the ReLU becomes the logits' clamp at 0 (``logit_relu``); its op, or None."""
        if x.kind != "act" or x.op < 0 or x.gain is not None or x.pad or x.view is not None:
            return None
        index = x.op
        while self.ops[index]["op"] == "flatten":
            index = op_inputs(self.ops, index)[0]
            if index < 0:
                return None
        source = op_inputs(self.ops, index)[0]
        if self.ops[index]["op"] != "relu" or source < 0:
            return None
        matrix = op_inputs(self.ops, source)[0] if self.ops[source]["op"] == "bn" else source
        tail = [index, *(i for i in range(index + 1, len(self.ops)))]
        if matrix < 0 or self.ops[matrix]["op"] not in MATRIX or \
                any(self.ops[i]["op"] != "flatten" or op_inputs(self.ops, i) != [i - 1] for i in tail[1:]):
            return None
        for kept in (self.ops, self.sources, self.lines, self.nodes):
            del kept[index + 1:]
        self.ops[index]["op"] = "logit_relu"
        return index

    def bad_end(self, result: fx.Node, x: Value) -> PyflowError:
        """The refusal of a forward that does not end in the logits layer, naming its real last operation."""
        module = self.modules.get(result.target) if result.op == "call_module" else None
        form = classify(result, module) if result.op != "placeholder" else None
        last = "the input" if result.op == "placeholder" else f"{describe(result, module)!r}"
        if x.kind == "sum":
            last = f"an add ({last})"
        elif x.kind == "raw":
            last = f"{last}, pooled logits"
        where_ = f"(layer {self.at(result)})" if result.op != "placeholder" else "(it returns its input)"
        if form is not None and form.kind == "relu" and x.kind == "act":
            fix = "drop the final ReLU (argmax of the logits is unchanged unless all are negative) or add the " \
                  "Conv2d or Linear giving the logits after it: pyflow's logits are signed"
        else:
            fix = "its last operation must be the Conv2d or Linear giving the logits (no ReLU, pooling or " \
                  "BatchNorm after it)"
        return PyflowError(f"the model's forward ends in {last} {where_}, not in a Conv2d or Linear; {fix}")


def trace_graph(model: nn.Module, input_shape: tuple[int, int, int],
                vector: bool = False) -> tuple[list[dict[str, Any]], list[nn.Module | None]]:
    """The model's forward as ops and, per op, the user's module holding its parameters (BN folds applied).

    ``vector``: the dataset's inputs are ``[N, F]`` vectors (``input_shape`` is ``(F, 1, 1)``), so the
    forward is traced on ``[1, F]``.
    """
    was_training = model.training
    try:
        return _Importer(model, tuple(input_shape), vector).run()
    finally:
        model.train(was_training)
