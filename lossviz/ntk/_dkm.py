r"""The deep kernel machine (DKM) objective on Gram matrices, and the pieces it is made of.

Adam X. Yang, Maxime Robeyns, Edward Milsom, Ben Anson, Nandi Schoots & Laurence Aitchison,
*A theory of representation learning gives a deep generalisation of kernel methods*, ICML 2023,
arXiv:2108.13097.

In the Bayesian representation-learning limit the posterior of a deep Gaussian process
concentrates on the Gram matrices ``G_1 .. G_L`` that maximise

.. math::

    \mathcal L(G_1, \dots, G_L) = \log P(Y \mid G_L)
        - \sum_{l=1}^{L} \nu_l\, D_{KL}\big(N(0, G_l) \,\|\, N(0, K(G_{l-1}))\big),

with ``G_0`` the input Gram matrix and ``K`` the kernel map of the activation (here the ReLU
arc-cosine map, :func:`arccos_gram`). ``nu -> inf`` gives the NNGP ``G_l = K(G_{l-1})``; finite
``nu`` lets the likelihood pull the representations towards the targets.

Conventions: every matrix is ``(P, P)`` over the same ``P`` training points, float64 is
advised; the likelihood is ``N(y_c; 0, K(G_L) + noise I)`` for each output column ``c``; the KL
prior of layer ``l`` is ``K(G_{l-1}) + jitter I``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._validate import check_float, check_tensor

__all__ = ["arccos_gram", "gaussian_kl", "dkm_objective"]


class _J(torch.autograd.Function):
    """``J(c) = sqrt(1 - c^2) + (pi - arccos c) c`` with its exact derivative ``pi - arccos c``.

    One function because autograd through ``arccos`` and ``sqrt`` separately gives ``inf - inf``
    at ``|c| = 1``, while ``J'`` itself is bounded there.
    """

    @staticmethod
    def forward(ctx, c):
        c = c.clamp(-1.0, 1.0)
        ctx.save_for_backward(c)
        return torch.sqrt((1 - c * c).clamp_min(0.0)) + (math.pi - torch.arccos(c)) * c

    @staticmethod
    def backward(ctx, grad):
        (c,) = ctx.saved_tensors
        return grad * (math.pi - torch.arccos(c))


def _square(g, name):
    g = check_tensor(g, name, ndim=2, floating=True)
    if g.shape[0] != g.shape[1]:
        raise ValueError(f"`{name}` must be a square (P, P) matrix, got shape {tuple(g.shape)}")
    return g


def arccos_gram(gram: torch.Tensor) -> torch.Tensor:
    r"""The normalised ReLU arc-cosine map ``K(G)`` of a Gram matrix, differentiable.

    ``K(G)_ij = sqrt(G_ii G_jj) (sin t + (pi - t) cos t) / pi`` with ``cos t = G_ij / sqrt(G_ii G_jj)``
    (Cho & Saul 2009): the Gram matrix of ``sqrt(2) relu(f)`` for ``f ~ N(0, G)``, so ``K(G)_ii = G_ii``
    (twice the ReLU dual of :func:`analytic`). Gradients are exact also where ``|cos t| = 1``.

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    >>> k = arccos_gram(g)   # orthogonal inputs: E[relu u relu v] = sqrt(G_11 G_22) / (2 pi), times 2
    >>> round(float(k[0, 1]), 6), float(k[1, 1])
    (0.63662, 4.0)
    """
    gram = _square(gram, "gram")
    d = torch.diagonal(gram).clamp_min(1e-300)
    s = d.sqrt()
    prod = s[:, None] * s[None, :]
    k = prod * _J.apply(gram / prod) / math.pi
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return k * (1 - eye) + torch.diag(d)


def gaussian_kl(cov_a: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    r"""``KL(N(0, A) || N(0, B)) = (tr(B^{-1} A) - P + log det B - log det A) / 2``, by Cholesky.

    Both must be symmetric positive definite ``(P, P)`` matrices (a ``ValueError`` otherwise).

    Examples
    --------
    >>> import torch
    >>> a = torch.eye(3, dtype=torch.float64)
    >>> float(gaussian_kl(a, a)), round(float(gaussian_kl(a, 2 * a)), 6)  # 3/2 (1/2 - 1 + log 2)
    (0.0, 0.289721)
    """
    cov_a, cov_b = _square(cov_a, "cov_a"), _square(cov_b, "cov_b")
    if cov_a.shape != cov_b.shape:
        raise ValueError(
            f"`cov_a` and `cov_b` must have the same shape, got {tuple(cov_a.shape)}, {tuple(cov_b.shape)}"
        )
    la, info_a = torch.linalg.cholesky_ex(cov_a)
    lb, info_b = torch.linalg.cholesky_ex(cov_b)
    if int(info_a) or int(info_b):
        raise ValueError(f"`{'cov_a' if int(info_a) else 'cov_b'}` must be symmetric positive definite")
    m = torch.linalg.solve_triangular(lb, la, upper=False)
    logdet = 2 * (torch.log(torch.diagonal(lb)).sum() - torch.log(torch.diagonal(la)).sum())
    return 0.5 * ((m * m).sum() - cov_a.shape[0] + logdet)


def _gaussian_loglik(cov: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    lc, info = torch.linalg.cholesky_ex(cov)
    if int(info):
        raise ValueError("`grams[-1]`: K(G_L) + noise I is not positive definite (raise `noise`)")
    a = torch.linalg.solve_triangular(lc, y, upper=False)
    p, c = y.shape
    return (
        -0.5 * (a * a).sum() - c * torch.log(torch.diagonal(lc)).sum() - 0.5 * p * c * math.log(2 * math.pi)
    )


def dkm_objective(
    grams: Sequence[torch.Tensor],
    g0: torch.Tensor,
    y: torch.Tensor,
    nu: float | Sequence[float],
    *,
    noise: float = 0.01,
    jitter: float = 1e-6,
    return_terms: bool = False,
):
    r"""The DKM objective ``log P(y | G_L) - sum_l nu_l KL(N(0, G_l) || N(0, K(G_{l-1}) + jitter I))``.

    Parameters
    ----------
    grams : ``[G_1, ..., G_L]``, positive definite ``(P, P)`` (parametrise them e.g. as
        ``V V^T + jitter I`` and optimise ``V``); the objective is differentiable in them
    g0 : the input Gram ``(P, P)`` (for example ``X X^T / d``)
    y : targets ``(P,)`` or ``(P, c)`` (one Gaussian likelihood per column)
    nu : ``nu >= 0``, one for every layer or one per layer
    noise : likelihood noise variance (default 0.01)
    jitter : added to each KL prior ``K(G_{l-1})`` (default 1e-6)
    return_terms : also return ``(loglik, kls)`` (the likelihood and the per-layer KLs)

    Returns the objective (to maximise) as a 0-d tensor, or ``(objective, loglik, kls)``.
    """
    if isinstance(grams, torch.Tensor) or not isinstance(grams, Sequence) or not grams:
        raise TypeError("`grams` must be a non-empty list of (P, P) Gram matrices [G_1, ..., G_L]")
    g0 = _square(g0, "g0")
    gs = [_square(g, f"grams[{i}]") for i, g in enumerate(grams)]
    if any(g.shape != g0.shape for g in gs):
        raise ValueError(f"every Gram in `grams` must have the shape of `g0` {tuple(g0.shape)}")
    y = check_tensor(y, "y", ndim=(1, 2), floating=True)
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    if y.shape[0] != g0.shape[0]:
        raise ValueError(f"`y` has {y.shape[0]} rows but the Grams are over {g0.shape[0]} points")
    nus = [nu] * len(gs) if not isinstance(nu, Sequence) else list(nu)
    if len(nus) != len(gs):
        raise ValueError(f"`nu` must be one value or one per layer ({len(gs)}), got {len(nus)}")
    nus = [check_float(v, "nu", minimum=0.0) for v in nus]
    noise = check_float(noise, "noise", positive=True)
    jitter = check_float(jitter, "jitter", minimum=0.0)
    eye = torch.eye(g0.shape[0], dtype=g0.dtype, device=g0.device)
    prev, kls = g0, []
    for g in gs:
        kls.append(gaussian_kl(g, arccos_gram(prev) + jitter * eye))
        prev = g
    kls = torch.stack(kls)
    ll = _gaussian_loglik(arccos_gram(gs[-1]) + noise * eye, y.to(g0.dtype))
    if all(v == nus[0] for v in nus):  # one nu: nu * sum(KL), as written in the paper
        obj = ll - nus[0] * kls.sum()
    else:
        obj = ll - (torch.as_tensor(nus, dtype=kls.dtype, device=kls.device) * kls).sum()
    return (obj, ll, kls) if return_terms else obj
