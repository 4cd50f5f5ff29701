r"""Random-feature ridge regression: features, and the whole ridge path from one eigendecomposition.

``phi(x) = act(x W^T) / sqrt(F)`` with ``W ~ N(0, weight_std^2 I)``; as ``F -> inf`` the Gram matrix
``phi phi^T`` tends to the NNGP kernel of a one-hidden-layer network. :func:`ridge_path` solves
``w = (Phi^T Phi + lambda I)^+ Phi^T y`` for a grid of ridges from one float64 eigendecomposition of
the smaller Gram matrix. Used for the experiments of James B. Simon, Dhruva Karkada, Nikhil Ghosh,
Mikhail Belkin, "More is Better in Modern Machine Learning: when Infinite Overparameterization is
Optimal and Overfitting is Obligatory", ICLR 2024, arXiv:2311.14646.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import models
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor
from ._kernels import _targets

__all__ = ["random_features", "RidgePath", "ridge_path"]


def random_features(
    x: torch.Tensor,
    num_features: int,
    *,
    activation: str = "relu",
    weight_std: float | None = None,
    seed: int = 0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random features ``phi(x) = act(x W^T) / sqrt(F)`` with ``W ~ N(0, weight_std^2 I)``.

    Default ``weight_std = 1/sqrt(d)`` (``W ~ N(0, I/d)``). As ``F -> inf`` the Gram matrix
    ``phi phi^T`` tends to the NNGP kernel of a one-hidden-layer network. Give ``weights`` (F, d)
    to reuse a draw (e.g. on test inputs); otherwise they come from ``seed``. Float64 unless
    ``x`` is lower precision (the dtype of ``x`` is kept).
    """
    x = check_tensor(x, "x", ndim=2, floating=True)
    d = x.shape[1]
    if weights is None:
        num_features = check_int(num_features, "num_features", minimum=1)
        std = 1 / math.sqrt(d) if weight_std is None else check_float(weight_std, "weight_std", positive=True)
        gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
        weights = (
            torch.randn(num_features, d, generator=gen, dtype=torch.float64, device=gen.device) * std
        ).to(x.device, x.dtype)
    else:
        weights = check_tensor(weights, "weights", ndim=2, floating=True)
        if weights.shape[1] != d:
            raise ValueError(
                f"`weights` must have {d} columns (input width), got shape {tuple(weights.shape)}"
            )
    check_choice(activation, "activation", tuple(models.ACTIVATIONS))
    h = models.activation(activation)(x @ weights.to(x.dtype).T)
    return h / math.sqrt(weights.shape[0])


@dataclass(frozen=True, repr=False)
class RidgePath(Result):
    """Ridge regression on features over a grid of ridges (one eigendecomposition).

    ``train_risk[r]``, ``test_risk[r]`` and ``val_risk[r]`` are mean squared errors (averaged over
    samples and outputs) at ``ridges[r]``. ``best`` is the index of the smallest *validation* risk
    when validation data was given (honest tuning), else of the smallest test risk (oracle tuning:
    the reported test risk then uses the test set twice).
    """

    ridges: np.ndarray
    train_risk: np.ndarray
    test_risk: np.ndarray | None
    num_features: int
    num_samples: int
    val_risk: np.ndarray | None = None

    @property
    def best(self) -> int:
        """Index of the tuned ridge: smallest validation risk, or smallest test risk (oracle)."""
        risk = self.val_risk if self.val_risk is not None else self.test_risk
        if risk is None:
            raise ValueError("no validation or test data was given")
        return int(np.nanargmin(risk))

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Train and test risk against the ridge (:func:`lossviz.ntk.plotting.plot_ridge_path`)."""
        from .plotting import plot_ridge_path

        return plot_ridge_path(self, backend=backend, ax=ax, **kw)


def ridge_path(
    phi_train, y_train, phi_test=None, y_test=None, *, ridges, phi_val=None, y_val=None
) -> RidgePath:
    """Ridge regression ``w = (Phi^T Phi + lambda I)^+ Phi^T y`` for every ``lambda`` in ``ridges``.

    One float64 eigendecomposition of the smaller Gram matrix (``Phi Phi^T`` if ``n <= F``, else
    ``Phi^T Phi``) serves the whole grid. ``lambda = 0`` is the minimum-norm least-squares solution
    (pseudo-inverse; eigenvalues below ``n F eps max`` are dropped). The ridge is added as given,
    with no sample-count factor. Used for the random-feature experiments of Simon et al., "More is
    Better in Modern Machine Learning: when Infinite Overparameterization is Optimal and
    Overfitting is Obligatory", 2023, arXiv:2311.14646.

    Give ``phi_val``/``y_val`` (a split disjoint from the test set) to tune the ridge honestly:
    :attr:`RidgePath.best` then picks it on the validation risk.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> phi = torch.randn(30, 50, generator=g, dtype=torch.float64)
    >>> y = phi[:, 0]
    >>> path = ridge_path(phi[:20], y[:20], phi[25:], y[25:], phi_val=phi[20:25], y_val=y[20:25],
    ...                   ridges=[0.0, 1e-2, 1e2])
    >>> path.val_risk.shape, path.best < 2
    ((3,), True)
    """
    p = check_tensor(phi_train, "phi_train", ndim=2, floating=True).to(torch.float64)
    n, f = p.shape
    y = _targets(y_train, n)
    ridges = np.atleast_1d(np.asarray(ridges, dtype=np.float64))
    if ridges.ndim != 1 or np.any(~np.isfinite(ridges)) or np.any(ridges < 0):
        raise ValueError("`ridges` must be a 1-D sequence of finite non-negative numbers")
    if phi_test is not None:
        pt = check_tensor(phi_test, "phi_test", ndim=2, floating=True).to(torch.float64)
        if pt.shape[1] != f:
            raise ValueError(f"`phi_test` must have {f} columns, got {pt.shape[1]}")
        if y_test is None:
            raise ValueError("`y_test` is needed with `phi_test`")
        yt = _targets(y_test, pt.shape[0], "y_test")
    pv_ = None
    if phi_val is not None:
        pv_ = check_tensor(phi_val, "phi_val", ndim=2, floating=True).to(torch.float64)
        if pv_.shape[1] != f:
            raise ValueError(f"`phi_val` must have {f} columns, got {pv_.shape[1]}")
        if y_val is None:
            raise ValueError("`y_val` is needed with `phi_val`")
        yv = _targets(y_val, pv_.shape[0], "y_val")
    if n <= f:
        lam, u = torch.linalg.eigh(p @ p.T)  # Phi = U S V^T with lam = s^2
        uy = u.T @ y
        cut = lam.max().clamp(min=0) * max(n, f) * torch.finfo(torch.float64).eps * 10
        # predictions on train: U diag(lam/(lam+r)) U^T y ; coefficients in sample space
        # alpha = U diag(1/(lam + r)) U^T y, w = Phi^T alpha
        basis_test = (pt @ p.T @ u) if phi_test is not None else None  # (m, n)
        basis_val = (pv_ @ p.T @ u) if pv_ is not None else None
    else:
        lam, v = torch.linalg.eigh(p.T @ p)
        cut = lam.max().clamp(min=0) * max(n, f) * torch.finfo(torch.float64).eps * 10
        pv = p @ v  # (n, F) = U S
        uy = pv.T @ y  # S U^T y
        basis_test = (pt @ v) if phi_test is not None else None
        basis_val = (pv_ @ v) if pv_ is not None else None
    keep = lam > cut
    train_risk, test_risk, val_risk = [], [], []
    for r in ridges:
        denom = lam + r
        inv = torch.where(keep, 1 / torch.where(keep, denom, torch.ones_like(denom)), torch.zeros_like(denom))
        if n <= f:
            coef = inv[:, None] * uy  # alpha in U basis
            train_pred = u @ (lam[:, None] * coef)
            test_pred = basis_test @ coef if basis_test is not None else None
        else:
            coef = inv[:, None] * uy  # w in V basis
            train_pred = pv @ coef
            test_pred = basis_test @ coef if basis_test is not None else None
        train_risk.append(float(((train_pred - y) ** 2).mean()))
        if test_pred is not None:
            test_risk.append(float(((test_pred - yt) ** 2).mean()))
        if basis_val is not None:
            val_risk.append(float(((basis_val @ coef - yv) ** 2).mean()))
    return RidgePath(
        ridges,
        np.array(train_risk),
        np.array(test_risk) if test_risk else None,
        f,
        n,
        np.array(val_risk) if val_risk else None,
    )
