"""Built-in models, user models from a file or a module, fx tracing of non-Sequential forwards, refusals."""

import sys
import textwrap

import pytest
import torch

from pyflow.compress.api import layer_shapes
from pyflow.compress.chain import ChainNet
from pyflow.compress.importer import trace_graph
from pyflow.errors import PyflowError
from pyflow.models import BUILTIN, build_model

torch.set_num_threads(1)  # tiny models: one thread per pytest worker beats oversubscribed cores

SHAPES = {"digits-cnn": (1, 8, 8), "lenet5": (1, 28, 28), "tfc-mlp": (1, 28, 28), "fashion-cnn2": (1, 28, 28),
          "fashion-cnn3": (1, 28, 28), "vgg-small": (3, 32, 32), "resnet8": (1, 8, 8), "resnet20": (3, 32, 32),
          "resnet18": (3, 32, 32)}

USER_MODEL = textwrap.dedent("""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Block(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(c_out)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))


    class MyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = Block(1, 6)
            self.pool = nn.MaxPool2d(2)
            self.more = Block(6, 12)
            self.drop = nn.Dropout(0.1)
            self.head = nn.Linear(12 * 4 * 4, 10)

        def forward(self, x):
            x = self.pool(self.features(x))
            x = self.drop(self.more(x))
            return self.head(x.view(x.size(0), -1))


    class Sigmoidal(MyNet):
        def forward(self, x):
            x = self.pool(self.features(x))
            return self.head(torch.sigmoid(self.more(x)).flatten(1))


    class NoRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(64, 16)
            self.norm = nn.BatchNorm1d(16)
            self.b = nn.Linear(16, 10)

        def forward(self, x):
            return self.b(self.norm(self.a(torch.flatten(x, 1))))


    def make_net():
        return MyNet()
""")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(USER_MODEL)
    return path


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_models_run_on_their_input(name):
    model = build_model(name, SHAPES[name], 10).eval()
    assert model(torch.zeros(2, *SHAPES[name])).shape == (2, 10)


@pytest.mark.parametrize("name", ["digits-cnn", "lenet5", "tfc-mlp", "fashion-cnn2", "fashion-cnn3", "vgg-small"])
def test_builtin_chains_trace_and_rebuild(name):
    torch.manual_seed(0)
    model = build_model(name, SHAPES[name], 10).eval()
    ops, sources = trace_graph(model, SHAPES[name])
    folding = {op["name"]: (4, 4) for op in ops if op["op"] in ("conv", "linear")}
    chain = ChainNet(ops, folding)
    chain.load_from(sources)
    x = torch.rand(3, *SHAPES[name])
    assert torch.allclose(chain.eval()(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name, shape", [("resnet8", (1, 8, 8)), ("resnet8", (1, 28, 28)), ("resnet20", (3, 32, 32)),
                                         ("resnet18", (3, 32, 32))])
def test_resnets_import_as_graphs_and_rebuild(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 10).eval()
    with torch.no_grad():  # non-trivial BN statistics, so that a misplaced BN would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    ops, sources = trace_graph(model, shape)
    convs = [op for op in ops if op["op"] == "conv"]
    blocks = {"resnet8": 3, "resnet20": 9, "resnet18": 8}[name]
    assert len(convs) == 1 + 2 * blocks + (3 if name == "resnet18" else 2)  # stem, blocks, 1x1 shortcuts
    assert [op["name"] for op in ops if op["op"] == "add"] == [f"add{i}" for i in range(blocks)]
    assert sum(op["op"] == "quant" for op in ops) == blocks + (3 if name == "resnet18" else 2)  # signed branch ends
    chain = ChainNet(ops, {op["name"]: (4, 4) for op in ops if op["op"] in ("conv", "linear")})
    chain.load_from(sources)
    x = torch.rand(2, *shape)
    assert torch.allclose(chain.eval()(x), model(x), atol=1e-4)


def test_user_model_from_file_path_non_sequential(user_file):
    model = build_model(f"{user_file}:MyNet", (1, 8, 8), 10).eval()
    ops, sources = trace_graph(model, (1, 8, 8))
    assert [op["op"] for op in ops] == ["conv", "bn", "relu", "maxpool", "conv", "bn", "relu", "flatten", "linear"]
    assert [op.get("name") for op in ops if "name" in op] == ["conv0", "pool0", "conv1", "flatten0", "fc0"]
    assert ops[-1]["flat_from"] == [12, 4, 4]
    chain = ChainNet(ops, {"conv0": (2, 1), "conv1": (4, 2), "fc0": (8, 8)})
    chain.load_from(sources)
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(chain.eval()(x), model(x), atol=1e-5)
    assert build_model(f"{user_file}:make_net", (1, 8, 8), 10).head.out_features == 10


def test_user_model_from_module(user_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    shapes = layer_shapes("user_models:MyNet", "digits")
    assert [(s.name, s.c_in, s.c_out, s.in_hw, s.out_hw) for s in shapes] == [
        ("conv0", 1, 6, (8, 8), (8, 8)), ("conv1", 6, 12, (4, 4), (4, 4)), ("fc0", 192, 10, (1, 1), (1, 1))]


def test_unsupported_op_names_operation_and_layer(user_file):
    model = build_model(f"{user_file}:Sigmoidal", (1, 8, 8), 10)
    with pytest.raises(PyflowError, match=r"unsupported operation 'sigmoid' in layer 'forward'"):
        trace_graph(model, (1, 8, 8))


def test_unsupported_module_inside_a_block(user_file):
    model = build_model(f"{user_file}:MyNet", (1, 8, 8), 10)
    model.more.bn = torch.nn.LayerNorm([12, 4, 4])
    with pytest.raises(PyflowError, match=r"unsupported operation 'LayerNorm' in layer 'more.bn'"):
        trace_graph(model, (1, 8, 8))


def test_hidden_layer_without_relu_is_refused(user_file):
    model = build_model(f"{user_file}:NoRelu", (1, 8, 8), 10)
    with pytest.raises(PyflowError, match=r"layer 'fc0' is a hidden layer, so it must be followed by ReLU"):
        trace_graph(model, (1, 8, 8))


@pytest.mark.parametrize("spec, message", [
    ("nonet", "unknown model 'nonet'"),
    ("missing_file.py:Net", "missing_file.py: no such file"),
    ("{file}:Nothing", "defines no class or factory named 'Nothing'"),
    ("no_such_module_xyz:Net", "cannot import no_such_module_xyz"),
])
def test_bad_model_specs(user_file, spec, message):
    with pytest.raises(PyflowError, match=message):
        build_model(spec.format(file=user_file), (1, 8, 8), 10)


def test_model_that_does_not_fit_the_data_is_refused(user_file):
    with pytest.raises(PyflowError, match=r"--model lenet5: forward on a \(1, 8, 8\) image failed: RuntimeError"):
        build_model("lenet5", (1, 8, 8), 10)
    with pytest.raises(PyflowError, match=r"MyNet: forward on a \(1, 28, 28\) image failed: RuntimeError"):
        build_model(f"{user_file}:MyNet", (1, 28, 28), 10)
    with pytest.raises(PyflowError, match=r"gives logits of shape \(1, 10\) for one image; the data has 3 classes"):
        build_model(f"{user_file}:MyNet", (1, 8, 8), 3)


def test_vector_models_are_checked_on_one_vector():
    model = build_model("tfc-mlp", (64, 1, 1), 10, vector=True)  # its Flatten leaves [B, F] as it is
    assert model.eval()(torch.zeros(3, 64)).shape == (3, 10)
    ops, _ = trace_graph(model, (64, 1, 1), vector=True)
    assert [op["op"] for op in ops][:3] == ["linear", "bn", "relu"] and ops[0]["in_shape"] == [64, 1, 1]
    with pytest.raises(PyflowError, match=r"--model digits-cnn: forward on a \[1, 1\] vector failed: RuntimeError"):
        build_model("digits-cnn", (1, 8, 8), 10, vector=True)  # an image model fed vectors
