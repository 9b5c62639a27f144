"""Built-in models and the resolution of a ``--model`` spec (PyTorch is imported here).

``--model`` is a built-in name (``digits-cnn``, ``lenet5``, ``tfc-mlp``, ``fashion-cnn2``, ``fashion-cnn3``,
``vgg-small``, ``resnet8``, ``resnet20``, ``resnet18``) or the user's own network: ``path/to/models.py:MyNet`` or
``package.module:MyNet``, where ``MyNet`` is a class or factory called without arguments.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pyflow.errors import PyflowError


def digits_cnn(input_shape: tuple[int, int, int] = (1, 8, 8), num_classes: int = 10) -> nn.Module:
    c, h, w = input_shape
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), num_classes))


def lenet5(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> nn.Module:
    c, h, w = input_shape
    hh, ww = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 6, 5), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * hh * ww, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))


def tfc_mlp(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> nn.Module:
    """FINN's TFC topology: 784-64-64-64-10 with BatchNorm."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_shape[0] * input_shape[1] * input_shape[2]
    for _ in range(3):
        layers += [nn.Linear(width, 64), nn.BatchNorm1d(64), nn.ReLU()]
        width = 64
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def fashion_cnn2(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> nn.Module:
    """The "2 Conv+pooling" row of Fashion-MNIST's benchmark table (TensorFlow's layers tutorial, 91.6 %):
    5×5 convolutions of 32 and 64 channels, each followed by 2×2 max pooling, then a hidden dense layer —
    128 wide here, not 1,024, so that its 3,136×128 weights fit a small board's BRAM."""
    c, h, w = input_shape
    return nn.Sequential(
        nn.Conv2d(c, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, num_classes))


def fashion_cnn3(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> nn.Module:
    """The "3 Conv+BN+pooling" row of Fashion-MNIST's benchmark table (92.1 %): three 3×3 convolutions of
    32, 64 and 128 channels, each with BatchNorm, ReLU and 2×2 max pooling (28 → 14 → 7 → 3), then the
    classifier."""
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for width in (32, 64, 128):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = width, h // 2, w // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, num_classes))


def vgg_small(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for width in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * (h // 8) * (w // 8), num_classes))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity, or a 1×1 strided conv + BN where the shape
    changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet of basic blocks: a 3×3 stem, stages of ``blocks`` blocks (the first of each later stage has
    stride 2), global average pooling, the classifier."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, widths: tuple[int, ...],
                 blocks: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c = [], widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(c, width, 2 if stage > 0 and block == 0 else 1))
                c = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet18(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
    """The CIFAR ResNet-18: 3×3 stem, four stages of two basic blocks (64, 128, 256, 512 channels)."""
    return ResNet(input_shape, num_classes, (64, 128, 256, 512), 2)


def resnet8(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
    """He et al.'s CIFAR ResNet-8 (6n+2 layers, n = 1): 3×3 stem of 16, three stages of one basic block
    (16, 32, 64 channels; 1×1 stride-2 conv + BN shortcuts), global average pooling, fc."""
    return ResNet(input_shape, num_classes, (16, 32, 64), 1)


def resnet20(input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
    """He et al.'s CIFAR ResNet-20 (n = 3): as :func:`resnet8` with three basic blocks per stage."""
    return ResNet(input_shape, num_classes, (16, 32, 64), 3)


BUILTIN: dict[str, Callable[..., nn.Module]] = {
    "digits-cnn": digits_cnn, "lenet5": lenet5, "tfc-mlp": tfc_mlp, "fashion-cnn2": fashion_cnn2,
    "fashion-cnn3": fashion_cnn3, "vgg-small": vgg_small, "resnet8": resnet8, "resnet20": resnet20,
    "resnet18": resnet18,
}


def build_model(spec: str, input_shape: tuple[int, int, int], num_classes: int, vector: bool = False) -> nn.Module:
    """A built-in model for ``input_shape``/``num_classes``, or the user's ``file.py:Name`` / ``module:Name``.

    The model is checked on one zero image (``vector``: one zero ``[1, F]`` vector, ``input_shape = (F, 1, 1)``):
    it must run and give ``num_classes`` logits.
    """
    if spec in BUILTIN:
        try:
            model = BUILTIN[spec](tuple(input_shape), num_classes)
        except (RuntimeError, ValueError) as exc:
            raise PyflowError(f"--model {spec}: does not fit {tuple(input_shape)} images: {exc}") from None
    else:
        model = _user_model(spec)
    _check_forward(model, spec, (input_shape[0],) if vector else tuple(input_shape), num_classes)
    return model


def _check_forward(model: nn.Module, spec: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    was_training = model.training
    what = f"a {input_shape} image" if len(input_shape) == 3 else f"a [1, {input_shape[0]}] vector"
    try:
        with torch.no_grad():
            logits = model.eval()(torch.zeros(1, *input_shape))
    except Exception as exc:  # the user's forward: any failure is reported in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PyflowError(f"--model {spec}: forward on {what} failed: {type(exc).__name__}: {first}") from None
    finally:
        model.train(was_training)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (1, num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise PyflowError(f"--model {spec}: gives logits of shape {shape} for one image; the data has "
                          f"{num_classes} classes, so (1, {num_classes}) was expected")


def _user_model(spec: str) -> nn.Module:
    source, sep, name = str(spec).rpartition(":")
    if not sep or not source or not name:
        raise PyflowError(f"--model: unknown model {spec!r} (built-in: {', '.join(BUILTIN)}; "
                          "or path/to/file.py:ClassName or package.module:ClassName)")
    factory = getattr(_user_module(source, spec), name, None)
    if not callable(factory):
        raise PyflowError(f"--model {spec}: {source} defines no class or factory named {name!r}")
    try:
        model = factory()
    except Exception as exc:  # the user's constructor: any failure is reported in one line
        raise PyflowError(f"--model {spec}: {name}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise PyflowError(f"--model {spec}: {name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _user_module(source: str, spec: str) -> object:
    try:
        if source.endswith(".py"):
            path = Path(source)
            if not path.is_file():
                raise PyflowError(f"--model {spec}: {path}: no such file")
            module_name = f"pyflow_user_model_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
            return module
        return importlib.import_module(source)
    except PyflowError:
        raise
    except Exception as exc:  # importing the user's code: report, never a traceback
        raise PyflowError(f"--model {spec}: cannot import {source}: {type(exc).__name__}: {exc}") from None
