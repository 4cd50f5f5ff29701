r"""K03: feature learning at infinite width (NTK parametrisation vs muP) and learning-rate transfer.

Greg Yang, Edward J. Hu, "Feature Learning in Infinite-Width Neural Networks" (Tensor Programs IV),
ICML 2021, arXiv:2011.14522: under the NTK parametrisation the hidden features stop moving as the
width grows; under the maximal-update parametrisation (muP) they move by an amount of order one.

The learning-rate transfer shown beside it is the result of a later paper: Greg Yang, Edward J. Hu,
Igor Babuschkin, Szymon Sidor, Xiaodong Liu, David Farhi, Nick Ryder, Jakub Pachocki, Weizhu Chen,
Jianfeng Gao, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter
Transfer", 2022, arXiv:2203.03466 (muP's optimal learning rate is stable across widths; the standard
parametrisation's drifts).

:func:`best_log2_lr` is a robust definition of "the best learning rate" of a sweep: the vertex of a
parabola through the lowest point of the init-averaged log-loss and its two neighbours (in log2 of
the learning rate), instead of the argmin of one noisy run; diverged runs count as infinite loss.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import ntk, train
from .._validate import check_int
from ..losses import half_mse

__all__ = ["train_mlp", "best_log2_lr"]


def train_mlp(param: str, width: int, lr: float, steps: int, seed: int, x, y, *, batch_size=None, dim=None):
    """Train ``parametrize((d, width, width, 1), param, w_std=sqrt 2, bias=False)`` with SGD.

    Per-tensor learning rates come from :meth:`lossviz.ntk.ParametrizedMLP.param_groups`; training
    runs through :func:`lossviz.train.fit`. Returns ``(feature_change, final_loss)``:
    ``||h_1(theta_T) - h_1(theta_0)||_F / ||h_1(theta_0)||_F`` of the first hidden layer on ``x``, and
    the mean training loss over the last 10 steps (``inf`` if training diverged).

    Examples
    --------
    >>> x, y = torch.randn(32, 4), torch.randn(32, 1)
    >>> change, loss = train_mlp("mup", 64, 0.1, 5, 0, x, y)
    >>> bool(change > 0 and np.isfinite(loss))
    True
    """
    d = x.shape[1] if dim is None else dim
    net = ntk.parametrize((d, width, width, 1), param, w_std=2**0.5, bias=False, seed=seed, device=x.device)
    h0 = net.hidden(x)[0].detach()
    hist = train.fit(
        net, half_mse, (x, y), steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False,
        optimizer=lambda _: torch.optim.SGD(net.param_groups(lr), lr=lr), divergence_threshold=1e6,
    )  # fmt: skip
    with torch.no_grad():
        change = float((net.hidden(x)[0] - h0).norm() / h0.norm())
    loss = float("inf") if hist.diverged else float(np.mean(hist.loss[-10:]))
    return change, loss


def best_log2_lr(log2_lrs, losses) -> float:
    """The best learning rate of a sweep, in log2 units, robust to the noise of one run.

    ``losses`` is ``(inits, L)`` (or ``(L,)``) final losses on the grid ``log2_lrs`` (evenly
    spaced); non-finite entries (diverged runs) count as ``+inf``. The log-losses are averaged over
    inits, the grid minimum ``i`` is found, and if it is interior a parabola through ``i - 1, i,
    i + 1`` gives the vertex (clipped to ``[i - 1, i + 1]``); at an edge the edge is returned.

    Examples
    --------
    >>> grid = np.arange(6.0)
    >>> round(best_log2_lr(grid, np.exp((grid - 2.3) ** 2)), 6)
    2.3
    >>> best_log2_lr(grid, [[1.0, 0.5, 0.2, np.inf, np.inf, np.inf]])
    2.0
    """
    g = np.asarray(log2_lrs, dtype=float)
    L = np.atleast_2d(np.asarray(losses, dtype=float))
    if L.shape[1] != g.size:
        raise ValueError(f"`losses` has {L.shape[1]} learning rates but `log2_lrs` has {g.size}")
    check_int(g.size, "len(log2_lrs)", minimum=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(np.isfinite(L) & (L > 0), np.log(L), np.inf).mean(0)
    if not np.isfinite(ll).any():
        raise ValueError("every learning rate diverged: no best learning rate")
    i = int(np.argmin(ll))
    step = float(g[1] - g[0]) if g.size > 1 else 1.0
    if 0 < i < g.size - 1 and np.isfinite(ll[i - 1]) and np.isfinite(ll[i + 1]):
        a, b, c = ll[i - 1], ll[i], ll[i + 1]
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den > 0 else 0.0
        return float(g[i] + step * np.clip(off, -1.0, 1.0))
    return float(g[i])
