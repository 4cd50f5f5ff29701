r"""Iterated self-distillation of kernel ridge regression with ground-truth targets, in closed form.

Kenneth Borup & Lars N. Andersen, "Even your Teacher Needs Guidance: Ground-Truth Targets Dampen
Regularization Imposed by Self-Distillation", NeurIPS 2021, arXiv:2102.13088.

Step ``t`` fits, in the RKHS of a kernel ``k`` with ridge ``c``,

.. math::

    f_t = \arg\min_f\ \alpha \|y - f(X)\|^2 + (1 - \alpha) \|f_{t-1}(X) - f(X)\|^2 + c \|f\|_H^2 ,

with ``f_1`` the plain kernel ridge fit on ``y``. The objective equals
``||alpha y + (1 - alpha) f_{t-1}(X) - f(X)||^2 + c ||f||^2`` up to a constant, so each step is kernel
ridge regression on the mixed targets. With ``K = V diag(d) V^T`` and ``a = d / (d + c)`` per eigenvalue,

.. math::

    f_t(X) = V \operatorname{diag}(g_t) V^\top y, \qquad g_1 = a, \quad
    g_t = a\,(\alpha + (1 - \alpha) g_{t-1}),

i.e. ``g_t = g_* + ((1 - alpha) a)^{t-1} (a - g_*)`` with the fixed point
``g_* = alpha d / (alpha d + c) = d / (d + c / alpha)``: infinitely many steps give kernel ridge regression
with the ridge amplified to ``c / alpha`` (the paper's result); with ``alpha = 0`` the amplification is
unbounded and ``f_t -> 0``. Predictions elsewhere are ``k(x, X) V diag(h_t / (d + c)) V^T y`` with
``h_t = alpha + (1 - alpha) g_{t-1}`` (``h_1 = 1``).

Because ``f_t`` is affine in the weight of its own step, the weight that minimises a squared error
against any target has a closed form (:func:`distillation_weight`); the paper derives such an optimal
weight per step. Nothing restricts the minimiser to ``[0, 1]``; Dang, Patil & Rinaldo (arXiv:2602.17565)
study the unconstrained (possibly negative) weight in ridge regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_float
from ._kernels import _kernel_matrix, _square, _targets

__all__ = ["SelfDistillation", "self_distillation", "distillation_weight"]


@dataclass(frozen=True, repr=False)
class SelfDistillation(Result):
    """Closed-form iterated self-distillation (float64).

    ``steps`` (T,) as given (``inf`` for the fixed point); ``gains`` (T, n): the shrinkage factor
    ``g_t`` of every eigenvector of the training Gram matrix, ordered like ``eigenvalues``
    (descending); ``train_predictions`` (T, n, o) ``f_t(X)``; ``predictions`` (T, m, o) at the test
    inputs (or None); ``coef`` (T, n, o) with ``f_t(x) = k(x, X) coef_t``; ``amplified_ridge`` is
    ``ridge / alpha`` (``inf`` for ``alpha = 0``).
    """

    steps: np.ndarray
    gains: torch.Tensor
    coef: torch.Tensor
    train_predictions: torch.Tensor
    predictions: torch.Tensor | None
    eigenvalues: torch.Tensor
    ridge: float
    alpha: float
    amplified_ridge: float

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw the gains with :func:`lossviz.ntk.plotting.plot_self_distillation` (``ax=``: matplotlib)."""
        from .plotting import plot_self_distillation

        return plot_self_distillation(self, backend=backend, ax=ax, **kw)


def _steps(steps) -> np.ndarray:
    s = np.atleast_1d(np.asarray(steps, dtype=np.float64))
    if s.ndim != 1 or s.size == 0 or np.any(np.isnan(s)) or np.any(s < 1):
        raise ValueError("`steps` must be a non-empty 1-D sequence of step numbers >= 1 (inf allowed)")
    finite = s[np.isfinite(s)]
    if np.any(finite != np.round(finite)):
        raise ValueError(f"`steps` must be whole numbers of steps (or inf), got {s.tolist()}")
    return s


def self_distillation(
    k_train, y_train, k_test_train=None, *, ridge: float, alpha: float, steps=(1, 2, 3, 5, 10, math.inf)
) -> SelfDistillation:
    r"""Step-``t`` self-distilled kernel ridge fits, for many ``t`` at once, from one eigendecomposition.

    Implements the closed form of Borup & Andersen (2021, arXiv:2102.13088) given in the module
    docstring: ``f_t(X) = V diag(g_t) V^T y`` with ``g_t = a (alpha + (1 - alpha) g_{t-1})``,
    ``g_1 = a = d / (d + ridge)``; ``t = inf`` is the fixed point, kernel ridge regression with the
    ridge ``ridge / alpha``.

    Parameters
    ----------
    k_train : ``(n, n)`` Gram matrix of the training inputs (symmetrised, float64)
    y_train : ``(n,)`` or ``(n, o)`` ground-truth targets
    k_test_train : ``(m, n)`` kernel between test and training inputs, optional
    ridge : ``c > 0``, added to the diagonal as given (no ``n`` factor), as in
        :func:`lossviz.ntk.kernel_regression`
    alpha : weight of the ground truth. The paper's range is ``[0, 1]`` (``1``: every step equals
        the first fit; ``0``: pure self-distillation); any real value is accepted for finite steps,
        ``t = inf`` needs ``0 <= alpha <= 1``.
    steps : step numbers ``t >= 1`` (whole numbers, any size: ``10**6`` costs the same as ``2``) or ``inf``

    Examples
    --------
    >>> import torch
    >>> from lossviz import ntk
    >>> x = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]
    >>> k = ntk.rbf_kernel(x, length=0.5)
    >>> y = torch.sin(3 * x[:, 0])
    >>> sd = ntk.self_distillation(k, y, ridge=1e-2, alpha=0.5, steps=[1, float("inf")])
    >>> krr = ntk.kernel_regression(k, y, ridge=1e-2 / 0.5)
    >>> bool(torch.allclose(sd.train_predictions[-1], krr.train_predictions))
    True
    """
    k = _square(k_train, "k_train")
    n = k.shape[0]
    y = _targets(y_train, n)
    ridge = check_float(ridge, "ridge", positive=True)
    alpha = check_float(alpha, "alpha")
    s = _steps(steps)
    if np.any(np.isinf(s)) and not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"`steps` contains inf, which needs 0 <= alpha <= 1 (the iteration diverges otherwise), got alpha={alpha}"
        )
    d, v = torch.linalg.eigh(k)
    d, v = d.flip(0).clamp(min=0.0), v.flip(1)
    a = d / (d + ridge)
    fixed = alpha * d / (alpha * d + ridge)
    r = (1.0 - alpha) * a
    tt = torch.as_tensor(s, dtype=torch.float64, device=k.device)[:, None]

    def gain(t):  # g_t for t >= 0 (g_0 = 1) in closed form, inf -> fixed point
        fin = torch.isfinite(t)
        tf = torch.where(fin, t, torch.ones_like(t))
        # g_t = g* + r^(t-1) (a - g*) for t >= 1; g_0 = 1
        g = fixed + r[None, :] ** (tf - 1).clamp(min=0) * (a - fixed)[None, :]
        g = torch.where(tf < 1, torch.ones_like(g), g)
        return torch.where(fin, g, fixed[None, :].expand_as(g))

    g_t = gain(tt)
    h_t = alpha + (1.0 - alpha) * gain(tt - 1)
    proj = v.T @ y
    coef = torch.einsum("pk,tk,kj->tpj", v, h_t / (d + ridge)[None, :], proj)
    train = torch.einsum("pk,tk,kj->tpj", v, g_t, proj)
    pred = None
    if k_test_train is not None:
        kt = _kernel_matrix(k_test_train, "k_test_train")
        if kt.shape[1] != n:
            raise ValueError(
                f"`k_test_train` must have {n} columns (training points), got shape {tuple(kt.shape)}"
            )
        pred = torch.einsum("mp,tpj->tmj", kt, coef)
    amp = ridge / alpha if alpha > 0 else math.inf
    return SelfDistillation(s, g_t, coef, train, pred, d, ridge, alpha, amp)


def distillation_weight(k_train, y_train, teacher, target, *, ridge: float, k_eval_train=None) -> float:
    r"""The ground-truth weight of one distillation step that minimises a squared error, in closed form.

    The student of a step is ``f = S (alpha y + (1 - alpha) f_T(X))`` with the ridge smoother
    ``S = K_eval (K + c I)^{-1}``, affine in ``alpha``: ``f = S f_T + alpha S (y - f_T)``. Hence

    .. math::

        \alpha^\star = \frac{\langle t - S f_T,\ S (y - f_T)\rangle}{\|S (y - f_T)\|^2}

    minimises ``||f - t||^2`` for the target ``t`` given at the evaluation points (the training inputs
    when ``k_eval_train`` is None, else the rows of ``k_eval_train``). Borup & Andersen (2021,
    arXiv:2102.13088) derive an optimal weight per step of this form; the minimiser is **not**
    restricted to ``[0, 1]`` here (clip it yourself if you want the paper's range).

    Parameters
    ----------
    teacher : ``(n,)`` or ``(n, o)``, the previous step's predictions at the training inputs
    target : what the student should match at the evaluation points (e.g. the noise-free function:
        then ``alpha*`` is an oracle that uses information a learner does not have)

    Examples
    --------
    >>> import torch
    >>> from lossviz import ntk
    >>> x = torch.linspace(-1, 1, 6, dtype=torch.float64)[:, None]
    >>> k = ntk.rbf_kernel(x, length=0.5)
    >>> y = torch.cos(2 * x[:, 0])
    >>> f1 = ntk.kernel_regression(k, y, ridge=0.1).train_predictions
    >>> round(ntk.distillation_weight(k, y, f1, f1, ridge=0.1), 6)   # the student S y (alpha = 1) is the teacher
    1.0
    """
    k = _square(k_train, "k_train")
    n = k.shape[0]
    y = _targets(y_train, n)
    ft = _targets(teacher, n, "teacher")
    if ft.shape != y.shape:
        raise ValueError(
            f"`teacher` must have the shape of `y_train` {tuple(y.shape)}, got {tuple(ft.shape)}"
        )
    ridge = check_float(ridge, "ridge", positive=True)
    ke = k if k_eval_train is None else _kernel_matrix(k_eval_train, "k_eval_train")
    if ke.shape[1] != n:
        raise ValueError(
            f"`k_eval_train` must have {n} columns (training points), got shape {tuple(ke.shape)}"
        )
    tg = _targets(target, ke.shape[0], "target")
    if tg.shape[1] != y.shape[1]:
        raise ValueError(f"`target` must have {y.shape[1]} output columns, got {tg.shape[1]}")
    eye = torch.eye(n, dtype=k.dtype, device=k.device)
    solve = torch.linalg.solve(k + ridge * eye, torch.cat([ft, y - ft], dim=1))
    base, slope = (ke @ solve).split(y.shape[1], dim=1)
    den = float((slope * slope).sum())
    if den == 0.0:
        raise ValueError(
            "the student does not depend on alpha (`teacher` equals the ridge fit of `y_train`'s smoother null space)"
        )
    return float(((tg - base) * slope).sum()) / den
