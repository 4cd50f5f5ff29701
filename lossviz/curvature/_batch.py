r"""Extreme eigenvalues of mini-batch Hessians: one estimate per random batch of size ``B``.

The Hessian of the mean loss over a batch ``S`` of ``B`` samples drawn without replacement from
the ``N`` training samples,

.. math::

    H_S = \frac{1}{B} \sum_{i \in S} \nabla^2_\theta \ell_i(\theta), \qquad
    \mathbb{E}_S\, H_S = H = \frac{1}{N} \sum_{i=1}^N \nabla^2_\theta \ell_i(\theta),

is an unbiased but noisy estimate of the full (empirical) Hessian ``H``. Its extreme eigenvalues
are biased outwards: by convexity of ``lambda_max`` (and concavity of ``lambda_min``),
``E lambda_max(H_S) >= lambda_max(H)`` and ``E lambda_min(H_S) <= lambda_min(H)``, and the excess
shrinks with the variance of a batch mean, ``sigma^2 (N - B) / (B (N - 1))``. This is the object of
D. Granziol, S. Zohren, S. Roberts, "Learning Rates as a Function of Batch Size: A Random Matrix
Theory Approach to Neural Network Training", JMLR 23 (2022), arXiv:2006.09092, whose stable
learning rate ``~ 2 / lambda_max(H_B)`` therefore grows with ``B`` and saturates near ``N``.

:func:`sample_batches` draws the batch indices (seeded, without replacement inside a batch,
independently across batches); :func:`batch_eigenvalues` runs
:func:`~lossviz.curvature.top_eigenvalues` on the Hessian (or another curvature matrix) of each
batch and returns a :class:`BatchEigenvalues` with one eigenvalue per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_choice, check_int, check_tensor
from ._eigen import top_eigenvalues
from ._operator import ParamSelection, _operator

__all__ = ["BatchEigenvalues", "batch_eigenvalues", "sample_batches"]


def sample_batches(n: int, batch_size: int, num_batches: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of ``num_batches`` random batches of ``batch_size`` distinct samples out of ``n``.

    Each row is the first ``batch_size`` entries of a random permutation of ``0..n-1`` (sampling
    without replacement inside a batch); rows are independent (batches may overlap). Drawn on the
    CPU from a ``torch.Generator`` seeded with ``seed``; the global RNG is not touched.

    Returns
    -------
    torch.Tensor of int64, shape ``(num_batches, batch_size)``, on the CPU.

    Example
    -------
    >>> idx = sample_batches(10, 4, 3, seed=0)
    >>> idx.shape, all(len(set(r.tolist())) == 4 for r in idx)
    (torch.Size([3, 4]), True)
    """
    n = check_int(n, "n", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=n)
    num_batches = check_int(num_batches, "num_batches", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows = [torch.randperm(n, generator=gen, device="cpu")[:batch_size] for _ in range(num_batches)]
    return torch.stack(rows)


@dataclass(frozen=True, repr=False)
class BatchEigenvalues(Result):
    """One extreme eigenvalue of the curvature matrix of each of ``num_batches`` mini-batches.

    ``.plot()`` draws them (:func:`lossviz.curvature.plot_batch_eigenvalues`, which also takes a
    list of results at several batch sizes).

    Attributes
    ----------
    eigenvalues : np.ndarray (num_batches,)
        ``lambda_max(H_S)`` (``which="LA"``), ``lambda_min(H_S)`` (``"SA"``) or the largest in
        magnitude (``"LM"``) of each batch ``S``.
    residual_norms : np.ndarray (num_batches,)
        ``||H_S v - lambda v||`` of each estimate (a bound on its error).
    converged : np.ndarray of bool (num_batches,)
    indices : torch.Tensor (num_batches, batch_size)
        The samples of each batch (rows of :func:`sample_batches`).
    batch_size, num_samples : int
        ``B`` and ``N``.
    which, matrix : str
    seed : int
    """

    eigenvalues: np.ndarray
    residual_norms: np.ndarray
    converged: np.ndarray
    indices: torch.Tensor
    batch_size: int
    num_samples: int
    which: str
    matrix: str
    seed: int

    @property
    def mean(self) -> float:
        """Mean over batches (the estimate of ``E lambda(H_B)``)."""
        return float(np.mean(self.eigenvalues))

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw the per-batch eigenvalues and their mean (:func:`lossviz.curvature.plot_batch_eigenvalues`)."""
        from .plotting import plot_batch_eigenvalues

        return plot_batch_eigenvalues(self, backend=backend, ax=ax, **kw)

    def __repr__(self) -> str:
        return (
            f"BatchEigenvalues(B={self.batch_size}, N={self.num_samples}, batches={len(self.eigenvalues)}, "
            f"which={self.which!r}, mean={self.mean:.6g}, min={np.min(self.eigenvalues):.6g}, "
            f"max={np.max(self.eigenvalues):.6g})"
        )


def _split_data(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"`data` must be an (inputs, targets) pair of tensors with one row per sample, got "
            f"{type(data).__name__}"
        )
    x = check_tensor(data[0], "data[0] (inputs)")
    y = check_tensor(data[1], "data[1] (targets)")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`data`: inputs and targets need the same number of rows (samples), got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x, y


def batch_eigenvalues(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any,
    batch_size: int,
    num_batches: int = 16,
    *,
    which: str = "LA",
    seed: int = 0,
    indices: torch.Tensor | None = None,
    method: str = "lanczos",
    tol: float | None = None,
    maxiter: int | None = None,
    matrix: str | None = None,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> BatchEigenvalues:
    r"""The extreme eigenvalue of the Hessian of the mean loss on each of ``num_batches`` random batches.

    For each batch ``S`` (``batch_size`` distinct samples, :func:`sample_batches` with ``seed``)
    the curvature matrix ``H_S`` of the mean loss over ``S`` is built matrix-free and its extreme
    eigenvalue found by :func:`~lossviz.curvature.top_eigenvalues` (``k = 1``); every batch uses
    the same Lanczos start vector (drawn with ``seed``), so identical batches give identical
    numbers. With ``batch_size = N`` every batch is the whole data set: the full-batch value.

    Parameters
    ----------
    model : nn.Module
        Never changed.
    loss_fn : callable(outputs, targets) -> scalar
        Mean loss of a batch (e.g. ``torch.nn.functional.mse_loss``).
    data : ``(inputs, targets)``
        All ``N`` samples as two tensors with one row per sample.
    batch_size : int
        ``B``, ``1 <= B <= N``.
    num_batches : int
        Number of independent batches (default 16).
    which : ``"LA"`` (default: ``lambda_max``), ``"SA"`` (``lambda_min``) or ``"LM"``.
    seed : int
        Seeds the batch draws and the Lanczos start vector; the global RNG is not touched.
    indices : torch.Tensor (num_batches, batch_size), optional
        Use these batches instead of drawing them (e.g. the same batches for both edges);
        ``batch_size`` and ``num_batches`` must match its shape.
    method, tol, maxiter : passed to :func:`~lossviz.curvature.top_eigenvalues`.
    matrix : ``"hessian"`` (default), ``"ggn"`` or ``"fisher"``.
    params, dtype, mode : see :class:`~lossviz.curvature.HessianOperator`.

    Returns
    -------
    BatchEigenvalues
        ``eigenvalues`` (one per batch), ``mean``, ``residual_norms``, ``converged``, ``indices``.

    Notes
    -----
    Granziol, Zohren & Roberts (JMLR 2022, arXiv:2006.09092) model ``H_S = H + E_S`` with a
    noise matrix of variance ``~ 1/B - 1/N``; when the top eigenvalue of ``H`` is an outlier the
    batch top eigenvalue is ``lambda_1 + P sigma^2 / (B lambda_1)`` to first order, so the mean
    excess ``E lambda_max(H_S) - lambda_max(H)`` falls like ``1/B - 1/N``.

    Example
    -------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    >>> x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    >>> y = torch.randn(64, 2, generator=g, dtype=torch.float64)
    >>> mse = torch.nn.functional.mse_loss
    >>> small = batch_eigenvalues(net, mse, (x, y), batch_size=4, num_batches=8, seed=0)
    >>> full = batch_eigenvalues(net, mse, (x, y), batch_size=64, num_batches=1, seed=0)
    >>> bool(small.mean > full.mean)
    True
    """
    x, y = _split_data(data)
    n = x.shape[0]
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=n)
    num_batches = check_int(num_batches, "num_batches", minimum=1)
    check_choice(which, "which", ("LA", "SA", "LM"))
    seed = check_int(seed, "seed", minimum=0)
    if indices is None:
        indices = sample_batches(n, batch_size, num_batches, seed=seed)
    else:
        indices = check_tensor(indices, "indices", ndim=2, floating=False)
        if tuple(indices.shape) != (num_batches, batch_size):
            raise ValueError(
                f"`indices` must have shape (num_batches, batch_size) = ({num_batches}, {batch_size}), "
                f"got {tuple(indices.shape)}"
            )
        if int(indices.min()) < 0 or int(indices.max()) >= n:
            raise ValueError(f"`indices` must lie in [0, {n - 1}] (the sample rows of `data`)")
    vals = np.empty(num_batches)
    res = np.empty(num_batches)
    conv = np.empty(num_batches, dtype=bool)
    kind = "hessian"
    for b in range(num_batches):
        rows = indices[b].to(x.device)
        op = _operator(model, loss_fn, (x[rows], y[rows.to(y.device)]), params, dtype, mode, matrix=matrix)
        kind = op.matrix
        top = top_eigenvalues(op, k=1, which=which, method=method, tol=tol, maxiter=maxiter, seed=seed)
        vals[b], res[b], conv[b] = top.eigenvalues[0], top.residual_norms[0], top.converged[0]
    return BatchEigenvalues(
        eigenvalues=vals,
        residual_norms=res,
        converged=conv,
        indices=indices.detach().cpu(),
        batch_size=batch_size,
        num_samples=n,
        which=which,
        matrix=kind,
        seed=seed,
    )
