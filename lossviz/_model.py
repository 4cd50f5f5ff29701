"""Working on a user's model without changing it, and handling data batches.

Two rules from CONVENTIONS.md section 3 live here:

* the model is evaluated functionally (``torch.func.functional_call``) with tensors that are
  *not* its parameters, so parameters, ``requires_grad`` and ``.grad`` are never touched;
* mode flags are switched only inside :func:`eval_mode`/:func:`preserved`, which restore every
  submodule's ``.training`` flag (and, for :func:`preserved`, grads, ``requires_grad`` and
  buffers) in ``finally``.

Data is given as a tuple of tensors ``(inputs, targets)`` or an iterable of such batches and is
collated once by :func:`collate`; batches are weighted by their sample count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ._validate import check_module, check_tensor

__all__ = [
    "eval_mode",
    "preserved",
    "parameters_of",
    "buffers_of",
    "has_batchnorm",
    "train_mode_batchnorm",
    "Batches",
    "collate",
    "BatchLoss",
    "loss_scalar",
    "batch_value",
    "mean_loss",
    "model_dtype_device",
]


@contextlib.contextmanager
def eval_mode(model: nn.Module, mode: bool = False) -> Iterator[nn.Module]:
    """Temporarily set ``model.train(mode)``; restore every submodule's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        if any(flag != mode for _, flag in flags):  # the recursive train() is skipped when a no-op
            model.train(mode)
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def preserved(model: nn.Module, *, values: bool = False) -> Iterator[nn.Module]:
    """Snapshot and restore model state that code inside the block may touch.

    Restores ``.training`` of every submodule, ``requires_grad`` and ``.grad`` of every parameter
    and the contents of every buffer. With ``values=True`` parameter values are restored as well
    (use it only around code that must write into parameters, e.g. a third-party routine).
    """
    flags = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    req = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    grad_vals = [None if g is None else g.detach().clone() for g in grads]
    bufs = [(b, b.detach().clone()) for b in model.buffers()]
    vals = [p.detach().clone() for p in params] if values else None
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, saved in bufs:
                b.copy_(saved)
            for g, v in zip(grads, grad_vals):
                if g is not None:
                    g.copy_(v)  # backward accumulates into the same tensor in place
            if vals is not None:
                for p, v in zip(params, vals):
                    p.copy_(v)
        for p, r, g in zip(params, req, grads):
            p.requires_grad_(r)
            p.grad = g
        for m, flag in flags:
            m.training = flag


def parameters_of(
    model: nn.Module,
    *,
    include: Callable[[str, torch.Tensor], bool] | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Detached copies-by-reference of the model's named parameters, for ``functional_call``.

    The returned tensors share storage with the model but are detached, so autograd through them
    never writes ``.grad`` into the model. ``dtype`` casts (making copies).
    """
    out = {}
    for name, p in model.named_parameters():
        if include is not None and not include(name, p):
            continue
        t = p.detach()
        out[name] = t.to(dtype) if dtype is not None else t
    return out


def buffers_of(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Cloned named buffers (so running statistics in the model cannot be updated)."""
    out = {}
    for name, b in model.named_buffers():
        t = b.detach().clone()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t
    return out


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train_mode_batchnorm(model: nn.Module) -> list[str]:
    """Names of BatchNorm submodules that are in training mode."""
    return [
        n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of the model's first floating-point parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


@dataclass(frozen=True)
class Batches:
    """Data collated once: a tuple of ``(inputs, targets)`` batches with sample weights.

    ``weights[i] = len(batch i) / total``: a mean loss over the data set is
    ``sum_i weights[i] * mean_loss(batch i)``, whatever the batch sizes.
    """

    batches: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    sizes: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.sizes)

    @property
    def weights(self) -> tuple[float, ...]:
        t = self.total
        return tuple(s / t for s in self.sizes)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def cat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All batches concatenated into one ``(inputs, targets)`` pair."""
        if len(self.batches) == 1:
            return self.batches[0]
        return (torch.cat([b[0] for b in self.batches]), torch.cat([b[1] for b in self.batches]))

    def to(self, dtype: torch.dtype | None = None, device: torch.device | None = None) -> Batches:
        """Cast floating inputs/targets (integer targets keep their dtype)."""

        def cast(t):
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Batches(tuple((cast(x), cast(y)) for x, y in self.batches), self.sizes)


def _is_pair(obj) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj)


def collate(data, name: str = "data") -> Batches:
    """Turn ``(inputs, targets)`` or an iterable of such batches into :class:`Batches`.

    Raises ``ValueError`` for empty data, inputs/targets of different lengths or non-finite
    floating inputs; ``TypeError`` for anything that is not tensors.
    """
    if isinstance(data, Batches):
        return data
    if _is_pair(data):
        items = [tuple(data)]
    elif isinstance(getattr(data, "x", None), torch.Tensor) and isinstance(
        getattr(data, "y", None), torch.Tensor
    ):
        items = [(data.x, data.y)]  # lossviz.data.Dataset
    elif isinstance(data, (torch.Tensor, Mapping, str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            f"`{name}` must be a tuple (inputs, targets) of tensors or an iterable of such "
            f"batches, got {type(data).__name__}"
        )
    else:
        items = []
        for i, b in enumerate(data):
            if not _is_pair(b):
                raise TypeError(
                    f"`{name}` batch {i} must be a pair (inputs, targets) of tensors, got {type(b).__name__}"
                )
            items.append(tuple(b))
    if not items:
        raise ValueError(f"`{name}` is empty: no batches")
    sizes = []
    for i, (x, y) in enumerate(items):
        check_tensor(x, f"{name} inputs (batch {i})", nonempty=True)
        check_tensor(y, f"{name} targets (batch {i})", nonempty=False)
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"`{name}` batch {i}: inputs and targets need a batch dimension")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"`{name}` batch {i}: {x.shape[0]} inputs but {y.shape[0]} targets")
        sizes.append(int(x.shape[0]))
    return Batches(tuple(items), tuple(sizes))


class BatchLoss:
    """A loss that sees the model and the whole batch: ``fn(model, (inputs, targets)) -> scalar``.

    Made by :func:`lossviz.train.batch_loss`. Use it for objectives that are not
    ``loss_fn(outputs, targets)``: two views of each sample (contrastive), per-sample temperatures
    looked up by sample index, regularised or physics-informed losses. ``targets`` may be any
    per-sample tensor (labels, a second view, sample indices).
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[nn.Module, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable(model, batch) -> scalar, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        return self.fn(model, batch)

    def __repr__(self) -> str:
        return f"BatchLoss({getattr(self.fn, '__name__', repr(self.fn))})"


def loss_scalar(value, name: str = "loss_fn") -> torch.Tensor:
    """The one scalar check: ``value`` as a 0-dim tensor, or a ``ValueError`` naming ``name``."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(
            f"`{name}` must return a scalar tensor (a mean over the batch), got "
            + (f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__)
        )
    return value.reshape(())


def batch_value(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, state=None) -> torch.Tensor:
    """``loss_fn`` on one batch, as a checked scalar.

    ``state`` (parameters and buffers by name) evaluates the model functionally instead of with
    its own tensors; the model itself is never changed.
    """
    if isinstance(loss_fn, BatchLoss):
        if state is None:
            return loss_scalar(loss_fn(model, (x, y)))
        with torch.nn.utils.stateless._reparametrize_module(model, state):
            return loss_scalar(loss_fn(model, (x, y)))
    out = model(x) if state is None else torch.func.functional_call(model, state, (x,))
    return loss_scalar(loss_fn(out, y))


def mean_loss(
    model: nn.Module,
    loss_fn,
    batches: Batches,
    params: Mapping[str, torch.Tensor] | None = None,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""The one loss evaluator: the sample-weighted mean of ``loss_fn`` over ``batches``.

    .. math:: L = \sum_b \frac{n_b}{N}\, \ell_b, \qquad \ell_b = \text{loss\_fn}(f(x_b), y_b)

    so the result equals the loss on all data at once whatever the batch sizes (for mean
    reductions). ``loss_fn(outputs, targets)`` must return a scalar mean over the batch (checked);
    a :class:`BatchLoss` is called as ``fn(model, (x, y))``. With ``params`` the model is evaluated
    functionally with those tensors (and ``buffers``, default its own); without, with its own.
    The model must already be in the mode wanted (see :func:`eval_mode`).
    """
    state = None
    if params is not None:
        state = dict(params)
        state.update(buffers_of(model) if buffers is None else buffers)
    total = None
    for (x, y), w in zip(batches.batches, batches.weights):
        loss = batch_value(model, loss_fn, x, y, state)
        total = loss * w if total is None else total + loss * w
    return total


def check_model_and_loss(model, loss_fn) -> None:
    """``model`` an ``nn.Module`` with parameters and ``loss_fn`` callable (else a clear error)."""
    check_module(model, "model")
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable loss_fn(outputs, targets), got {type(loss_fn).__name__}")
