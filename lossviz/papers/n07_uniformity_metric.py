r"""N07: the Wasserstein uniformity metric and dimensional collapse (the notebook's set-up).

Fang, Li, Sun & Wang, "Rethinking The Uniformity Metric in Self-Supervised Learning", ICLR 2024,
arXiv:2403.00642.

Synthetic embeddings: ``Z ~ N(0, I_m)`` with ``N = 2000`` rows; dimensional collapse of degree
``eta`` zeroes the last ``round(eta m)`` coordinates before the rows are L2-normalised. Both
metrics are computed on the normalised rows: :func:`lossviz.losses.uniformity` (Wang & Isola,
``L_U = log mean_{i<j} exp(-2 ||z_i - z_j||^2)``, in ``[-4, 0]``) and
:func:`lossviz.losses.wasserstein_uniformity` (``W2``, in ``[0, sqrt 2]``). Property tests at
``m = 32``: instance cloning (every row twice), feature cloning ``[Z, Z]``, feature baby ``[Z, 0]``,
row and column permutations and a random rotation. All randomness from a seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import losses
from .._result import Result
from .._validate import check_float, check_int

__all__ = [
    "ETAS",
    "collapsed_embeddings",
    "closed_form_w2",
    "MetricCurves",
    "metric_curves",
    "property_changes",
    "claim_statistics",
]

ETAS = tuple(k / 8 for k in range(7))  # 0, 1/8, ..., 3/4


def collapsed_embeddings(m: int, eta: float, *, n: int = 2000, seed: int = 0, device=None) -> torch.Tensor:
    """``N(0, I_m)`` rows with the last ``round(eta m)`` coordinates set to 0, L2-normalised (float64).

    The same ``seed`` gives the same Gaussian draw for every ``eta``, so curves over ``eta`` differ
    only by the collapse.

    Examples
    --------
    >>> z = collapsed_embeddings(8, 0.5, n=10)
    >>> z.shape, bool((z[:, 4:] == 0).all()), bool(torch.allclose(z.norm(dim=1), torch.ones(10, dtype=z.dtype)))
    (torch.Size([10, 8]), True, True)
    """
    m, n = check_int(m, "m", minimum=1), check_int(n, "n", minimum=2)
    eta = check_float(eta, "eta", minimum=0.0, maximum=1.0)
    k = int(round(eta * m))
    if k >= m:
        raise ValueError(f"`eta` = {eta} zeroes all {m} coordinates; need round(eta m) < m")
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    z = torch.randn(n, m, generator=g, dtype=torch.float64, device="cpu").to(device)
    if k:
        z[:, m - k :] = 0.0
    return F.normalize(z, dim=1)


def closed_form_w2(eta) -> np.ndarray:
    """``W2`` of isotropic collapse in the population limit: ``sqrt(2 - 2 sqrt(1 - eta))``."""
    eta = np.asarray(eta, dtype=np.float64)
    return np.sqrt(2 - 2 * np.sqrt(1 - eta))


@dataclass(frozen=True, repr=False)
class MetricCurves(Result):
    """Both metrics against the collapse degree ``etas`` for every dimension ``dims``; arrays (len(dims), len(etas)).

    ``eigenvalues[i][j]`` are the covariance eigenvalues (descending) of dimension ``dims[i]`` at
    ``etas[j]`` (for plots of the spectrum against ``1/m``).
    """

    dims: np.ndarray
    etas: np.ndarray
    w2: np.ndarray
    lu: np.ndarray
    eigenvalues: tuple


def metric_curves(dims=(8, 256), etas=ETAS, *, n: int = 2000, seed: int = 0, device=None) -> MetricCurves:
    """``W2`` and ``L_U`` of :func:`collapsed_embeddings` over ``dims x etas`` (about 1 s for 2 x 7 at N = 2000)."""
    w2 = np.zeros((len(dims), len(etas)))
    lu = np.zeros_like(w2)
    eig = []
    for i, m in enumerate(dims):
        row = []
        for j, eta in enumerate(etas):
            z = collapsed_embeddings(m, eta, n=n, seed=seed, device=device)
            w2[i, j] = losses.wasserstein_uniformity(z)
            lu[i, j] = losses.uniformity(z)
            zc = z - z.mean(0)
            row.append(torch.linalg.eigvalsh(zc.T @ zc / n).flip(0).clamp(min=0).cpu().numpy())
        eig.append(tuple(row))
    return MetricCurves(np.asarray(dims), np.asarray(etas, float), w2, lu, tuple(eig))


def property_changes(m: int = 32, *, n: int = 2000, seed: int = 0, device=None) -> dict:
    """Change of each metric under the paper's transformations of ``Z ~ N(0, I_m)`` (normalised rows).

    Returns ``{name: (dW2, dL_U)}`` for ``"instance cloning"`` (every row twice), ``"feature cloning"``
    (``[Z, Z]``), ``"feature baby"`` (``[Z, 0]``, ``m`` zero columns appended), ``"row permutation"``,
    ``"column permutation"`` and ``"rotation"`` (a Haar-random orthogonal matrix, QR of a Gaussian with
    the sign fix), each measured against ``Z`` itself.
    """
    z = collapsed_embeddings(m, 0.0, n=n, seed=seed, device=device)
    g = torch.Generator(device="cpu").manual_seed(int(seed) + 10_000)
    rows = torch.randperm(n, generator=g, device="cpu").to(z.device)
    cols = torch.randperm(m, generator=g, device="cpu").to(z.device)
    q, r = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64, device="cpu"))
    q = (q * torch.sign(torch.diagonal(r))[None, :]).to(z.device)
    variants = {
        "instance cloning": torch.cat([z, z], dim=0),
        "feature cloning": torch.cat([z, z], dim=1),
        "feature baby": torch.cat([z, torch.zeros_like(z)], dim=1),
        "row permutation": z[rows],
        "column permutation": z[:, cols],
        "rotation": z @ q,
    }
    w0, u0 = losses.wasserstein_uniformity(z), losses.uniformity(z)
    return {
        k: (losses.wasserstein_uniformity(v) - w0, losses.uniformity(v) - u0) for k, v in variants.items()
    }


def claim_statistics(seed: int, *, n: int = 2000, device=None, curves: MetricCurves | None = None) -> dict:
    """Every number the notebook's claim check asserts, for one seed (about 2-3 s on a CPU).

    ``curves`` (optional) reuses a :func:`metric_curves` result of the same seed and ``n`` that contains
    the dimensions 8 and 256 over :data:`ETAS` (the notebook computes m = 8, 32, 256 once).

    Keys: ``w2_rise`` (m = 256, eta 0 -> 1/2, as a fraction of sqrt 2), ``lu_rise`` (same, as a fraction
    of 4), ``rise_ratio``, ``w2_monotone`` (strictly increasing in eta at both m), ``lu_m8_over_m256``
    (L_U change eta 0 -> 1/2 at m = 8 over the one at m = 256), ``closed_form_gap_m8`` (max ``|W2^2 - (2 - 2 sqrt(1 - eta))|``
    at m = 8), ``closed_form_gap_m256`` (shown, not asserted), ``baseline_w2``
    (no collapse at m = 32, the property-test set-up; at m = 256 with N = 2000, ``baseline_w2_m256``, the
    sample covariance's eigenvalue spread lifts it to about 0.18), and ``props`` from :func:`property_changes` (m = 32), plus the curves.
    """
    if curves is None:
        curves = metric_curves((8, 256), ETAS, n=n, seed=seed, device=device)
    dims = [int(d) for d in curves.dims]
    if 8 not in dims or 256 not in dims or tuple(curves.etas) != ETAS:
        raise ValueError(f"`curves` must contain the dimensions 8 and 256 over ETAS, got dims {dims}")
    curves = MetricCurves(
        np.array([8, 256]),
        curves.etas,
        curves.w2[[dims.index(8), dims.index(256)]],
        curves.lu[[dims.index(8), dims.index(256)]],
        (curves.eigenvalues[dims.index(8)], curves.eigenvalues[dims.index(256)]),
    )
    half = ETAS.index(0.5)
    w2_rise = (curves.w2[1, half] - curves.w2[1, 0]) / math.sqrt(2)
    lu_rise = (curves.lu[1, half] - curves.lu[1, 0]) / 4
    cf = closed_form_w2(curves.etas) ** 2
    return {
        "curves": curves,
        "w2_rise": float(w2_rise),
        "lu_rise": float(lu_rise),
        "rise_ratio": float(w2_rise / lu_rise) if lu_rise > 0 else math.inf,
        "w2_monotone": bool(np.all(np.diff(curves.w2, axis=1) > 0)),
        "lu_m8_over_m256": float(
            (curves.lu[0, half] - curves.lu[0, 0]) / (curves.lu[1, half] - curves.lu[1, 0])
        ),
        "closed_form_gap_m8": float(np.abs(curves.w2[0] ** 2 - cf).max()),
        "closed_form_gap_m256": float(np.abs(curves.w2[1] ** 2 - cf).max()),
        "baseline_w2": losses.wasserstein_uniformity(
            collapsed_embeddings(32, 0.0, n=n, seed=seed, device=device)
        ),
        "baseline_w2_m256": float(curves.w2[1, 0]),
        "props": property_changes(32, n=n, seed=seed, device=device),
    }
