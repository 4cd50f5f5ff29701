r"""K04: more is better: tuned random-feature ridge regression (the toy set-up of the notebook).

James B. Simon, Dhruva Karkada, Nikhil Ghosh, Mikhail Belkin, "More is Better in Modern Machine
Learning: when Infinite Overparameterization is Optimal and Overfitting is Obligatory", ICLR 2024,
arXiv:2311.14646.

Random ReLU features ``phi(x) = ReLU(W x) / sqrt(F)``, ``W ~ N(0, I/d)``, ridge regression over a
grid of ridges from one eigendecomposition (:func:`lossviz.ntk.ridge_path`). The ridge is tuned on
a **validation split** disjoint from the test set (risks averaged over feature draws first); the
test risk is reported at that ridge, so "tuned" never looks at the test data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import ntk
from .._result import Result
from .._validate import check_int

__all__ = ["power_law_task", "RiskCurves", "risk_curves", "worst_neighbour_ratio"]


def power_law_task(n: int, d: int = 64, *, generator: torch.Generator, device=None):
    """``x ~ N(0, diag(i^-1.5))``, ``y = l + (l^2 - E l^2) / 2`` with ``l = sum_i i^-1/2 x_i`` (float64)."""
    n, d = check_int(n, "n", minimum=1), check_int(d, "d", minimum=1)
    lam = torch.arange(1, d + 1, dtype=torch.float64, device=generator.device) ** -1.5
    coef = torch.arange(1, d + 1, dtype=torch.float64, device=generator.device) ** -0.5
    x = torch.randn(n, d, generator=generator, dtype=torch.float64, device=generator.device) * lam.sqrt()
    lin = x @ coef
    y = (lin + 0.5 * (lin**2 - float((coef**2 * lam).sum())))[:, None]
    return x.to(device), y.to(device)


@dataclass(frozen=True, repr=False)
class RiskCurves(Result):
    """Risks over the ridge grid, averaged over feature draws; ``best`` is tuned on validation."""

    ridges: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def best(self) -> int:
        """Index of the ridge with the smallest (draw-averaged) validation risk."""
        return int(np.argmin(self.val))

    @property
    def tuned_test(self) -> float:
        """Test risk at the validation-tuned ridge."""
        return float(self.test[self.best])

    @property
    def tuned_ratio(self) -> float:
        """Train / test risk at the validation-tuned ridge."""
        return float(self.train[self.best] / self.test[self.best])


def risk_curves(
    x_tr, y_tr, x_val, y_val, x_te, y_te, num_features: int, *, ridges, draws: int = 3, seed: int = 0
):
    """Train, validation and test risk for every ridge, averaged over ``draws`` feature draws.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = power_law_task(300, 8, generator=g)
    >>> rc = risk_curves(x[:100], y[:100], x[100:200], y[100:200], x[200:], y[200:], 64,
    ...                  ridges=[0.0, 1e-3, 1.0], draws=2)
    >>> rc.test.shape, 0 <= rc.best < 3
    ((3,), True)
    """
    f = check_int(num_features, "num_features", minimum=1)
    d = x_tr.shape[1]
    tr, va, te = [], [], []
    for s in range(check_int(draws, "draws", minimum=1)):
        g = torch.Generator().manual_seed(10_000 * seed + 100 * s + 7)
        w = (torch.randn(f, d, generator=g, dtype=torch.float64, device=g.device) / math.sqrt(d)).to(
            x_tr.device
        )
        path = ntk.ridge_path(
            ntk.random_features(x_tr, f, weights=w), y_tr,
            ntk.random_features(x_te, f, weights=w), y_te,
            phi_val=ntk.random_features(x_val, f, weights=w), y_val=y_val, ridges=ridges,
        )  # fmt: skip
        tr.append(path.train_risk)
        va.append(path.val_risk)
        te.append(path.test_risk)
    return RiskCurves(np.asarray(ridges, dtype=float), np.mean(tr, 0), np.mean(va, 0), np.mean(te, 0))


def worst_neighbour_ratio(values) -> float:
    """``max_k v[k+1] / v[k]``: above 1 somewhere means the curve rises there."""
    v = np.asarray(values, dtype=float)
    return float(np.max(v[1:] / v[:-1]))
