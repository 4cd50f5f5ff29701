r"""The maximal initial learning rate: the largest constant lr from which a fresh model trains.

Iyer, Hanin & Rolnick, *Maximal Initial Learning Rates in Deep ReLU Networks*, ICML 2023,
arXiv:2212.07295: the maximal initial learning rate :math:`\eta^*` is the
largest constant learning rate at which a randomly initialised network reaches a threshold of a
metric (test accuracy) within a budget of steps. Here it is found by a bracket-and-bisect search
on a log grid:

1. from ``lr_start``, multiply by ``factor`` while the run trains (or divide while it does not)
   until a bracket :math:`[\eta_{lo}, \eta_{hi}]` with :math:`\eta_{lo}` training and
   :math:`\eta_{hi} = \text{factor}\cdot\eta_{lo}` failing is found, within ``[lr_min, lr_max]``;
2. ``refine`` bisections of :math:`\log\eta` inside the bracket (resolution
   :math:`\text{factor}^{2^{-\text{refine}}}`); :math:`\eta^*` is the largest lr that trained.

With ``lr_start = lr_max`` this is the protocol "from the top, halve until it trains, then bisect";
a ``lr_start`` near the answer (the :math:`\eta^*` of a neighbouring model) saves runs and, when
"trains" is monotone in the lr and ``lr_start`` sits on the same ``factor`` grid, gives the same
answer. "Trains" means: no non-finite loss or loss above ``divergence_threshold`` during the run,
and ``metric(model) >= target`` after ``steps`` updates (``<=`` with ``mode="min"``).

Every run trains a **copy** of the model from the same initialisation through
:func:`lossviz.train.fit` with the same batch order (``seed``); the user's model is untouched.

>>> import torch
>>> from lossviz import data, landscape, models, train
>>> x, y = data.two_moons(128, seed=0)
>>> net = models.MLP(2, (16,), 2, seed=0)
>>> res = landscape.max_trainable_lr(net, torch.nn.functional.cross_entropy, (x, y),
...                                  train.accuracy(x, y), target=0.8, steps=30, lr_max=16.0)
>>> bool(res.found), bool(res.lr == max(res.lrs[res.trained]))
(True, True)
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
from .._validate import check_choice, check_float, check_int, check_module

__all__ = ["MaxLRSearch", "max_trainable_lr"]


@dataclass(frozen=True)
class MaxLRSearch:
    """What :func:`max_trainable_lr` measured (a plain frozen record; no ``.plot``).

    Attributes
    ----------
    lr : float
        :math:`\\eta^*`, the largest learning rate tried that trained (``nan`` if none did).
    bracket : (float, float)
        The final ``(lo, hi)``: ``lo`` trained, ``hi`` failed (``nan`` for a missing side: no lr
        trained, or ``lr_max`` itself trained).
    lrs, values : float arrays
        Every learning rate tried, in the order tried, and the metric after its run (``nan``
        when the run diverged).
    trained, diverged : bool arrays
        Whether each run trained, and whether it stopped on a non-finite or too large loss.
    found : bool
        Both sides of the bracket were found (``lr_min`` and ``lr_max`` were not hit).
    target, mode, steps, factor, refine : the settings of the search.
    """

    lr: float
    bracket: tuple[float, float]
    lrs: np.ndarray
    values: np.ndarray
    trained: np.ndarray
    diverged: np.ndarray
    found: bool
    target: float
    mode: str
    steps: int
    factor: float
    refine: int

    @property
    def runs(self) -> int:
        """Number of training runs the search used."""
        return len(self.lrs)


def _sgd(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)


def max_trainable_lr(
    model: nn.Module,
    loss_fn: Callable,
    data,
    metric: Callable[[nn.Module], float],
    *,
    target: float,
    steps: int,
    mode: str = "max",
    lr_start: float | None = None,
    lr_min: float = 2.0**-12,
    lr_max: float = 2.0**4,
    factor: float = 2.0,
    refine: int = 4,
    optimizer: Callable[[nn.Module, float], torch.optim.Optimizer] | None = None,
    batch_size: int | None = None,
    divergence_threshold: float = 1e3,
    seed: int = 0,
) -> MaxLRSearch:
    r"""The largest constant lr at which a copy of ``model`` reaches ``target`` within ``steps``.

    Iyer, Hanin & Rolnick, ICML 2023, arXiv:2212.07295 (the maximal initial learning rate
    :math:`\eta^*`). The search is described in the module docstring.

    Parameters
    ----------
    model, loss_fn, data
        As for :func:`lossviz.train.fit`; ``model`` itself is not changed (every run trains a
        fresh copy of it).
    metric : callable(model) -> float
        Read once after the ``steps`` updates, e.g. ``train.accuracy(x_test, y_test)``.
    target : float
        The threshold: a run trains if ``metric >= target`` (``mode="max"``) or
        ``metric <= target`` (``mode="min"``, e.g. a loss) and it never diverged.
    steps : int
        The step budget of every run.
    lr_start : float, optional
        First lr tried (default ``lr_max``), clipped into ``[lr_min, lr_max]``.
    lr_min, lr_max : float
        The search range (``0 < lr_min < lr_max``); the bracket is never extended beyond it.
    factor : float
        Bracket growth factor (> 1); the bracket is ``[lo, factor * lo]``.
    refine : int
        Number of bisections of ``log lr`` inside the bracket (0 = none).
    optimizer : callable(model, lr) -> torch optimiser, optional
        Builds the optimiser of each run from the copy being trained; default plain SGD on every
        trainable parameter. This is how per-layer learning rates are expressed: param groups
        with a fixed lr for some layers and the searched ``lr`` for the rest, e.g. an input layer
        kept at 0.01 (Iyer et al.'s condition for the power law)::

            def sgd_slow_input(net, lr):
                first = list(net.layers[0].parameters())
                rest = [p for p in net.parameters() if all(p is not q for q in first)]
                return torch.optim.SGD([{"params": first, "lr": 0.01}, {"params": rest}], lr=lr)

        It must build the optimiser over the parameters of the ``model`` it is given (the copy);
        an optimiser holding a parameter of the original ``model`` raises ``ValueError`` before
        any step is taken (it would train the user's model).
    batch_size, seed
        Passed to :func:`lossviz.train.fit` (``seed`` fixes the batch order of every run).
    divergence_threshold : float
        A run whose loss exceeds it (or is non-finite) stops early and counts as not trained.
    """
    check_module(model, "model")
    if not callable(metric):
        raise TypeError(f"`metric` must be callable(model) -> float, got {type(metric).__name__}")
    target = check_float(target, "target")
    steps = check_int(steps, "steps", minimum=1)
    check_choice(mode, "mode", ("max", "min"))
    lr_min = check_float(lr_min, "lr_min", positive=True)
    lr_max = check_float(lr_max, "lr_max", positive=True)
    if not lr_max > lr_min:
        raise ValueError(f"`lr_max` must exceed `lr_min`, got lr_min={lr_min}, lr_max={lr_max}")
    lr_start = lr_max if lr_start is None else check_float(lr_start, "lr_start", positive=True)
    lr_start = min(max(lr_start, lr_min), lr_max)
    factor = check_float(factor, "factor", minimum=1.0 + 1e-12)
    refine = check_int(refine, "refine", minimum=0)
    divergence_threshold = check_float(divergence_threshold, "divergence_threshold", positive=True)
    if optimizer is not None and not callable(optimizer):
        raise TypeError(
            f"`optimizer` must be callable(model, lr) -> optimiser, got {type(optimizer).__name__}"
        )
    build = _sgd if optimizer is None else optimizer

    lrs: list[float] = []
    values: list[float] = []
    trained: list[bool] = []
    diverged: list[bool] = []

    def run(lr: float) -> bool:
        net = copy.deepcopy(model)
        opt = build(net, lr)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"`optimizer` must return a torch.optim.Optimizer, got {type(opt).__name__}")
        own = {id(p) for p in net.parameters()}
        if any(id(p) not in own for g in opt.param_groups for p in g["params"]):
            raise ValueError(
                "`optimizer` returned an optimiser over parameters that are not those of the "
                "model copy it was given (build it from its `model` argument, not a closure over "
                "the original model)"
            )
        hist = train.fit(
            net,
            loss_fn,
            data,
            steps=steps,
            optimizer=opt,
            batch_size=batch_size,
            divergence_threshold=divergence_threshold,
            seed=seed,
            progress=False,
        )
        div = bool(hist.diverged)
        value = math.nan if div else float(metric(net))
        ok = (not div) and (value >= target if mode == "max" else value <= target)
        lrs.append(lr)
        values.append(value)
        trained.append(ok)
        diverged.append(div)
        return ok

    lo = hi = math.nan
    log_f = math.log(factor)
    lr = lr_start
    if run(lr):
        lo = lr
        while lo * factor <= lr_max * (1 + 1e-12):
            if run(lo * factor):
                lo = lo * factor
            else:
                hi = lo * factor
                break
    else:
        hi = lr
        while hi / factor >= lr_min * (1 - 1e-12):
            if run(hi / factor):
                lo = hi / factor
                break
            hi = hi / factor
    found = not (math.isnan(lo) or math.isnan(hi))
    if found:
        a, b = math.log(lo), math.log(hi)
        for _ in range(refine):
            mid = 0.5 * (a + b)
            if run(math.exp(mid)):
                a = mid
            else:
                b = mid
            if b - a < 1e-12 * log_f:
                break
        lo, hi = math.exp(a), math.exp(b)
        # exact grid values at the ends (exp(log(x)) may differ from x in the last bit)
        lo = next((x for x in lrs if math.isclose(x, lo, rel_tol=1e-12)), lo)
        hi = next((x for x in lrs if math.isclose(x, hi, rel_tol=1e-12)), hi)
    return MaxLRSearch(
        lr=float(lo),
        bracket=(float(lo), float(hi)),
        lrs=np.array(lrs, dtype=float),
        values=np.array(values, dtype=float),
        trained=np.array(trained, dtype=bool),
        diverged=np.array(diverged, dtype=bool),
        found=found,
        target=target,
        mode=mode,
        steps=steps,
        factor=factor,
        refine=refine,
    )
