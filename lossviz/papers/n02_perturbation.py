r"""N02: the perturbed unconstrained-feature model, features tied to given features :math:`H_0`.

Reference: Tom Tirer, Haoxiang Huang & Jonathan Niles-Weed, "Perturbation Analysis of Neural
Collapse", ICML 2023 (PMLR 202), arXiv:2210.16658.

The model (features as columns of :math:`H`, one-hot :math:`Y`, :math:`N` samples)

.. math::
    \min_{W,H}\ \frac{1}{2N}\|WH-Y\|_F^2+\frac{\lambda_W}{2}\|W\|_F^2
    +\frac{\lambda_H}{2N}\|H\|_F^2+\frac{\beta}{2N}\|H-H_0\|_F^2

keeps the optimised features in the vicinity of :math:`H_0` (large :math:`\beta` = small
vicinity). For fixed :math:`W` it is a ridge problem in every column, solved exactly:

.. math:: H(W)=(W^\top W+(\lambda_H+\beta)I)^{-1}(W^\top Y+\beta H_0),

so :func:`fit_perturbed_ufm` eliminates :math:`H` and runs L-BFGS on :math:`W` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._result import Result
from .._validate import check_float, check_int, check_tensor
from ..collapse._checks import F64, check_labels
from ..collapse._ufm import lbfgs_solve

__all__ = ["PerturbedUFMResult", "fit_perturbed_ufm", "stationarity"]


@dataclass(frozen=True, repr=False)
class PerturbedUFMResult(Result):
    """Optimum of the perturbed UFM: classifier ``weight`` (K, d), ``features`` H (N, d) = H(W).

    Diagnostics: objective ``loss``, ``grad_norm`` (max-abs gradient in W), L-BFGS
    ``iterations``, ``converged``.
    """

    weight: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    lambda_W: float
    lambda_H: float
    beta: float
    loss: float
    grad_norm: float
    iterations: int
    converged: bool


def fit_perturbed_ufm(
    h0: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    lambda_W: float = 1e-2,
    lambda_H: float = 1e-2,
    num_classes: int | None = None,
    max_iter: int = 500,
    tol: float = 1e-10,
) -> PerturbedUFMResult:
    r"""Solve the UFM whose features must stay near given features ``H0`` (float64, L-BFGS on W).

    .. math::
        \min_{W,H}\ \frac{1}{2N}\|WH-Y\|_F^2+\frac{\lambda_W}{2}\|W\|_F^2
        +\frac{\lambda_H}{2N}\|H\|_F^2+\frac{\beta}{2N}\|H-H_0\|_F^2

    (features as columns of ``H``; ``Y`` one-hot). For fixed ``W`` the optimal features are
    :math:`H(W)=(W^\top W+(\lambda_H+\beta)I)^{-1}(W^\top Y+\beta H_0)`, so ``H`` is eliminated
    exactly and L-BFGS (strong Wolfe) runs on ``W`` alone, started from the ridge classifier of
    ``H0``. ``beta`` is the vicinity strength: ``beta -> infinity`` keeps ``H = H0``,
    ``beta = 0`` is the plain UFM (full collapse).

    The form of the objective follows Tirer, Huang & Niles-Weed, "Perturbation Analysis of Neural
    Collapse", ICML 2023, arXiv:2210.16658 (their model regularises the features towards
    ``H0``; our normalisation of each term is stated above).
    """
    h0 = check_tensor(h0, "h0", ndim=2, floating=True)
    n, d = h0.shape
    labels, k = check_labels(labels, n, num_classes)
    beta = check_float(beta, "beta", minimum=0.0)
    lw = check_float(lambda_W, "lambda_W", positive=True)
    lh = check_float(lambda_H, "lambda_H", minimum=0.0)
    if lh + beta <= 0:
        raise ValueError("`lambda_H + beta` must be > 0 for H(W) to be unique")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol", positive=True)
    h0t = h0.detach().to(F64).T  # (d, N)
    dev = h0t.device
    y = torch.nn.functional.one_hot(labels.to(dev), k).to(F64).T  # (K, N)
    eye = torch.eye(d, dtype=F64, device=dev)

    def features_of(w):
        return torch.linalg.solve(w.T @ w + (lh + beta) * eye, w.T @ y + beta * h0t)

    def objective(w):
        h = features_of(w)
        return (
            0.5 / n * (w @ h - y).square().sum()
            + 0.5 * lw * w.square().sum()
            + 0.5 * lh / n * h.square().sum()
            + 0.5 * beta / n * (h - h0t).square().sum()
        )

    w0 = y @ h0t.T @ torch.linalg.inv(h0t @ h0t.T + n * lw * eye)
    w = w0.clone().requires_grad_(True)
    iterations, final, (g,) = lbfgs_solve(
        [w], lambda: objective(w), max_iter=max_iter, tol=tol, history_size=50
    )
    gnorm = float(g.abs().max())
    with torch.no_grad():
        wf = w.detach().clone()
        return PerturbedUFMResult(
            weight=wf,
            features=features_of(wf).T.contiguous(),
            labels=labels,
            lambda_W=lw,
            lambda_H=lh,
            beta=beta,
            loss=float(final),
            grad_norm=gnorm,
            iterations=iterations,
            converged=gnorm <= max(tol, 1e-8),
        )


def stationarity(result: PerturbedUFMResult, h0: torch.Tensor) -> float:
    r"""Max-abs gradient of the full objective in :math:`(W, H)` at ``result`` (float64).

    An independent check that the returned point is a stationary point of the model stated in the
    module docstring: the gradient is taken of the objective written out in both blocks, not of the
    reduced objective in :math:`W` that the solver minimises.
    """
    if not isinstance(result, PerturbedUFMResult):
        raise TypeError(f"`result` must be a PerturbedUFMResult, got {type(result).__name__}")
    h0 = check_tensor(h0, "h0", ndim=2, floating=True).detach().to(F64)
    if tuple(h0.shape) != tuple(result.features.shape):
        raise ValueError(f"`h0` must have shape {tuple(result.features.shape)}, got {tuple(h0.shape)}")
    n, k = h0.shape[0], result.weight.shape[0]
    w = result.weight.detach().clone().requires_grad_(True)
    h = result.features.detach().T.clone().requires_grad_(True)
    y = torch.nn.functional.one_hot(result.labels.to(h0.device), k).to(F64).T
    obj = (
        0.5 / n * (w @ h - y).square().sum()
        + 0.5 * result.lambda_W * w.square().sum()
        + 0.5 * result.lambda_H / n * h.square().sum()
        + 0.5 * result.beta / n * (h - h0.T).square().sum()
    )
    gw, gh = torch.autograd.grad(obj, [w, h])
    return max(float(gw.abs().max()), float(gh.abs().max()))
