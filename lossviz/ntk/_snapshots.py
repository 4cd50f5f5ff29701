r"""Empirical-NTK snapshots during training: how far the kernel moves (lazy versus rich).

In the lazy regime the kernel stays near its initial value, ``||K_t - K_0|| / ||K_0|| -> 0`` as the
width or the output scale grows (Jacot et al. 2018, arXiv:1806.07572; Chizat, Oyallon & Bach, "On
Lazy Training in Differentiable Programming", NeurIPS 2019, arXiv:1812.07956); in the rich regime it
moves and aligns with the target (kernel-target alignment grows: Baratin et al., "Implicit
Regularization via Neural Feature Alignment", AISTATS 2021, arXiv:2008.00938).
:class:`NTKSnapshots` is a :class:`lossviz.train.Callback`: it follows the one callback contract
(``every``/``at``/``final``; the final step of training is always recorded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_choice, check_tensor
from ..train import Callback
from ._empirical import METHODS, empirical
from ._kernels import _targets, alignment, kernel_distance, relative_change

__all__ = ["SnapshotResult", "NTKSnapshots"]


@dataclass(frozen=True, repr=False)
class SnapshotResult(Result):
    """Empirical-NTK snapshots over training with lazy-versus-rich diagnostics.

    ``kernels`` ``(S, n, n)`` float64; ``relative_change[s] = ||K_s - K_0|| / ||K_0||``;
    ``distance[s] = kernel_distance(K_0, K_s)``; ``alignment[s] = A(K_s, y)`` (if targets given);
    ``change_alignment[s] = A(K_s - K_0, y)`` (target alignment of the kernel change).
    """

    steps: np.ndarray
    kernels: torch.Tensor
    relative_change: np.ndarray
    distance: np.ndarray
    alignment: np.ndarray | None
    change_alignment: np.ndarray | None

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Kernel change and alignment over training (:func:`lossviz.ntk.plotting.plot_snapshots`)."""
        from .plotting import plot_snapshots

        return plot_snapshots(self, backend=backend, ax=ax, **kw)


class NTKSnapshots(Callback):
    """A :class:`lossviz.train.Callback` that stores the empirical NTK on fixed inputs.

    At steps ``0, every, 2 every, ...``, the steps in ``at`` and the final step of training
    (``final=True``, the default: the one callback contract) it computes
    ``empirical(model, x, output=output)`` (the model is not changed) and records it under
    ``history.records[name]``. :meth:`result` summarises the snapshots: kernel change relative
    to the first snapshot (large in the rich regime, small in the lazy regime) and kernel-target
    alignment.

    Examples
    --------
    >>> import torch
    >>> from lossviz import ntk, train
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    >>> x, y = torch.randn(16, 2), torch.randn(16, 1)
    >>> snaps = ntk.NTKSnapshots(x, every=5, targets=y)
    >>> mse = lambda out, t: (out - t).pow(2).mean()
    >>> _ = train.fit(net, mse, (x, y), steps=7, lr=0.1, callbacks=[snaps], progress=False)
    >>> snaps.result().steps.tolist()
    [0, 5, 7]
    """

    def __init__(
        self,
        x: torch.Tensor,
        *,
        every: int | None = 1,
        at: Iterable[int] | None = None,
        final: bool = True,
        targets: torch.Tensor | None = None,
        output: str = "trace_sum",
        method: str = "auto",
        name: str = "ntk",
    ):
        at = None if at is None else tuple(at)
        if every is None and not at:
            raise ValueError("give `every` or `at` (or both)")
        super().__init__(every, at=at, final=final)
        self.x = check_tensor(x, "x", floating=True)
        check_choice(output, "output", ("trace_sum", "trace_mean"))
        check_choice(method, "method", METHODS)
        self.targets = None if targets is None else _targets(targets, self.x.shape[0], "targets")
        self.output, self.method, self.name = output, method, name
        self.steps: list[int] = []
        self.kernels: list[torch.Tensor] = []

    def on_step(self, step: int, model: nn.Module, loss: float, history=None):
        k = empirical(model, self.x, output=self.output, method=self.method).kernel.to(torch.float64).cpu()
        self.steps.append(int(step))
        self.kernels.append(k)
        if history is not None and hasattr(history, "record"):
            history.record(self.name, int(step), k)
        return None

    def result(self) -> SnapshotResult:
        """Kernel change, distance and alignment of every snapshot relative to the first."""
        if not self.kernels:
            raise ValueError("no snapshots were taken (was the callback passed to fit?)")
        k0 = self.kernels[0]
        rel = np.array([relative_change(k0, k) for k in self.kernels])
        dist = np.array([kernel_distance(k0, k) for k in self.kernels])
        al = ca = None
        if self.targets is not None:
            al = np.array([alignment(k, self.targets) for k in self.kernels])
            ca = np.array(
                [np.nan]
                + [
                    alignment(k - k0, self.targets) if float(torch.linalg.norm(k - k0)) > 0 else np.nan
                    for k in self.kernels[1:]
                ]
            )
        return SnapshotResult(np.array(self.steps), torch.stack(self.kernels), rel, dist, al, ca)
