"""Real-architecture models for tests and benchmarks (shared by the test families).

* :func:`resnet18`: torchvision's ResNet-18 (``torchvision.models.resnet18``: BasicBlock layout,
  BatchNorm, 7x7 stem + max-pool, the same initialisation), written out here because torchvision's
  wheel does not import against the CPU torch of the test environment. ``num_classes=10`` gives
  11,181,642 parameters; it runs on 32x32 inputs (layer4 sees 1x1 maps, as torchvision's model
  does on CIFAR-sized images).
* :func:`tiny_gpt2`: a 2-layer GPT-2 from ``transformers.GPT2Config`` with eager attention (the
  default SDPA attention has no double backward on CPU). ``None`` if transformers does not import;
  tests use :func:`require_transformers` to skip cleanly.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet", "resnet18", "tiny_gpt2", "require_transformers", "GPT2LossWrapper"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock`` (two 3x3 convolutions with BatchNorm, identity/projection skip)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` with ``BasicBlock`` (module names as torchvision's: conv1, bn1, layer1-4, fc)."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 1000, width: int = 64):
        super().__init__()
        w = width  # torchvision: 64 (stages 64, 128, 256, 512)
        self.inplanes = w
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(w, layers[0])
        self.layer2 = self._make_layer(2 * w, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * w, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * w, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * w, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 10, seed: int | None = 0, width: int = 64) -> ResNet:
    """torchvision's ResNet-18 (11.18M parameters at ``num_classes=10``), for 32x32 inputs.

    ``seed`` initialises the weights from a forked RNG (the global RNG is left alone); ``None``
    uses the global RNG as torchvision does. ``width`` (default torchvision's 64) sets the stage
    widths ``width * (1, 2, 4, 8)``: a width-reduced ResNet-18 of the same layout for fast tests.
    """
    if seed is None:
        return ResNet((2, 2, 2, 2), num_classes, width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNet((2, 2, 2, 2), num_classes, width)


def _transformers():
    try:
        import transformers
    except Exception:  # not installed, or does not import against this torch
        return None
    return transformers


def require_transformers():
    """Skip the calling test cleanly when transformers does not import."""
    if _transformers() is None:
        pytest.skip("transformers does not import here")


class GPT2LossWrapper(nn.Module):
    """``GPT2LMHeadModel`` returning the logits tensor (B, T, V) instead of an output object."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits


def tiny_gpt2(seed: int | None = 0, logits_only: bool = False):
    """A 108k-parameter GPT-2 (2 layers, width 64, 2 heads, vocabulary 100, context 32, eager attention).

    Returns ``None`` when transformers does not import. ``logits_only=True`` wraps it so that
    ``forward(input_ids)`` returns the logits tensor (for functions that expect a tensor output).
    """
    tr = _transformers()
    if tr is None:
        return None
    cfg = tr.GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        vocab_size=100,
        n_positions=32,
        attn_implementation="eager",
        bos_token_id=0,  # GPT-2's default 50256 lies outside the 100-token vocabulary
        eos_token_id=0,
    )
    if seed is None:
        model = tr.GPT2LMHeadModel(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = tr.GPT2LMHeadModel(cfg)
    return GPT2LossWrapper(model) if logits_only else model
