"""Importing models as graphs: every family of issue 14, written the ways real models write it, either imports
(the rebuilt model computes what the user's does, and its IR's golden model agrees with the fake-quantized
torch model) or is refused in one line naming the operation, the source file:line and the rewrite."""

import importlib.util
import re
import sys
import textwrap

import numpy as np
import pytest
import torch

from pyflow import golden
from pyflow.compress.chain import ChainNet, calibrate
from pyflow.compress.export import to_network, torch_logits
from pyflow.compress.importer import trace_graph
from pyflow.compress.train import as_float
from pyflow.data import load_data
from pyflow.errors import PyflowError
from pyflow.ir.model import AddLayer, MatrixLayer

torch.set_num_threads(1)

ACCEPTED = textwrap.dedent("""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Relus(nn.Module):  # every way of writing ReLU, and x.reshape(x.shape[0], -1)
        def __init__(self):
            super().__init__()
            self.c = nn.ModuleList([nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1) for i in range(6)])
            self.act = nn.ReLU(inplace=True)
            self.fc = nn.Linear(4 * 8 * 8, 10)

        def forward(self, x):
            x = F.relu(self.c[0](x))
            x = torch.relu(self.c[1](x))
            x = self.c[2](x).relu()
            x = F.relu_(self.c[3](x))
            x = self.act(self.c[4](x))
            x = self.c[5](x)
            x.relu_()
            return self.fc(x.reshape(x.shape[0], -1))


    class LeNetF(nn.Module):  # the issue's LeNet: F.max_pool2d (also before the ReLU), log_softmax dropped
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
            self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
            self.fc1 = nn.Linear(12 * 2 * 2, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.relu(F.max_pool2d(self.conv2(x), 2))
            x = F.dropout(torch.flatten(x, 1), 0.5, self.training)
            return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


    class GapNet(nn.Module):  # the issue's net ending in F.adaptive_avg_pool2d(x, 1); nested containers
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)),
                                          nn.ReLU(), nn.Identity(), nn.Dropout(0.2))
            self.more = nn.ModuleList([nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)])
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.features(x)
            for m in self.more:
                x = m(x)
            x = F.adaptive_avg_pool2d(F.relu(x), 1)
            return self.fc(x.view(x.shape[0], -1))


    class GapTuple(GapNet):  # adaptive_avg_pool2d(x, (1, 1)), x.view(x.size(0), -1), softmax dropped
        def forward(self, x):
            x = self.more[1](self.more[0](self.features(x)))
            x = F.adaptive_avg_pool2d(torch.relu(x), (1, 1))
            return torch.softmax(self.fc(x.view(x.size(0), -1)), 1)


    class Folds(nn.Module):  # scaled input, ZeroPad2d and F.pad, BN after ReLU, BatchNorm1d after torch.reshape
        def __init__(self):
            super().__init__()
            self.pad = nn.ZeroPad2d(1)
            self.c1 = nn.Conv2d(1, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.c2 = nn.Conv2d(8, 8, 3)
            self.c3 = nn.Conv2d(8, 8, 3, padding=1)
            self.bn1d = nn.BatchNorm1d(8 * 8 * 8)
            self.fc = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            x = F.relu(self.c1(self.pad(x * 0.5)))
            x = self.bn(x)
            x = F.relu(self.c2(x))
            x = F.relu(self.c3(F.pad(x, (1, 1, 1, 1))))
            x = self.bn1d(torch.reshape(x, (x.size(0), -1)))
            return self.fc(x).softmax(dim=1)


    class FlatRelu(nn.Module):  # 2 * x - 1 into an unpadded conv; Flatten between the conv and its ReLU; view(-1, N)
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 4, 3)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(4 * 6 * 6, 10)

        def forward(self, x):
            x = 2 * x - 1
            return self.fc(F.relu(self.flat(self.c(x))).view(-1, 144))


    class ConvLogits(nn.Module):  # ConstantPad2d, F.avg_pool2d, an input= keyword, 1x1 conv logits flattened
        def __init__(self):
            super().__init__()
            self.pad = nn.ConstantPad2d(1, 0.0)
            self.c = nn.Conv2d(1, 8, 3)
            self.head = nn.Conv2d(8, 10, 1)

        def forward(self, x):
            x = F.avg_pool2d(F.relu(input=self.c(self.pad(x))), 2)
            return torch.flatten(self.head(F.adaptive_avg_pool2d(x, 1)), 1)


    class Residual(nn.Module):  # +=, torch.add, identity and conv shortcuts; a reshape computed from the sizes
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(1, 8, 3, padding=1)
            self.c1 = nn.Conv2d(8, 8, 3, padding=1)
            self.b1 = nn.BatchNorm2d(8)
            self.c2 = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 16, 10)

        def forward(self, x):
            x = F.relu(self.c0(x))
            y = self.b1(self.c1(x))
            y += x
            y = F.relu(y)
            z = torch.add(self.c2(y), y)
            z = F.max_pool2d(F.relu(z), 2)
            return self.fc(z.reshape(-1, z.size(1) * z.size(2) * z.size(3)))


    class Squeezes(nn.Module):  # unsqueeze/squeeze back (also around a Linear), [B, C, 1, 1] squeezed to [B, C]
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(8, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.unsqueeze(x, 1).squeeze(1)
            x = F.adaptive_avg_pool2d(F.relu(self.c(x)), 1)
            x = torch.relu(self.fc(x.squeeze((2, 3))))
            return torch.squeeze(self.fc2(x.unsqueeze(dim=1)), dim=1)


    class SqueezeHead(nn.Module):  # 1x1 conv logits squeezed to [B, classes] by dims
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 8, 3)
            self.head = nn.Conv2d(8, 10, 6)

        def forward(self, x):
            return self.head(F.relu(self.c(x))).squeeze(3).squeeze(-1)


    class Linears(nn.Module):  # Linear -> Dropout -> Linear, and three Linears in a row: folded in float
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 4, 3, padding=1)
            self.fc1 = nn.Linear(4 * 8 * 8, 32)
            self.fc2 = nn.Linear(32, 16, bias=False)
            self.fc3 = nn.Linear(16, 12, bias=False)
            self.fc4 = nn.Linear(12, 12)
            self.fc5 = nn.Linear(12, 10)

        def forward(self, x):
            x = torch.flatten(F.relu(self.c(x)), 1)
            x = F.relu(self.fc2(F.dropout(self.fc1(x), 0.5, self.training)))
            return self.fc5(self.fc4(self.fc3(x)))
""")

REFUSED = textwrap.dedent("""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 4, 3, padding=1)
            self.c2 = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 10)
            self.fc2 = nn.Linear(10, 10)
            self.leaky = nn.LeakyReLU(0.1)
            self.tanh = nn.Hardtanh()
            self.avg = nn.AvgPool2d(3, 1, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.zpad = nn.ZeroPad2d((1, 0, 1, 0))
            self.bn1d = nn.BatchNorm1d(10)


    class Leaky(Base):
        def forward(self, x):
            x = self.leaky(self.c(x))  # refused: Leaky
            return self.fc(x.flatten(1))


    class Hard(Base):
        def forward(self, x):
            x = self.tanh(self.c(x))  # refused: Hard
            return self.fc(x.flatten(1))


    class AvgPad(Base):
        def forward(self, x):
            x = self.avg(F.relu(self.c(x)))  # refused: AvgPad
            return self.fc(x.flatten(1))


    class LinearBnLinear(Base):
        def forward(self, x):
            x = F.relu(self.c(x)).flatten(1)
            return self.fc2(self.bn1d(self.fc(x)))  # refused: LinearBnLinear


    class TwoReaders(Base):
        def forward(self, x):
            y = self.fc(F.relu(self.c(x)).flatten(1))
            return self.fc2(y) + self.fc2(F.relu(y))  # refused: TwoReaders


    class SqueezeBatch(Base):
        def forward(self, x):
            return self.fc(F.relu(self.c(x)).flatten(1).squeeze(0))  # refused: SqueezeBatch


    class ReluUnsqueezed(Base):
        def forward(self, x):
            x = F.relu(F.relu(self.c(x)).unsqueeze(1))  # refused: ReluUnsqueezed
            return self.fc(x.squeeze(1).flatten(1))


    class UnsqueezedLogits(Base):
        def forward(self, x):
            return self.fc(F.relu(self.c(x)).flatten(1)).unsqueeze(1)  # refused: UnsqueezedLogits


    class SqueezeAll(Base):
        def forward(self, x):
            return self.fc(torch.squeeze(F.relu(self.c(x)).flatten(1)))  # refused: SqueezeAll


    class BnEnd(Base):
        def forward(self, x):
            return self.bn(F.relu(self.c(x)))  # refused: BnEnd


    class AddNoRelu(Base):
        def forward(self, x):
            x = F.relu(self.c(x))
            y = self.c2(x) + x
            return self.fc(y.flatten(1))  # refused: AddNoRelu


    class TwoInputs(Base):
        def forward(self, x, y):
            return self.fc(F.relu(self.c(x + y)).flatten(1))  # refused: TwoInputs


    class Pair(Base):
        def forward(self, x):
            f = F.relu(self.c(x)).flatten(1)
            return self.fc(f), f  # refused: Pair


    class ShiftPad(Base):
        def forward(self, x):
            return self.fc(F.relu(self.c(2 * x - 1)).flatten(1))  # refused: ShiftPad


    class BnPool(Base):
        def forward(self, x):
            x = self.bn(F.relu(self.c(x)))
            x = F.max_pool2d(x, 2)  # refused: BnPool
            return self.fc(torch.cat([x, x, x, x], 1).flatten(1))


    class AsymPad(Base):
        def forward(self, x):
            return self.fc(F.relu(self.c(self.zpad(x)))[:, :, :8, :8].flatten(1))  # refused: AsymPad


    class AvgRaw(Base):
        def forward(self, x):
            x = F.relu(F.avg_pool2d(self.c(x), 1))  # refused: AvgRaw
            return self.fc(x.flatten(1))


    class Unused(Base):
        def forward(self, x):
            x = F.relu(self.c(x))
            self.c2(x)  # refused: Unused
            return self.fc(x.flatten(1))


    class TwoWays(Base):
        def forward(self, x):
            x = F.relu(self.c(x))
            y = self.c2(x)
            z = F.relu(y + x) + F.relu(y)  # refused: TwoWays
            return self.fc(F.relu(z).flatten(1))


    class Reshape(Base):
        def forward(self, x):
            x = F.relu(self.c(x)).view(1, -1)  # refused: Reshape
            return self.fc(x)
""")


def _module(tmp_path_factory, name, source):
    path = tmp_path_factory.mktemp("models") / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def accepted(tmp_path_factory):
    return _module(tmp_path_factory, "graph_accepted", ACCEPTED)


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    return _module(tmp_path_factory, "graph_refused", REFUSED)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _user(module, name):
    torch.manual_seed(0)
    model = getattr(module, name)().eval()
    with torch.no_grad():  # BN statistics that are not the identity, so that a lost or misplaced fold shows
        for norm in model.modules():
            if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
                norm.running_mean.uniform_(-0.2, 0.2)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
    return model


def _rebuilt(model, shape=(1, 8, 8), vector=False):
    ops, sources = trace_graph(model, shape, vector)
    chain = ChainNet(ops, {op["name"]: (4, 4) for op in ops if op["op"] in ("conv", "linear")})
    chain.load_from(sources)
    return ops, chain.eval()


def _golden_agreement(chain, data, name):
    """Ternary weights, 8-bit activations, export; the fraction of test images where golden and torch agree."""
    chain.set_ternary(True)
    calibrate(chain, as_float(data.train_x[:256]))
    chain.set_act_quant(True)
    network = to_network(chain, name, data.input_shape, {}, {})
    agree = golden.predict(network, data.test_x) == torch_logits(chain, data.test_x).argmax(1).numpy()
    return network, float(agree.mean())


FAMILIES = {  # name: (ops the import gives, IR layers, how the user's output relates to the logits)
    "Relus": ("conv relu " * 6 + "flatten linear", "conv " * 6 + "flatten linear", None),
    "LeNetF": ("conv relu maxpool conv relu maxpool flatten linear relu linear",
               "conv maxpool conv maxpool flatten linear linear", torch.log_softmax),
    "GapNet": ("conv bn relu conv bn relu avgpool flatten linear", "conv conv avgpool flatten linear", None),
    "GapTuple": ("conv bn relu conv bn relu avgpool flatten linear", "conv conv avgpool flatten linear", torch.softmax),
    "Folds": ("conv relu conv relu conv relu flatten linear", "conv conv conv flatten linear", torch.softmax),
    "FlatRelu": ("conv relu flatten linear", "conv flatten linear", None),
    "ConvLogits": ("conv relu avgpool avgpool conv", "conv avgpool avgpool conv", None),
    "Residual": ("conv relu conv bn quant add relu conv quant add relu maxpool flatten linear",
                 "conv conv add conv add maxpool flatten linear", None),
    "Squeezes": ("conv relu avgpool flatten linear relu linear", "conv avgpool flatten linear linear", None),
    "SqueezeHead": ("conv relu conv", "conv conv", None),
    "Linears": ("conv relu flatten linear relu linear", "conv flatten linear linear", None),
}
_IR_KIND = {"MatrixLayer": lambda layer: layer.kind, "AddLayer": lambda layer: "add",
            "PoolLayer": lambda layer: layer.kind, "FlattenLayer": lambda layer: "flatten"}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_accepted_family_rebuilds_exactly_and_exports_agreeing_with_golden(accepted, digits, name):
    op_kinds, ir_kinds, output = FAMILIES[name]
    model = _user(accepted, name)
    ops, chain = _rebuilt(model)
    assert [op["op"] for op in ops] == op_kinds.split()
    x = as_float(digits.test_x[:32])
    logits = chain(x)
    expected = model(x)
    if output is not None:  # a softmax / log-softmax at the end is dropped: the argmax stays
        logits = output(logits, 1)
    assert torch.allclose(logits, expected, atol=1e-4), name
    network, agreement = _golden_agreement(chain, digits, name)
    assert [_IR_KIND[type(layer).__name__](layer) for layer in network.layers] == ir_kinds.split()
    assert agreement >= 0.99


def test_residual_branch_ends_are_signed_and_adds_name_their_inputs(accepted, digits):
    _, chain = _rebuilt(_user(accepted, "Residual"))
    network, _ = _golden_agreement(chain, digits, "residual")
    layers = {layer.name: layer for layer in network.layers}
    assert [n for n, layer in layers.items() if isinstance(layer, MatrixLayer) and layer.signed] == ["conv1", "conv2"]
    assert network.inputs_of(layers["add0"]) == ("conv1", "conv0") and layers["add0"].signed_inputs == (True, False)
    assert network.inputs_of(layers["add1"]) == ("conv2", "add0") and layers["add1"].signed_inputs == (True, False)
    assert network.inputs_of(layers["conv2"]) == ("add0",) and layers["conv2"].inputs == ()  # the layer before
    assert [layer.name for layer in network.layers][:3] == ["conv0", "conv1", "add0"]


def test_padding_and_scaling_fold_into_the_conv(accepted):
    ops, _ = _rebuilt(_user(accepted, "Folds"))
    convs = [op for op in ops if op["op"] == "conv"]
    assert [op["padding"] for op in convs] == [1, 0, 2]  # ZeroPad2d(1) + padding 0; F.pad 1 + padding 1
    assert all(op["bias"] for op in convs)  # the folded BatchNorm's shift becomes c2's bias


REFUSALS = {  # name: (the operation named, the rewrite suggested)
    "Leaky": ("'LeakyReLU' in layer 'leaky'", "passes negative values.*use ReLU"),
    "Hard": ("'Hardtanh' in layer 'tanh'", "clamps to a fixed range.*use ReLU"),
    "AvgPad": ("'AvgPool2d' in layer 'avg'", "count_include_pad.*use padding=0"),
    "LinearBnLinear": ("layer 'fc0' is a hidden layer, so it must be followed by ReLU",
                       "put a ReLU between fc0 and it"),
    "TwoReaders": ("layer 'fc0' is a hidden layer, so it must be followed by ReLU", "put a ReLU between fc0 and it"),
    "SqueezeBatch": ("'squeeze'", "a squeeze of the batch dimension \\(dim 0\\).*squeeze dimensions from 1 on"),
    "ReluUnsqueezed": ("'relu'.*unsqueezed to \\[1, 4, 8, 8\\]", "squeeze it back"),
    "UnsqueezedLogits": ("returns logits unsqueezed to \\[1, 10\\]", "logits are \\[B, classes\\]: squeeze them back"),
    "SqueezeAll": ("'squeeze'", "drops the batch when it is 1; name the dims: x.squeeze\\(-1\\)"),
    "BnEnd": ("ends in 'BatchNorm2d' \\(layer 'bn'", "no ReLU, pooling or BatchNorm after it"),
    "AddNoRelu": ("'flatten'", "adds are followed by ReLU.*torch.relu\\(a \\+ b\\)"),
    "TwoInputs": ("takes more than one input \\('x', 'y'", "give the forward one tensor"),
    "Pair": ("returns a tuple", "return only the logits"),
    "ShiftPad": ("'Conv2d' in layer 'c'", "constant cannot fold at the border; use padding=0 here"),
    "BnPool": ("'max_pool2d'", "move the BatchNorm before the ReLU"),
    "AsymPad": ("'ZeroPad2d' in layer 'zpad'", "symmetric zero padding.*use the Conv2d's padding"),
    "AvgRaw": ("'avg_pool2d'", "put the ReLU first"),
    "Unused": ("the result of 'conv1' in layer 'c2'", "remove it from the forward"),
    "TwoWays": ("read 2 ways", "read it once"),
    "Reshape": ("'view'", "x.view\\(x.size\\(0\\), -1\\)"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refused_family_names_the_operation_the_source_line_and_the_rewrite(refused, name):
    operation, rewrite = REFUSALS[name]
    line = next(i for i, text in enumerate(REFUSED.splitlines(), 1) if text.endswith(f"# refused: {name}"))
    with pytest.raises(PyflowError) as info:
        trace_graph(getattr(refused, name)(), (1, 8, 8))
    message = str(info.value)
    assert "\n" not in message
    assert f"graph_refused.py:{line}" in message, message
    assert re.search(operation, message), message
    assert re.search(rewrite, message), message


def test_linears_fold_exactly_into_the_first_keeping_its_name(accepted):
    model = _user(accepted, "Linears")
    ops, chain = _rebuilt(model)
    linears = [(op["name"], op["c_in"], op["c_out"], op["bias"], op["source"]) for op in ops if op["op"] == "linear"]
    assert linears == [("fc0", 256, 16, True, "fc1+fc2"), ("fc1", 16, 10, True, "fc3+fc4+fc5")]
    x = torch.rand(8, 1, 8, 8)
    assert torch.allclose(chain(x), model(x), atol=1e-5)
    assert all(p.requires_grad for p in model.parameters()) and model.fc1.out_features == 32  # the user's untouched


@pytest.mark.parametrize("model, shape, vector", [
    (torch.nn.Sequential(torch.nn.MaxPool2d(2)), (2, 4, 4), False),
    (torch.nn.Sequential(torch.nn.BatchNorm1d(16)), (16, 1, 1), True),
    (torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.ReLU()), (2, 4, 4), False),
])
def test_a_model_without_a_matrix_layer_says_so(model, shape, vector):
    with pytest.raises(PyflowError) as info:
        trace_graph(model, shape, vector)
    assert str(info.value) == "the model has no Conv2d or Linear layer: nothing for pyflow to compress"


@pytest.mark.parametrize("model", [
    torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.ReLU()),
    torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten()),
    torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.ReLU()),
])
def test_a_final_relu_becomes_the_logits_clamp(model):
    """A forward ending in ReLU after its logits layer: the IR's output layer with ``relu`` (logits clamped at
    0, bit-exact in every view: tests/test_rtl_graph.py); flattens after it go, the logits are flattened anyway."""
    ops, _ = trace_graph(model, (1, 8, 8))
    assert ops[-1]["op"] == "logit_relu"
    assert [op["op"] for op in ops if op["op"] in ("conv", "linear")][-1] in ("conv", "linear")


def test_a_relu_after_a_pool_of_the_logits_is_still_refused():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.ReLU())
    with pytest.raises(PyflowError, match=r"^the model's forward ends in 'ReLU' \(layer '3'\)"):
        trace_graph(model, (1, 8, 8))


def test_a_refusal_inside_an_nn_sequential_names_the_module():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ELU(), torch.nn.Flatten(), torch.nn.Linear(144, 10))
    with pytest.raises(PyflowError, match=r"^unsupported operation 'ELU' in layer '1': it passes negative values"):
        trace_graph(model, (1, 8, 8))


def test_vector_input_traces_an_mlp_on_b_by_f():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3)).eval()
    ops, chain = _rebuilt(model, (5, 1, 1), vector=True)
    assert [op["op"] for op in ops] == ["linear", "bn", "relu", "linear"] and ops[0]["in_shape"] == [5, 1, 1]
    x = torch.rand(4, 5)
    assert torch.allclose(chain(x), model(x), atol=1e-5)
    assert torch.allclose(chain(x[:, :, None, None]), model(x), atol=1e-5)  # the dataset's (F, 1, 1) layout too
    with pytest.raises(PyflowError, match=r"forward failed on a \(1, 5, 1, 1\) input"):
        trace_graph(model, (5, 1, 1), vector=False)


def test_add_requant_fits_16_bits_and_rounds_half_up():
    from pyflow.compress.chain import add_requant

    m_a, m_b, c, shift = add_requant(0.02, 0.005, 0.01, 8)
    assert max(m_a, m_b) <= (1 << 15) - 1 and 2 * m_a > (1 << 15) - 1  # the largest shift that fits
    assert m_a / 2**shift == pytest.approx(2.0, rel=1e-4) and m_b / 2**shift == pytest.approx(0.5, rel=1e-4)
    assert c == 1 << (shift - 1)
    with pytest.raises(PyflowError, match="more than 32767 times its output step"):
        add_requant(1e6, 1.0, 1e-3, 8)


@pytest.mark.parametrize("signed", [False, True])
def test_torch_add_computes_the_integer_add_exactly(signed):
    """QAdd on quantized codes == the golden AddLayer on the same codes, bit for bit (with the ReLU after it)."""
    from pyflow.compress.chain import ActQuant, QAdd, add_requant

    rng = np.random.default_rng(3)
    scales = (0.013, 0.0071, 0.017)
    low = -128 if signed else 0
    codes_a = rng.integers(low, 128 if signed else 256, size=(2, 3, 5, 5))
    codes_b = rng.integers(0, 256, size=(2, 3, 5, 5))
    add, relu = QAdd(8), ActQuant(8)
    for buffer, value in zip((add.scale_a, add.scale_b, add.scale_out), scales, strict=True):
        buffer.fill_(value)
    relu.scale.fill_(scales[2])
    add.enabled = relu.enabled = True
    out = relu(add(torch.tensor(codes_a * scales[0]).float(), torch.tensor(codes_b * scales[1]).float()))
    m_a, m_b, c, shift = add_requant(*scales, 8)
    layer = AddLayer("add0", (3, 5, 5), 8, ("a", "b"), signed, False, m_a, m_b, c, shift, 8)
    hwc = (codes_a.transpose(0, 2, 3, 1), codes_b.transpose(0, 2, 3, 1))
    expected = golden.run_layer(layer, *hwc).transpose(0, 3, 1, 2)
    assert np.array_equal(torch.round(out.double() / scales[2]).numpy().astype(np.int64), expected)


def test_signed_activation_quantizer_is_symmetric_and_rounds_half_up():
    from pyflow.compress.chain import ActQuant

    quant = ActQuant(4, signed=True)
    quant.scale.fill_(0.5)
    quant.enabled = True
    x = torch.tensor([-10.0, -3.75, -0.25, 0.25, 0.74, 3.5, 10.0])
    assert (quant(x) / 0.5).tolist() == [-8.0, -7.0, 0.0, 1.0, 1.0, 7.0, 7.0]  # floor(v/s + 0.5), clamp [-8, 7]
    assert quant.levels == 7
