"""Analytic views of a loss: over the plane of 3-class logit differences and against the
true-class margin, for a family of temperatures (or any other parameter).

:func:`logit_surface` and :func:`margin_curves` return frozen results; draw them with their
``.plot()`` (or :mod:`lossviz.losses.plotting`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._result import Result
from .._validate import check_float, check_int

__all__ = ["LossSurface", "logit_surface", "MarginCurves", "margin_curves"]

LossFn = Callable[..., torch.Tensor]


def _check_loss_fn(loss_fn: Any) -> LossFn:
    if not callable(loss_fn):
        raise TypeError(
            f"`loss_fn` must be callable(logits, targets, **params), got {type(loss_fn).__name__}"
        )
    return loss_fn


def _eval(loss_fn: LossFn, logits: torch.Tensor, targets: torch.Tensor, params: dict) -> np.ndarray:
    try:
        sig = inspect.signature(loss_fn)
        takes_reduction = "reduction" in sig.parameters or any(
            p.kind is p.VAR_KEYWORD for p in sig.parameters.values()
        )
    except (TypeError, ValueError):
        takes_reduction = True
    with torch.no_grad():
        if takes_reduction:
            out = loss_fn(logits, targets, reduction="none", **params)
        else:
            out = loss_fn(logits, targets, **params)
    out = out if isinstance(out, torch.Tensor) else torch.as_tensor(out, device=logits.device)
    if out.shape != (logits.shape[0],):
        raise ValueError(
            f"`loss_fn` must return one loss per sample (shape ({logits.shape[0]},)) with reduction='none', "
            f"got shape {tuple(out.shape)}"
        )
    return out.to(torch.float64).cpu().numpy()


@dataclass(frozen=True, repr=False)
class LossSurface(Result):
    """A loss over the plane of 3-class logit differences.

    ``d1``, ``d2`` (grid axes): the logits are ``(0, d1, d2)`` relative to the true class 0, so
    ``d_k = z_k - z_y``; ``values[i, j]`` is the loss at ``(d1[i], d2[j])`` (``indexing="ij"``).
    Shift-invariant losses depend on the logits only through these differences; for the others
    (e.g. LDR-KL with ``normalize=True``) the true-class logit is fixed at 0.
    """

    d1: np.ndarray
    d2: np.ndarray
    values: np.ndarray
    params: dict
    loss: str

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw with :func:`lossviz.losses.plotting.plot_loss_surface`."""
        from .plotting import plot_loss_surface

        return plot_loss_surface(self, backend=backend, ax=ax, **kw)


def logit_surface(
    loss_fn: LossFn,
    *,
    extent: float = 6.0,
    num: int = 61,
    dtype: torch.dtype = torch.float64,
    **params,
) -> LossSurface:
    """Evaluate ``loss_fn(logits, targets, reduction="none", **params)`` on a ``num x num`` grid
    of 3-class logits ``(0, d1, d2)`` with true class 0 and ``d1, d2`` in ``[-extent, extent]``.

    Examples
    --------
    >>> from lossviz.losses import ldr_kl, logit_surface
    >>> s = logit_surface(ldr_kl, num=5, tau=1.0)
    >>> s.values.shape
    (5, 5)
    """
    loss_fn = _check_loss_fn(loss_fn)
    extent = check_float(extent, "extent", positive=True)
    num = check_int(num, "num", minimum=2)
    axis = np.linspace(-extent, extent, num)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    logits = torch.tensor(
        np.stack([np.zeros(g1.size), g1.ravel(), g2.ravel()], axis=1), dtype=dtype, device="cpu"
    )
    targets = torch.zeros(g1.size, dtype=torch.long, device="cpu")
    values = _eval(loss_fn, logits, targets, params).reshape(num, num)
    return LossSurface(
        d1=axis, d2=axis.copy(), values=values, params=dict(params), loss=getattr(loss_fn, "__name__", "loss")
    )


@dataclass(frozen=True, repr=False)
class MarginCurves(Result):
    """Loss against the true-class margin ``m = z_y - max_{k != y} z_k`` (logits ``(m, 0, ..., 0)``).

    ``values[i, j]`` is the loss at ``params[i]`` (the value of ``param_name``) and ``margins[j]``.
    """

    margins: np.ndarray
    param_name: str
    params: np.ndarray
    values: np.ndarray
    num_classes: int
    loss: str

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw with :func:`lossviz.losses.plotting.plot_margin_curves`."""
        from .plotting import plot_margin_curves

        return plot_margin_curves(self, backend=backend, ax=ax, **kw)


def margin_curves(
    loss_fn: LossFn,
    values: Sequence[float],
    *,
    param_name: str = "tau",
    margins: Any = None,
    num_classes: int = 3,
    dtype: torch.dtype = torch.float64,
    **fixed,
) -> MarginCurves:
    """Loss of logits ``(m, 0, ..., 0)`` with true class 0, for each ``param_name`` in ``values``.

    Examples
    --------
    >>> from lossviz.losses import tempered_cross_entropy, margin_curves
    >>> c = margin_curves(tempered_cross_entropy, [0.1, 1.0, 10.0], margins=[-1.0, 0.0, 1.0])
    >>> c.values.shape
    (3, 3)
    """
    loss_fn = _check_loss_fn(loss_fn)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    m = np.linspace(-5.0, 5.0, 201) if margins is None else np.asarray(margins, dtype=np.float64)
    if m.ndim != 1 or m.size < 1 or not np.all(np.isfinite(m)):
        raise ValueError("`margins` must be a 1-D array of finite values")
    vals = np.asarray(values, dtype=np.float64).ravel()
    if vals.size == 0:
        raise ValueError("`values` must not be empty")
    logits = torch.zeros(m.size, num_classes, dtype=dtype, device="cpu")
    logits[:, 0] = torch.as_tensor(m, dtype=dtype, device="cpu")
    targets = torch.zeros(m.size, dtype=torch.long, device="cpu")
    out = np.stack([_eval(loss_fn, logits, targets, {**fixed, param_name: float(v)}) for v in vals])
    return MarginCurves(
        margins=m,
        param_name=param_name,
        params=vals,
        values=out,
        num_classes=num_classes,
        loss=getattr(loss_fn, "__name__", "loss"),
    )
