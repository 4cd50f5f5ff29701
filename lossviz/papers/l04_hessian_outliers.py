r"""L04: the Hessian of a small over-parametrised classifier, its outliers and its bulk.

Paper: L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of the Hessian
of Over-Parametrized Neural Networks", ICLR 2018 workshop, arXiv:1706.04454. The outliers are
attributed to classes with the class-mean gradients of V. Papyan, "Measurements of Three-Level
Hierarchical Structure in the Outliers in the Spectrum of Deepnet Hessians", ICML 2019,
arXiv:1901.08244. Notebook: ``notebooks/landscape/L04_hessian_outliers.ipynb``.

The set-up: ``k`` equidistant Gaussian classes in ``d = 10`` (centres ``6 x`` rows of a random
orthonormal matrix, noise 0.3, 25 points a class), a one-hidden-layer ReLU MLP in float64 trained
with full-batch Adam (lr 1e-3) until the cross-entropy falls below ``stop_loss``, and the exact
Hessian. :func:`outlier_case` returns the spectrum and the statistics the notebook checks:

* ``n_lead``: how many leading eigenvectors in a row have more than half their energy in the span
  of the ``k`` class-mean gradients (the claim: exactly ``k``);
* ``gap_ratio = lambda_k / lambda_{k+1}``;
* ``bulk_mass = sum_{i > k} |lambda_i|`` and ``outlier_mass = sum_{i <= k} lambda_i``: widening
  the network should scale the first and leave the count (and roughly the size) of the second;
* ``bulk_median``: the median ``|lambda_i|`` of the bulk relative to ``lambda_k`` (a bulk near zero).

>>> c = outlier_case(2, 8, data_seed=0, init_seed=0, max_steps=400)
>>> c.k, c.eigenvalues.shape == (c.num_params,), c.n_lead <= 4 * c.k
(2, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import curvature, data, models, train
from .._result import Result
from .._validate import check_int

__all__ = ["OutlierCase", "outlier_case", "class_data", "lead_in_span"]

F64 = torch.float64
CE = torch.nn.functional.cross_entropy


def class_data(k: int, seed: int, *, n_per_class: int = 25, device=None) -> data.Dataset:
    """``k`` equidistant Gaussian classes in 10 dimensions (float64)."""
    return data.gaussian_mixture(
        n_per_class,
        k,
        10,
        separation=6.0,
        noise=0.3,
        orthogonal_means=True,
        seed=seed,
        dtype=F64,
        device=device,
    )


def lead_in_span(energy: np.ndarray, threshold: float = 0.5) -> int:
    """Number of leading entries in a row with ``energy > threshold``."""
    above = np.asarray(energy) > threshold
    return len(above) if above.all() else int(np.argmin(above))


@dataclass(frozen=True, repr=False)
class OutlierCase(Result):
    """The exact Hessian spectrum of one trained (or untrained) network and its statistics.

    ``eigenvalues`` are in decreasing order with ``eigenvectors`` (columns, a tensor) in the same
    order; ``energy[i]`` is the fraction of eigenvector ``i``'s energy in the span of the
    class-mean gradients (the first ``4 k``); see the module docstring for the statistics.
    """

    k: int
    width: int
    num_params: int
    steps: int
    loss: float
    eigenvalues: np.ndarray
    eigenvectors: torch.Tensor
    energy: np.ndarray
    n_lead: int
    gap_ratio: float
    bulk_mass: float
    outlier_mass: float
    bulk_median: float
    trained: bool


def outlier_case(
    k: int,
    width: int,
    *,
    data_seed: int,
    init_seed: int,
    stop_loss: float = 0.02,
    max_steps: int = 20000,
    trained: bool = True,
    n_per_class: int = 25,
    device=None,
    return_model: bool = False,
):
    """Train (or not) the MLP ``10 - width - k`` on :func:`class_data` and analyse its exact Hessian.

    Returns an :class:`OutlierCase` (and ``(dataset, model)`` with ``return_model=True``).
    """
    k = check_int(k, "k", minimum=2)
    width = check_int(width, "width", minimum=1)
    ds = class_data(k, data_seed, n_per_class=n_per_class, device=device)
    net = models.MLP(10, (width,), k, activation="relu", dtype=F64, seed=init_seed, device=device)
    steps, loss = 0, float("nan")
    if trained:
        hist = train.fit(
            net,
            CE,
            ds,
            steps=max_steps,
            optimizer="adam",
            lr=1e-3,
            callbacks=[lambda step, model, loss, h: loss < stop_loss],
            progress=False,
        )
        steps, loss = len(hist.loss) - 1, float(hist.loss[-1])
    else:
        with torch.no_grad():
            loss = float(CE(net(ds.x), ds.y))
    H = curvature.exact_hessian(net, CE, ds)
    lam, U = H.eigh()
    lam, U = lam.flip(0), U.flip(1)  # decreasing
    G = curvature.class_mean_gradients(net, CE, ds)
    energy = curvature.subspace_energy(U[:, : 4 * k], G).cpu().numpy()
    ev = lam.cpu().numpy()
    bulk = ev[k:]
    case = OutlierCase(
        k=k,
        width=width,
        num_params=len(ev),
        steps=steps,
        loss=loss,
        eigenvalues=ev,
        eigenvectors=U,
        energy=energy,
        n_lead=lead_in_span(energy),
        gap_ratio=float(ev[k - 1] / ev[k]),
        bulk_mass=float(np.abs(bulk).sum()),
        outlier_mass=float(ev[:k].sum()),
        bulk_median=float(np.median(np.abs(bulk)) / ev[k - 1]),
        trained=bool(trained),
    )
    return (case, ds, net) if return_model else case


def one_per_class(case: OutlierCase, *, min_gap: float = 1.4) -> bool:
    """The claim's test for one case: exactly ``k`` leading eigenvectors in the class-mean span and
    a clear gap ``lambda_k / lambda_{k+1} >= min_gap``."""
    return case.n_lead == case.k and case.gap_ratio >= min_gap


__all__ += ["one_per_class"]
