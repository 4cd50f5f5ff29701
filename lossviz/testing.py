"""Test helpers: prove that a lossviz call leaves the user's model exactly as it was.

CONTRIBUTING.md: after any lossviz call the model's parameters (bitwise),
``requires_grad`` flags, ``.grad`` fields, every submodule's ``.training`` flag and all buffers
(BatchNorm running statistics, ``num_batches_tracked``) are unchanged.

Example
-------
>>> import torch
>>> from lossviz.testing import BNDropoutNet, assert_model_unchanged
>>> model = BNDropoutNet()
>>> with assert_model_unchanged(model):
...     with torch.no_grad():
...         _ = torch.func.functional_call(model, dict(model.named_parameters()), (torch.zeros(3, 4),))
Traceback (most recent call last):
...
AssertionError: the model was changed:
  buffer 'bn.num_batches_tracked' changed value
  buffer 'bn.running_mean' changed value
  buffer 'bn.running_var' changed value
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ModelSnapshot", "snapshot", "assert_model_unchanged", "BNDropoutNet"]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A copy whose equality is bitwise (NaN == NaN, -0.0 != +0.0)."""
    t = t.detach().clone()
    if t.is_floating_point():
        return (
            t.view(torch.uint8)
            if t.element_size() == 1
            else t.reshape(-1).view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
        )
    return t


@dataclass
class ModelSnapshot:
    """Everything about a model that lossviz promises not to change."""

    params: dict[str, torch.Tensor]
    param_meta: dict[str, tuple]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]
    grad_ids: dict[str, int | None]
    training: dict[str, bool]
    buffers: dict[str, torch.Tensor]
    buffer_meta: dict[str, tuple]

    def differences(self, other: ModelSnapshot) -> list[str]:
        """Human-readable list of everything that differs between two snapshots."""
        diffs = []
        for kind in ("params", "buffers"):
            a, b = getattr(self, kind), getattr(other, kind)
            if a.keys() != b.keys():
                diffs.append(f"{kind} names changed: {sorted(a.keys() ^ b.keys())}")
            for k in sorted(a.keys() & b.keys()):
                if a[k].shape != b[k].shape or not torch.equal(a[k], b[k]):
                    diffs.append(f"{kind[:-1]} {k!r} changed value")
        for k, meta in self.param_meta.items():
            if other.param_meta.get(k) != meta:
                diffs.append(
                    f"parameter {k!r} changed dtype/device/shape: {meta} -> {other.param_meta.get(k)}"
                )
        for k, meta in self.buffer_meta.items():
            if other.buffer_meta.get(k) != meta:
                diffs.append(f"buffer {k!r} changed dtype/device/shape: {meta} -> {other.buffer_meta.get(k)}")
        for k, v in self.requires_grad.items():
            if other.requires_grad.get(k) != v:
                diffs.append(f"parameter {k!r} requires_grad {v} -> {other.requires_grad.get(k)}")
        for k, g in self.grads.items():
            h = other.grads.get(k)
            if (g is None) != (h is None):
                diffs.append(
                    f"parameter {k!r} .grad {'None' if g is None else 'set'} -> {'None' if h is None else 'set'}"
                )
            elif g is not None and (g.shape != h.shape or not torch.equal(g, h)):
                diffs.append(f"parameter {k!r} .grad changed value")
            elif g is not None and self.grad_ids[k] != other.grad_ids[k]:
                diffs.append(f"parameter {k!r} .grad was replaced by another tensor")
        for k, v in self.training.items():
            if other.training.get(k) != v:
                diffs.append(f"module {k or '<root>'!r} .training {v} -> {other.training.get(k)}")
        return diffs


def snapshot(model: nn.Module) -> ModelSnapshot:
    """Record parameters (bitwise), requires_grad, .grad, .training flags and buffers."""
    params, meta, req, grads, gids = {}, {}, {}, {}, {}
    for name, p in model.named_parameters():
        params[name] = _bits(p)
        meta[name] = (p.dtype, p.device, tuple(p.shape))
        req[name] = p.requires_grad
        grads[name] = None if p.grad is None else _bits(p.grad)
        gids[name] = None if p.grad is None else id(p.grad)
    bufs = {n: _bits(b) for n, b in model.named_buffers()}
    bmeta = {n: (b.dtype, b.device, tuple(b.shape)) for n, b in model.named_buffers()}
    training = {n: m.training for n, m in model.named_modules()}
    return ModelSnapshot(params, meta, req, grads, gids, training, bufs, bmeta)


@contextlib.contextmanager
def assert_model_unchanged(model: nn.Module) -> Iterator[ModelSnapshot]:
    """Context manager: fail with a list of differences if the block changed ``model``."""
    before = snapshot(model)
    yield before
    diffs = before.differences(snapshot(model))
    if diffs:
        raise AssertionError("the model was changed:\n  " + "\n  ".join(diffs))


class BNDropoutNet(nn.Module):
    """A small classifier with BatchNorm and Dropout, the standard victim for mutation tests.

    ``in_features -> hidden -> BatchNorm1d -> ReLU -> Dropout -> hidden -> out``. Its BatchNorm
    statistics are non-trivial (one warm-up pass in train mode) and every parameter carries a
    ``.grad`` (one backward pass), so a lossviz call that touches either is caught.
    """

    def __init__(
        self,
        in_features: int = 4,
        hidden: int = 8,
        out_features: int = 3,
        *,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        warm: bool = True,
        train: bool = True,
    ):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc1 = nn.Linear(in_features, hidden, dtype=dtype)
        self.bn = nn.BatchNorm1d(hidden, dtype=dtype)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(hidden, hidden, dtype=dtype)
        self.head = nn.Linear(hidden, out_features, dtype=dtype)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=dtype, device=g.device) * 0.5)
        if warm:
            x = torch.randn(16, in_features, generator=g, dtype=dtype, device=g.device)
            self.train()
            self(x).square().mean().backward()
        self.train(train)
        # one frozen parameter, so requires_grad changes are caught too
        self.fc2.bias.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.bn(self.fc1(x))))
        return torch.relu(self.fc2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
