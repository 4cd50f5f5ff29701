r"""The sharpness (top Hessian eigenvalue) recorded during training.

With gradient descent at step size ``eta`` the sharpness typically rises to about ``2 / eta`` and
hovers there, the "edge of stability" (J. Cohen, S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar,
"Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability", ICLR 2021,
arXiv:2103.00065). :class:`SharpnessTracker` is a :func:`lossviz.train.fit` callback that
warm-starts each estimate from the previous top eigenvector, so tracking costs a handful of
Hessian-vector products per recorded step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._model import collate
from .._result import Result
from .._validate import check_choice, check_dtype, check_int
from ..train import Callback
from ._base import MATRICES
from ._eigen import top_eigenvalues
from ._ggn import curvature_operator
from ._operator import ParamSelection

__all__ = ["SharpnessHistory", "SharpnessTracker"]


@dataclass(frozen=True, repr=False)
class SharpnessHistory(Result):
    """Top Hessian eigenvalues recorded during training by :class:`SharpnessTracker`.

    ``eigenvalues[t]`` (k values, decreasing) was computed at ``steps[t]``; ``converged`` and
    ``residual_norms`` are the per-call diagnostics, ``matvecs`` the total cost.
    """

    steps: np.ndarray
    eigenvalues: np.ndarray
    converged: np.ndarray
    residual_norms: np.ndarray
    losses: np.ndarray
    matvecs: int

    @property
    def sharpness(self) -> np.ndarray:
        """The top eigenvalue at each recorded step."""
        return self.eigenvalues[:, 0]

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Sharpness against step (:func:`lossviz.curvature.plotting.plot_sharpness`; ``lr=`` adds 2/lr)."""
        from .plotting import plot_sharpness

        return plot_sharpness(self, backend=backend, ax=ax, **kw)


class SharpnessTracker(Callback):
    r"""Training callback recording the top Hessian eigenvalue(s) ("sharpness").

    A :class:`lossviz.train.Callback` (the one contract of :func:`lossviz.train.fit` and the
    special solvers: ``every``/``at``/``final``, the final step always recorded, never a step
    twice); it records into ``history`` under ``"sharpness"`` as well and never stops training. Each call warm-starts Lanczos from the previous top eigenvector, so tracking
    costs a handful of products per step once the eigenvector moves slowly. With gradient
    descent at step size ``eta`` the sharpness rises to about ``2 / eta`` and hovers there
    (Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of
    Stability", ICLR 2021, arXiv:2103.00065).

    Parameters
    ----------
    loss_fn, data : as for :class:`HessianOperator` (usually the full training set).
    every, at, final : when to compute (see :class:`lossviz.train.Callback`): at steps divisible by
        ``every`` (default 1), at the steps in ``at``, and at the final step unless ``final=False``.
    k, tol, seed, method, params, dtype, mode : as for :func:`top_eigenvalues` (``method="lanczos"``
        with ``warm_start`` needs only a few products per call once the eigenvector moves slowly).
    matrix : ``"hessian"`` (default), ``"ggn"`` or ``"fisher"``
        Which curvature matrix's top eigenvalue is tracked (:func:`curvature_operator`).
    warm_start : bool
        Start each call from the previous top eigenvector (default ``True``). Caveat: with
        ``method="lanczos"`` a warm start can converge to (and correctly certify) the *previous*
        top eigenpair when another eigenvalue overtakes it between calls; the default ``eigsh``
        searches a 20-dimensional Krylov space and is much less exposed to that.

    Example
    -------
    >>> import torch
    >>> from lossviz import train
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> x, y = torch.randn(32, 2), torch.randn(32, 1)
    >>> tracker = SharpnessTracker(torch.nn.functional.mse_loss, (x, y), every=5)
    >>> _ = train.fit(net, torch.nn.functional.mse_loss, (x, y), steps=10, lr=0.1,
    ...               callbacks=[tracker], progress=False)
    >>> tracker.result().steps.tolist()
    [0, 5, 10]
    >>> tracker = SharpnessTracker(torch.nn.functional.mse_loss, (x, y), every=5)
    >>> _ = train.fit(net, torch.nn.functional.mse_loss, (x, y), steps=7, lr=0.1,
    ...               callbacks=[tracker], progress=False)
    >>> tracker.result().steps.tolist()  # the final step is always recorded
    [0, 5, 7]
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        *,
        every: int | None = 1,
        at: Iterable[int] | None = None,
        final: bool = True,
        k: int = 1,
        tol: float | None = None,
        seed: int = 0,
        params: ParamSelection = None,
        dtype: torch.dtype | str | None = None,
        mode: str = "eval",
        warm_start: bool = True,
        method: str = "eigsh",
        matrix: str = "hessian",
    ):
        super().__init__(every, at=at, final=final)
        if not callable(loss_fn):
            raise TypeError(f"`loss_fn` must be callable(outputs, targets), got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn
        self.batches = collate(data, "data")
        self.k = check_int(k, "k", minimum=1)
        self.tol = tol
        self.seed = check_int(seed, "seed", minimum=0)
        self.params = params
        self.dtype = check_dtype(dtype, "dtype")
        self.mode = check_choice(mode, "mode", ("eval", "train"))
        self.warm_start = bool(warm_start)
        self.method = check_choice(method, "method", ("eigsh", "lanczos"))
        self.matrix = check_choice(matrix, "matrix", MATRICES)
        self._steps: list[int] = []
        self._vals: list[np.ndarray] = []
        self._conv: list[np.ndarray] = []
        self._res: list[np.ndarray] = []
        self._loss: list[float] = []
        self._matvecs = 0
        self._v0: torch.Tensor | None = None

    def __call__(
        self, step: int, model: nn.Module, loss: float | None = None, history: Any = None, final: bool = False
    ):
        """``Callback.__call__`` with ``loss`` and ``history`` optional (direct use outside ``fit``)."""
        return super().__call__(step, model, loss, history, final)

    def on_step(self, step: int, model: nn.Module, loss: float | None, history: Any):
        """Compute and record the top eigenvalue(s) at ``step``; never stops training."""
        op = curvature_operator(
            model,
            self.loss_fn,
            self.batches,
            matrix=self.matrix,
            params=self.params,
            dtype=self.dtype,
            mode=self.mode,
        )
        v0 = self._v0 if (self.warm_start and self._v0 is not None and self._v0.shape[0] == op.size) else None
        r = top_eigenvalues(op, k=self.k, tol=self.tol, seed=self.seed, v0=v0, method=self.method)
        if np.isfinite(r.eigenvalues[0]):
            self._v0 = r.eigenvectors[:, 0].detach().clone()
        self._steps.append(int(step))
        self._vals.append(r.eigenvalues)
        self._conv.append(r.converged)
        self._res.append(r.residual_norms)
        self._loss.append(math.nan if loss is None else float(loss))
        self._matvecs += r.matvecs
        if history is not None and hasattr(history, "record"):
            history.record("sharpness", int(step), float(r.eigenvalues[0]))
        return None

    def result(self) -> SharpnessHistory:
        """The recorded values as a frozen :class:`SharpnessHistory`."""
        k = self.k
        return SharpnessHistory(
            np.array(self._steps, dtype=int),
            np.array(self._vals).reshape(-1, k),
            np.array(self._conv, dtype=bool).reshape(-1, k),
            np.array(self._res).reshape(-1, k),
            np.array(self._loss),
            self._matvecs,
        )
