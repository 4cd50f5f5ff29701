r"""The learning-rate range test: one short run with a linearly rising learning rate.

Smith, *Cyclical Learning Rates for Training Neural Networks*, WACV 2017, arXiv:1506.01186
(Section 3.3, "How can one estimate reasonable minimum and maximum boundary values?"), and Smith
& Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large Learning Rates*,
2017/2019, arXiv:1708.07120 (Section 4.1): train once while the learning rate rises linearly from
``lr_min`` to ``lr_max``, record a metric (test accuracy, or the loss) along the way, and read a
good maximum learning rate off the curve, here the learning rate at the peak of the smoothed
metric (``mode="max"``) or at its minimum (``mode="min"``, for a loss).

The run trains a **copy** of the model (the user's model, its buffers and modes are untouched)
through :func:`lossviz.train.fit`, with the rise done by ``torch.optim.lr_scheduler.LambdaLR``.

>>> import torch
>>> from lossviz import data, landscape, models, train
>>> x, y = data.two_moons(128, seed=0)
>>> net = models.MLP(2, (16,), 2, seed=0)
>>> res = landscape.lr_range_test(net, torch.nn.functional.cross_entropy, (x, y),
...                               train.accuracy(x, y), lr_max=2.0, steps=40, every=10)
>>> res.lrs.tolist()
[0.0, 0.5, 1.0, 1.5, 2.0]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import train
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_module

__all__ = ["LRRangeTest", "lr_range_test"]


@dataclass(frozen=True, repr=False)
class LRRangeTest(Result):
    """What :func:`lr_range_test` measured; ``.plot()`` draws the metric against the lr.

    Attributes
    ----------
    steps : int array
        Steps at which the metric was recorded (``0, every, 2 every, ..., steps``; fewer if the
        run diverged).
    lrs : float array
        The learning rate set at those steps, ``lr_min + (lr_max - lr_min) * step / steps`` (the
        update from step ``t`` to ``t + 1`` uses the value at ``t``).
    values, smoothed : float arrays
        The metric, and its centred moving average over ``smooth`` records (fewer at the ends).
    best_lr : float
        ``lrs`` at the extremum of ``smoothed`` (the maximum for ``mode="max"``).
    best_index : int
    mode : ``"max"`` | ``"min"``
    diverged : bool
        The loss became non-finite before ``lr_max`` was reached.
    """

    steps: np.ndarray
    lrs: np.ndarray
    values: np.ndarray
    smoothed: np.ndarray
    best_lr: float
    best_index: int
    mode: str
    diverged: bool

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw the metric and its smoothed curve against the lr, with the pick marked
        (:func:`lossviz.landscape.plot_lr_range_test`)."""
        from .plotting import plot_lr_range_test

        return plot_lr_range_test(self, backend=backend, ax=ax, **kw)


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    half = width // 2
    out = np.empty_like(values)
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out[i] = values[lo:hi].mean()
    return out


def lr_range_test(
    model: nn.Module,
    loss_fn: Callable,
    data,
    metric: Callable[[nn.Module], float],
    *,
    lr_min: float = 0.0,
    lr_max: float = 1.0,
    steps: int = 100,
    every: int = 10,
    smooth: int = 3,
    mode: str = "max",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    seed: int = 0,
) -> LRRangeTest:
    """Train a copy of ``model`` with SGD while the lr rises linearly; locate the best lr.

    Parameters
    ----------
    model, loss_fn, data
        As for :func:`lossviz.train.fit`; ``model`` itself is not changed.
    metric : callable(model) -> float
        Recorded every ``every`` steps, e.g. ``train.accuracy(x_test, y_test)``.
    lr_min, lr_max : float
        The learning rate of the first update and the one reached after ``steps`` updates
        (``0 <= lr_min < lr_max``).
    steps, every : int
        Length of the run and the recording interval (the last step is always recorded).
    smooth : int
        Width (in records) of the centred moving average the extremum is read from (1 = none).
    mode : ``"max"`` (a metric such as accuracy) | ``"min"`` (a loss)
    momentum, weight_decay, batch_size, seed
        Passed to ``torch.optim.SGD`` / :func:`lossviz.train.fit` (``seed`` fixes the batch order).
    """
    check_module(model, "model")
    if not callable(metric):
        raise TypeError(f"`metric` must be callable(model) -> float, got {type(metric).__name__}")
    lr_min = check_float(lr_min, "lr_min", minimum=0.0)
    lr_max = check_float(lr_max, "lr_max", positive=True)
    if not lr_max > lr_min:
        raise ValueError(f"`lr_max` must exceed `lr_min`, got lr_min={lr_min}, lr_max={lr_max}")
    steps = check_int(steps, "steps", minimum=1)
    every = check_int(every, "every", minimum=1)
    smooth = check_int(smooth, "smooth", minimum=1)
    check_choice(mode, "mode", ("max", "min"))
    momentum = check_float(momentum, "momentum", minimum=0.0)
    weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)

    net = copy.deepcopy(model)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr_max, momentum=momentum, weight_decay=weight_decay)
    span = lr_max - lr_min

    def ramp(o):
        return torch.optim.lr_scheduler.LambdaLR(
            o, lambda t: (lr_min + span * min(t, steps) / steps) / lr_max
        )

    rec = train.Recorder(every=every, metrics={"metric": metric})
    hist = train.fit(
        net,
        loss_fn,
        data,
        steps=steps,
        optimizer=opt,
        batch_size=batch_size,
        scheduler=ramp,
        callbacks=[rec],
        seed=seed,
        progress=False,
    )
    if "metric" not in hist.records:
        raise ValueError("the range test diverged at its first step: lower `lr_min`")
    at = np.array(hist.steps("metric"), dtype=int)
    values = np.array(hist.values("metric"), dtype=float)
    smoothed = _moving_average(values, smooth)
    finite = np.where(np.isfinite(smoothed), smoothed, -math.inf if mode == "max" else math.inf)
    best = int(np.argmax(finite) if mode == "max" else np.argmin(finite))
    lrs = lr_min + span * at / steps
    return LRRangeTest(
        steps=at,
        lrs=lrs,
        values=values,
        smoothed=smoothed,
        best_lr=float(lrs[best]),
        best_index=best,
        mode=mode,
        diverged=bool(hist.diverged),
    )
