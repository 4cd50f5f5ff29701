r"""Loss on the straight path between two models, and the barrier on it.

.. math:: L(\alpha) = L\big((1-\alpha)\theta_A + \alpha\theta_B\big), \qquad
          B = \max_\alpha \big[L(\alpha) - ((1-\alpha) L(0) + \alpha L(1))\big],

with ``alpha = linspace(0, 1, steps)`` including both end points (the end models themselves).
Each point is evaluated by :func:`lossviz._model.mean_loss` (metrics on the same forward pass).

References
----------
Ian J. Goodfellow, Oriol Vinyals, Andrew M. Saxe, "Qualitatively characterizing neural network
optimization problems", ICLR 2015, arXiv:1412.6544 (linear interpolation between two models).
Jonathan Frankle, Gintare Karolina Dziugaite, Daniel M. Roy, Michael Carbin, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis", ICML 2020, arXiv:1912.05671 (the barrier).
Keller Jordan, Hanie Sedghi, Olga Saukh, Rahim Entezari, Behnam Neyshabur, "REPAIR:
REnormalizing Permuted Activations for Interpolation Repair", ICLR 2023, arXiv:2211.08403
(recomputing BatchNorm statistics along the path).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._model import buffers_of, call_model, check_model_and_loss, collate, eval_mode, parameters_of
from .._result import Result
from .._validate import check_choice, check_finite_parameters, check_int, check_module
from ._metrics import MetricFn, check_metrics, evaluate

__all__ = ["Interpolation", "interpolate", "reset_bn"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, repr=False)
class Interpolation(Result):
    r"""Loss along the straight path ``(1 - alpha) theta_A + alpha theta_B``, ``alpha in [0, 1]``.

    ``barrier = max_alpha [L(alpha) - ((1 - alpha) L(0) + alpha L(1))]`` (Frankle et al. 2020),
    attained at ``alphas[barrier_index]``; ``alphas[0] == 0`` and ``alphas[-1] == 1`` are the two
    end models themselves (``loss[0]`` is model A's own loss, also with ``bn="recompute"``). ``bn`` records the BatchNorm buffer policy.
    """

    alphas: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray]
    barrier: float
    barrier_index: int
    bn: str
    diverged: np.ndarray
    evaluations: int
    seconds: float

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_interpolation` (``ax=``: matplotlib)."""
        from .plotting import plot_interpolation

        return plot_interpolation(self, backend=backend, ax=ax, **kw)


def _bn_modules(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _check_same_architecture(model_a, model_b):
    pa, pb = dict(model_a.named_parameters()), dict(model_b.named_parameters())
    if list(pa) != list(pb):
        raise ValueError(
            "`model_b` has different parameters than `model_a`: "
            f"{sorted(set(pa) ^ set(pb))[:4] or 'same names in a different order'}"
        )
    for k in pa:
        if pa[k].shape != pb[k].shape or pa[k].dtype != pb[k].dtype:
            raise ValueError(
                f"`model_b` parameter {k!r} has shape {tuple(pb[k].shape)} / {pb[k].dtype}, but "
                f"`model_a` has {tuple(pa[k].shape)} / {pa[k].dtype}"
            )
    ba, bb = dict(model_a.named_buffers()), dict(model_b.named_buffers())
    if list(ba) != list(bb) or any(ba[k].shape != bb[k].shape for k in ba):
        raise ValueError("`model_b` has different buffers (e.g. BatchNorm statistics) than `model_a`")


def _recompute_bn(model, loss_fn, batches, params, buffers):
    """Fresh BatchNorm statistics of ``model`` at ``params`` over ``batches`` (cumulative mean).

    Only BatchNorm modules are switched to train mode (Dropout stays off); the statistics are
    written into copies; every BatchNorm's ``momentum`` is restored.
    """
    bns = _bn_modules(model)
    fresh = {}
    for name, b in buffers.items():
        if name.endswith("running_mean"):
            fresh[name] = torch.zeros_like(b)
        elif name.endswith("running_var"):
            fresh[name] = torch.ones_like(b)
        elif name.endswith("num_batches_tracked"):
            fresh[name] = torch.zeros_like(b)
        else:
            fresh[name] = b.clone()
    saved = [(m, m.momentum, m.training) for m in bns]
    try:
        for m in bns:
            m.momentum = None  # cumulative moving average over the batches
            m.train(True)
        state = dict(params)
        state.update(fresh)
        with torch.no_grad():
            for x, _, _ in batches.stream(weights=False):
                call_model(model, x, state, output_fn=None, name=batches.name)
    finally:
        for m, mom, tr in saved:
            m.momentum = mom
            m.training = tr
    return fresh


def reset_bn(model: nn.Module, data) -> nn.Module:
    r"""A copy of ``model`` with its BatchNorm running statistics reset and recomputed on ``data``.

    Every BatchNorm's ``running_mean``/``running_var`` is reset (zeros/ones, ``num_batches_tracked
    = 0``) and re-estimated as the cumulative average over the batches of ``data`` (any form
    :func:`lossviz._model.collate` takes; targets are ignored), with only the BatchNorm modules in
    train mode (Dropout stays off), under ``torch.no_grad()``. A merged model (e.g. the midpoint of
    two models aligned by :func:`weight_matching`) carries stale statistics; recomputing them is
    what Jordan et al. 2023 (REPAIR, arXiv:2211.08403) and Ainsworth et al. 2023 (Git Re-Basin,
    arXiv:2209.04836) do before evaluating it. ``interpolate(..., bn="recompute")`` does the same
    at every interior point of the path. ``model`` is left unchanged; the copy keeps its
    ``training`` flags and ``momentum``. A model without BatchNorm is returned as a plain copy.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    >>> x = torch.randn(64, 3)
    >>> fresh = reset_bn(net, (x, torch.zeros(64)))
    >>> torch.allclose(fresh[1].running_mean, net[0](x).mean(0), atol=1e-6)
    True
    """
    import copy

    check_module(model, "model")
    batches = collate(data, "data").on(model)
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.grad = None
    if not _bn_modules(out):
        return out
    params, buffers = parameters_of(out), buffers_of(out)
    with eval_mode(out):
        fresh = _recompute_bn(out, None, batches, params, buffers)
    state = dict(out.named_buffers())
    with torch.no_grad():
        for k, v in fresh.items():
            state[k].copy_(v)
    return out


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data,
    steps: int = 21,
    *,
    bn: str = "interpolate",
    bn_data=None,
    metrics: Mapping[str, MetricFn] | None = None,
    progress: bool = False,
) -> Interpolation:
    r"""Loss on the straight line between two models, :math:`L((1-\alpha)\theta_A + \alpha\theta_B)`.

    ``alphas = linspace(0, 1, steps)`` includes both end points (``alpha = 0`` is model A exactly,
    ``alpha = 1`` model B exactly; loss-landscapes 3.0.6 skips ``alpha = 0``). The barrier is

    .. math:: B = \max_\alpha \big[L(\alpha) - ((1-\alpha) L(0) + \alpha L(1))\big]

    (Frankle et al. 2020, arXiv:1912.05671; Ainsworth et al. 2023, arXiv:2209.04836).

    Parameters
    ----------
    model_a, model_b : nn.Module
        Same architecture (parameter and buffer names, shapes and dtypes); both are left
        unchanged. The forward of ``model_a`` is used.
    loss_fn, data : see :func:`line`
    steps : int, >= 2
    bn : ``"interpolate"`` | ``"recompute"``
        BatchNorm buffers along the path: interpolate the running statistics like parameters
        (default), or recompute them at every alpha from ``bn_data`` (default ``data``) with the
        model in train mode for BatchNorm only (the "reset BN statistics" fix of Jordan et al.
        2023, REPAIR, arXiv:2211.08403). Other buffers are taken from model A. The end points
        are the end models themselves in both cases (their own running statistics), so
        ``loss[0]`` is model A's own loss and ``loss[-1]`` model B's.
    metrics : dict name -> callable(outputs, targets), e.g. ``{"accuracy": accuracy_metric}``

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> x, y = torch.randn(16, 2), torch.randn(16, 1)
    >>> res = landscape.interpolate(a, b, torch.nn.functional.mse_loss, (x, y), steps=5)
    >>> res.alphas.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    t0 = time.perf_counter()
    check_model_and_loss(model_a, loss_fn, name="model_a")
    check_module(model_b, "model_b")
    check_finite_parameters(model_b, "model_b")
    _check_same_architecture(model_a, model_b)
    steps = check_int(steps, "steps", minimum=2)
    check_choice(bn, "bn", ("interpolate", "recompute"))
    batches = collate(data, "data").on(model_a)
    bn_batches = batches if bn_data is None else collate(bn_data, "bn_data").on(model_a)
    metrics = check_metrics(metrics, loss_fn)
    alphas = np.linspace(0.0, 1.0, steps)
    alphas[0], alphas[-1] = 0.0, 1.0
    pa, pb = parameters_of(model_a), parameters_of(model_b)
    ba, bb = buffers_of(model_a), buffers_of(model_b)
    losses, mvals = [], {k: [] for k in metrics}
    from tqdm.auto import tqdm

    with eval_mode(model_a), torch.no_grad():
        for a in tqdm(alphas, desc="interpolate", disable=not progress, leave=False):
            a = float(a)
            params = {k: torch.lerp(pa[k], pb[k], a) for k in pa}
            bufs = {}
            for k in ba:
                if ba[k].is_floating_point():
                    bufs[k] = torch.lerp(ba[k], bb[k], a)
                else:
                    bufs[k] = (ba[k] if a < 0.5 else bb[k]).clone()
            if bn == "recompute" and _bn_modules(model_a) and 0.0 < a < 1.0:
                bufs = _recompute_bn(model_a, loss_fn, bn_batches, params, bufs)
            loss, vals = evaluate(model_a, loss_fn, batches, metrics, params, bufs)
            losses.append(float(loss))
            for k, v in vals.items():
                mvals[k].append(float(v))
    loss = np.asarray(losses)
    chord = (1 - alphas) * loss[0] + alphas * loss[-1]
    gap = np.where(np.isfinite(loss), loss - chord, np.inf)
    k = int(np.argmax(gap))
    return Interpolation(
        alphas,
        loss,
        {k2: np.asarray(v) for k2, v in mvals.items()},
        float(gap[k]),
        k,
        bn,
        ~np.isfinite(loss),
        steps,
        time.perf_counter() - t0,
    )
