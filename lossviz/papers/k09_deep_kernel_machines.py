r"""K09: the deep kernel machine (DKM) objective on full Gram matrices (the notebook's set-up).

Adam X. Yang, Maxime Robeyns, Edward Milsom, Ben Anson, Nandi Schoots, Laurence Aitchison,
"A theory of representation learning gives a deep generalisation of kernel methods", ICML 2023,
arXiv:2108.13097.

In the Bayesian representation-learning limit the posterior of a deep GP concentrates on Gram
matrices ``G_1 .. G_L`` that maximise the DKM objective

.. math::

    \mathcal L(G_1, \dots, G_L) = \log P(Y \mid G_L)
        - \sum_{l=1}^{L} \nu_l\, D_{KL}\big(N(0, G_l) \,\|\, N(0, K(G_{l-1}))\big),

a likelihood that learns representations against KL terms that pull each layer's Gram matrix
towards the kernel of the previous one. ``nu -> inf`` gives the NNGP ``G_l = K(G_{l-1})`` (no
representation learning). Here ``nu_l = nu`` for every layer.

Toy: ``P = 50``, ``x ~ N(0, I_4)``, ``y = sin(2 x_1) cos(x_2)`` (one output channel),
``G_0 = X X^T / 4``; ``K`` is the normalised ReLU arc-cosine map on Gram matrices,
``K(G)_ij = sqrt(G_ii G_jj) (sin t + (pi - t) cos t) / pi`` with ``cos t = G_ij / sqrt(G_ii G_jj)``
(Cho & Saul 2009; twice :func:`lossviz.ntk._analytic._dual_relu`, so that ``K(G)_ii = G_ii``);
two hidden layers; likelihood ``N(y; 0, K(G_2) + 0.01 I)``. ``G_l = V_l V_l^T + 1e-6 I`` with ``V_l``
a full ``P x P`` matrix started at the Cholesky factor of the NNGP Gram; the KL prior is
``K(G_{l-1}) + 1e-6 I`` (the same jitter, so that the NNGP start has KL exactly 0 in layer 1).
float64, L-BFGS (``scipy.optimize.minimize``, L-BFGS-B, gradient by autograd), warm-started along the ``nu`` path ``1e4, 10, 1, 0.1``.

Only training-set quantities are computed: prediction at test points needs the paper's
predictive scheme, which is not implemented here.

The general parts are in :mod:`lossviz.ntk`: :func:`~lossviz.ntk.arccos_gram` (a differentiable
Gram-to-Gram arc-cosine map), :func:`~lossviz.ntk.gaussian_kl` and
:func:`~lossviz.ntk.dkm_objective`; this module keeps the toy, the ``V V^T`` parametrisation and
the warm-started L-BFGS path :func:`fit_dkm`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from .. import ntk
from .._result import Result
from .._validate import check_float, check_int
from ..ntk._analytic import _dual_relu

__all__ = [
    "NUS",
    "JITTER",
    "NOISE",
    "Task",
    "make_task",
    "arccos_gram",
    "nngp_grams",
    "gaussian_kl",
    "log_likelihood",
    "dkm_objective",
    "DKMPath",
    "fit_dkm",
    "claim_statistics",
]

NUS = (1e4, 10.0, 1.0, 0.1)
JITTER = 1e-6
NOISE = 0.01


@dataclass(frozen=True, repr=False)
class Task(Result):
    """Inputs ``x`` (P, 4), targets ``y`` (P,) and the input Gram ``g0 = x x^T / 4`` (float64)."""

    x: torch.Tensor
    y: torch.Tensor
    g0: torch.Tensor


def make_task(seed: int, *, p: int = 50, d: int = 4, device=None) -> Task:
    """The notebook's regression task, drawn with a seeded generator (the global RNG is untouched).

    Examples
    --------
    >>> t = make_task(0)
    >>> t.g0.shape, t.y.shape
    (torch.Size([50, 50]), torch.Size([50]))
    """
    p, d = check_int(p, "p", minimum=2), check_int(d, "d", minimum=2)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    x = torch.randn(p, d, generator=g, dtype=torch.float64, device="cpu").to(device)
    y = torch.sin(2 * x[:, 0]) * torch.cos(x[:, 1])
    return Task(x, y, x @ x.T / d)


arccos_gram = ntk.arccos_gram  # the general parts live in lossviz.ntk
gaussian_kl = ntk.gaussian_kl


def _reference_arccos(g: torch.Tensor) -> torch.Tensor:
    """``K(G)`` from the NTK family's dual activation (no gradient): 2 E[relu(u) relu(v)]."""
    d = torch.diagonal(g)
    return 2 * _dual_relu(g.clone(), d[:, None].clone(), d[None, :].clone())[0]


def nngp_grams(task: Task, layers: int = 2) -> list[torch.Tensor]:
    """NNGP Grams ``G_l = K(G_{l-1})`` for ``l = 1..layers`` (from the NTK family's ReLU dual)."""
    layers = check_int(layers, "layers", minimum=1)
    out, g = [], task.g0
    for _ in range(layers):
        g = _reference_arccos(g)
        out.append(g)
    return out


def _eye(g):
    return torch.eye(g.shape[0], dtype=g.dtype, device=g.device)


def log_likelihood(g_top: torch.Tensor, y: torch.Tensor, *, noise: float = NOISE) -> torch.Tensor:
    """``log N(y; 0, K(G_L) + noise I)`` of one output channel."""
    c = arccos_gram(g_top) + noise * _eye(g_top)
    lc = torch.linalg.cholesky(c)
    a = torch.linalg.solve_triangular(lc, y.reshape(-1, 1), upper=False)
    n = y.numel()
    return -0.5 * (a * a).sum() - torch.log(torch.diagonal(lc)).sum() - 0.5 * n * math.log(2 * math.pi)


def _grams(vs, jitter):
    return [v @ v.T + jitter * _eye(v) for v in vs]


def _terms(vs, task, *, jitter=JITTER, noise=NOISE):
    gs = _grams(vs, jitter)
    _, ll, kls = ntk.dkm_objective(gs, task.g0, task.y, 0.0, noise=noise, jitter=jitter, return_terms=True)
    return ll, kls, gs


def dkm_objective(vs, task: Task, nu: float, *, jitter: float = JITTER, noise: float = NOISE) -> torch.Tensor:
    """:func:`lossviz.ntk.dkm_objective` at ``G_l = V_l V_l^T + jitter I`` (to maximise)."""
    return ntk.dkm_objective(_grams(vs, jitter), task.g0, task.y, nu, noise=noise, jitter=jitter)


@dataclass(frozen=True, repr=False)
class DKMPath(Result):
    """Optimised Gram matrices along a ``nu`` path and the training-set quantities at each ``nu``.

    ``grams[i][l]`` is ``G_{l+1}`` at ``nus[i]``; ``nngp`` the NNGP Grams; ``loglik``, ``kl`` (sum over
    layers), ``objective``, ``change`` (``||G_L - NNGP_L||_F / ||NNGP_L||_F``), ``deviation`` (max over
    layers of the same), ``alignment`` (centred kernel-target alignment of ``G_L``) are arrays over
    ``nus``; ``alignment_nngp`` is that of the NNGP top Gram.
    """

    nus: np.ndarray
    grams: list
    nngp: list
    loglik: np.ndarray
    kl: np.ndarray
    objective: np.ndarray
    change: np.ndarray
    deviation: np.ndarray
    alignment: np.ndarray
    alignment_nngp: float


def fit_dkm(
    task: Task,
    nus=NUS,
    *,
    layers: int = 2,
    max_iter: int = 500,
    jitter: float = JITTER,
    noise: float = NOISE,
) -> DKMPath:
    """Maximise the DKM objective by L-BFGS (scipy L-BFGS-B, autograd gradient) at each ``nu``, warm-started along ``nus``.

    Starts at the NNGP (``V_l`` = Cholesky factor of ``NNGP_l``). Deterministic (no randomness).
    """
    nus = [check_float(v, "nus", minimum=0.0) for v in nus]
    if not nus:
        raise ValueError("`nus` must hold at least one value")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    nngp = nngp_grams(task, layers)
    vs = [torch.linalg.cholesky(g + jitter * _eye(g)) for g in nngp]
    grams, ll, kl, obj, ch, dev, al = [], [], [], [], [], [], []
    shapes = [v.shape for v in vs]
    sizes = [v.numel() for v in vs]
    for nu in nus:

        def fun(theta, nu=nu):
            t = torch.as_tensor(theta, dtype=task.g0.dtype, device=task.g0.device)
            ws = [w.reshape(s).requires_grad_(True) for w, s in zip(torch.split(t, sizes), shapes)]
            loss = -dkm_objective(ws, task, nu, jitter=jitter, noise=noise) / task.y.numel()
            grads = torch.autograd.grad(loss, ws)
            return float(loss.detach()), torch.cat([g.reshape(-1) for g in grads]).cpu().numpy()

        theta0 = torch.cat([v.detach().reshape(-1) for v in vs]).cpu().numpy()
        res = minimize(
            fun,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "maxcor": 50, "gtol": 1e-9, "ftol": 1e-15},
        )
        t = torch.as_tensor(res.x, dtype=task.g0.dtype, device=task.g0.device)
        vs = [w.reshape(s) for w, s in zip(torch.split(t, sizes), shapes)]
        with torch.no_grad():
            l_, k_, gs = _terms(vs, task, jitter=jitter, noise=noise)
        gs = [g.detach().clone() for g in gs]
        grams.append(gs)
        ll.append(float(l_))
        kl.append(float(k_.sum()))
        obj.append(float(l_) - nu * float(k_.sum()))
        rel = [ntk.relative_change(n, g) for n, g in zip(nngp, gs)]
        ch.append(rel[-1])
        dev.append(max(rel))
        al.append(ntk.alignment(gs[-1], task.y, centered=True))
    return DKMPath(
        np.asarray(nus, float),
        grams,
        nngp,
        np.asarray(ll),
        np.asarray(kl),
        np.asarray(obj),
        np.asarray(ch),
        np.asarray(dev),
        np.asarray(al),
        ntk.alignment(nngp[-1], task.y, centered=True),
    )


def _strict(a, sign):
    d = np.diff(np.asarray(a, float)) * sign
    return float(d.min())


def claim_statistics(
    seed: int, *, nus=NUS, max_iter: int = 500, device=None, path: DKMPath | None = None
) -> dict:
    """Every number the notebook's claim check asserts, for one seed (about 10 s CPU).

    Keys: ``nngp_deviation`` (max over layers of ``||G_l - NNGP_l|| / ||NNGP_l||`` at ``nus[0]``),
    ``loglik``, ``kl``, ``change``, ``alignment`` (lists over ``nus``), ``alignment_nngp``,
    ``*_min_step`` (smallest successive increase as nu decreases: > 0 iff strictly monotone),
    ``alignment_ratio`` (centred alignment at ``nus[-1]`` / NNGP's), and the control
    ``perm_alignment_nngp`` / ``perm_alignment`` (centred alignment of the NNGP and of the learned
    ``G_L`` at ``nus[-1]`` with a fixed permutation of ``y``: a target the DKM was not trained on).
    """
    task = make_task(seed, device=device)
    if path is None:
        path = fit_dkm(task, nus, max_iter=max_iter)
    g = torch.Generator(device="cpu").manual_seed(10_000 + int(seed))
    perm = torch.randperm(task.y.numel(), generator=g, device="cpu").to(task.y.device)
    y_perm = task.y[perm]
    return {
        "nus": [float(v) for v in path.nus],
        "nngp_deviation": float(path.deviation[0]),
        "loglik": path.loglik.tolist(),
        "kl": path.kl.tolist(),
        "change": path.change.tolist(),
        "alignment": path.alignment.tolist(),
        "alignment_nngp": path.alignment_nngp,
        "loglik_min_step": _strict(path.loglik, 1),
        "kl_min_step": _strict(path.kl, 1),
        "change_min_step": _strict(path.change, 1),
        "alignment_min_step": _strict(path.alignment, 1),
        "alignment_ratio": float(path.alignment[-1] / path.alignment_nngp),
        "perm_alignment_nngp": ntk.alignment(path.nngp[-1], y_perm, centered=True),
        "perm_alignment": ntk.alignment(path.grams[-1][-1], y_perm, centered=True),
    }
