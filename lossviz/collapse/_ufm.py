r"""Unconstrained-feature models (UFMs) solved to high accuracy, and the reduced objective of a
class-mean geometry.

:func:`fit_ufm` solves the (deep linear) UFM with free features by full-batch L-BFGS in float64
(Mixon, Parshall & Pi, "Neural collapse with unconstrained features", Sampling Theory, Signal
Processing, and Data Analysis 20 (2022), arXiv:2011.11619; Zhu, Ding, Zhou, Li, You, Sulam & Qu,
"A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021,
arXiv:2105.02375; the deep linear head and the imbalanced closed form follow Dang, Tran, Osher,
Tran-The, Ho & Nguyen, "Neural Collapse in Deep Linear Networks: From Balanced to Imbalanced
Data", ICML 2023, arXiv:2301.00437). L-BFGS is a special solver: it is not a loop over a torch
optimiser's steps that :func:`lossviz.train.fit` could run, and it takes no callbacks.

:func:`ufm_geometry_loss` evaluates the UFM objective of a fixed geometry minimised over its
scale (Garrod & Keating, "The Persistence of Neural Collapse Despite Low-Rank Bias", 2024,
arXiv:2410.23169).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor
from ..models import UFM
from ._checks import F64
from ._metrics import NCMetrics, nc_metrics
from ._statistics import class_means

__all__ = ["UFMResult", "fit_ufm", "ufm_geometry_loss"]


@dataclass(frozen=True, repr=False)
class UFMResult(Result):
    """A solved unconstrained-feature model.

    ``features`` is ``H`` (N, d); ``weights`` the head matrices ``(W_1, ..., W_L)`` (``W_L`` is
    the classifier, shape (K, d)); ``bias`` the classifier bias or ``None``;
    ``layer_features[l]`` the features entering layer ``l + 1`` (``layer_features[0] = H``).
    Diagnostics: final ``loss`` (full objective), ``grad_norm`` (max-abs gradient), L-BFGS
    ``iterations``, ``converged`` (``grad_norm <= tol``).
    """

    features: torch.Tensor
    weights: tuple[torch.Tensor, ...]
    bias: torch.Tensor | None
    labels: torch.Tensor
    counts: tuple[int, ...]
    loss_name: str
    depth: int
    lambda_W: float
    lambda_H: float
    feature_penalty: str
    loss: float
    grad_norm: float
    iterations: int
    converged: bool
    seed: int

    @property
    def classifier(self) -> torch.Tensor:
        return self.weights[-1]

    @property
    def layer_features(self) -> tuple[torch.Tensor, ...]:
        out = [self.features]
        h = self.features
        for w in self.weights[:-1]:
            h = h @ w.T
            out.append(h)
        return tuple(out)

    def metrics(self, layer: int = -1, **kw) -> NCMetrics:
        """:func:`nc_metrics` of the features entering the classifier (``layer=-1``) or layer ``l``."""
        feats = self.layer_features[layer]
        clf = (self.classifier, self.bias) if layer in (-1, self.depth - 1) else None
        return nc_metrics(feats, self.labels, clf, **kw)

    def class_means(self, layer: int = -1) -> torch.Tensor:
        """Class means ``(K, d)`` of the features entering layer ``layer + 1`` (``-1``: the classifier)."""
        return class_means(self.layer_features[layer], self.labels, len(self.counts))

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Class means, classifier rows and the target frame (see :func:`plotting.plot_frame`).

        The target is the simplex ETF (centred means) for CE and the orthogonal frame (uncentred)
        for MSE, the optima of the balanced depth-1 model.
        """
        from .plotting import plot_frame

        ce = self.loss_name == "ce"
        kw.setdefault("target", "etf" if ce else "orthogonal")
        kw.setdefault("center", ce)
        return plot_frame(self.class_means(), self.classifier, backend=backend, ax=ax, **kw)


def lbfgs_solve(
    params: Sequence[torch.Tensor],
    objective,
    *,
    max_iter: int,
    tol: float,
    history_size: int = 100,
    max_eval: int | None = None,
):
    """Minimise ``objective()`` over ``params`` with full-batch L-BFGS (strong-Wolfe line search).

    The special solver of the UFM models (float64, tolerance on the max-abs gradient). Returns
    ``(iterations, final_objective, gradients)``, the gradients of the final objective taken with
    ``torch.autograd.grad`` (no ``.grad`` is left on ``params``).
    """
    params = list(params)
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_eval,
        tolerance_grad=tol,
        tolerance_change=1e-16,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        v = objective()
        v.backward()
        return v

    opt.step(closure)
    iterations = int(opt.state[params[0]].get("n_iter", 0))
    opt.zero_grad(set_to_none=True)
    final = objective()
    return iterations, final, torch.autograd.grad(final, params)


def _ufm_data_loss(z: torch.Tensor, y: torch.Tensor, k: int, loss: str) -> torch.Tensor:
    if loss == "ce":
        return torch.nn.functional.cross_entropy(z, y)
    onehot = torch.nn.functional.one_hot(y, k).to(z.dtype)
    return 0.5 * (z - onehot).square().sum(1).mean()


def fit_ufm(
    counts: Sequence[int],
    dim: int,
    *,
    loss: str = "ce",
    depth: int = 1,
    lambda_W: float = 5e-3,
    lambda_H: float | None = None,
    feature_penalty: str = "sum",
    bias: bool = False,
    init_scale: float = 1.0,
    max_iter: int = 2000,
    tol: float = 1e-9,
    seed: int = 0,
    dtype: torch.dtype = F64,
    device=None,
) -> UFMResult:
    r"""Solve an unconstrained-feature model (UFM) with a deep linear head by full-batch L-BFGS.

    .. math::
        \min_{H, W_1..W_L}\ \frac1N\sum_i \ell(W_L\cdots W_1 h_i + b, y_i)
        + \frac{\lambda_W}{2}\sum_l\|W_l\|_F^2 + \frac{\lambda_H}{2}\,c\,\|H\|_F^2,

    with :math:`\ell` cross-entropy (``loss="ce"``) or :math:`\frac12\|z - e_y\|^2` (``"mse"``),
    and :math:`c = 1` (``feature_penalty="sum"``, the convention of Dang et al. and of the
    closed form in :func:`imbalanced_frame`) or :math:`c = 1/N` (``"mean"``). The bias, if any,
    is not penalised. Hidden widths equal ``dim``.

    L-BFGS with a strong-Wolfe line search in float64 (Adam is not accurate enough to check
    geometry to 1e-3; tiny initial scales start at the saddle at zero, hence ``init_scale=1``).
    The features ``H`` are built by :class:`lossviz.models.UFM` with this ``seed``; the caller's
    global torch RNG is left untouched.

    Parameters
    ----------
    counts : class sizes ``n_k`` (samples are ordered by class).
    dim : feature width ``d`` (>= K for the MSE orthogonal frame).
    loss, depth, lambda_W, lambda_H (default ``lambda_W``), feature_penalty, bias : the model.
    init_scale, seed : initialisation. max_iter, tol : L-BFGS budget and gradient tolerance.

    References
    ----------
    Dang, Tran, Osher, Tran-The, Ho & Nguyen, "Neural Collapse in Deep Linear Networks: From
    Balanced to Imbalanced Data", ICML 2023, arXiv:2301.00437.

    Example
    -------
    >>> r = fit_ufm([10, 10, 10], 4, loss="ce", lambda_W=1e-2, max_iter=300)
    >>> r.metrics().nc1 < 1e-6
    True
    """
    counts = tuple(check_int(c, "counts[i]", minimum=1) for c in counts)
    k = len(counts)
    if k < 2:
        raise ValueError(f"`counts` needs at least two classes, got {len(counts)}")
    dim = check_int(dim, "dim", minimum=1)
    check_choice(loss, "loss", ("ce", "mse"))
    depth = check_int(depth, "depth", minimum=1)
    lw = check_float(lambda_W, "lambda_W", minimum=0.0)
    lh = lw if lambda_H is None else check_float(lambda_H, "lambda_H", minimum=0.0)
    check_choice(feature_penalty, "feature_penalty", ("sum", "mean"))
    init_scale = check_float(init_scale, "init_scale", positive=True)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol", positive=True)
    seed = check_int(seed, "seed", minimum=0)
    n = sum(counts)
    y = torch.repeat_interleave(torch.arange(k, device=device), torch.tensor(counts, device=device))
    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init would advance the global RNG
        model = UFM(
            n, dim, k, depth=depth, bias=bias, init_scale=init_scale, dtype=dtype, device=device, seed=seed
        )
    params = [p for p in model.parameters()]
    hscale = 1.0 if feature_penalty == "sum" else 1.0 / n

    def objective():
        z = model()
        val = _ufm_data_loss(z, y, k, loss)
        val = val + 0.5 * lh * hscale * model.H.square().sum()
        for layer in model.layers:
            val = val + 0.5 * lw * layer.weight.square().sum()
        return val

    iterations, final, grads = lbfgs_solve(
        params, objective, max_iter=max_iter, tol=tol, history_size=100, max_eval=int(max_iter * 1.25) + 10
    )
    gnorm = max(float(g.abs().max()) for g in grads)
    with torch.no_grad():
        weights = tuple(layer.weight.detach().clone() for layer in model.layers)
        b = model.layers[-1].bias
        return UFMResult(
            features=model.H.detach().clone(),
            weights=weights,
            bias=None if b is None else b.detach().clone(),
            labels=y,
            counts=counts,
            loss_name=loss,
            depth=depth,
            lambda_W=lw,
            lambda_H=lh,
            feature_penalty=feature_penalty,
            loss=float(final),
            grad_norm=gnorm,
            iterations=iterations,
            converged=gnorm <= max(tol, 1e-7),
            seed=seed,
        )


def ufm_geometry_loss(
    means: torch.Tensor | np.ndarray,
    *,
    depth: int = 1,
    lambda_: float = 5e-3,
    n_per_class: int = 1,
    loss: str = "ce",
) -> tuple[float, float]:
    r"""Reduced UFM objective of a class-mean geometry, minimised over its overall scale.

    For balanced classes whose logits are :math:`z_i = s\,G_{y_i}` with the pattern
    :math:`G = MM^\top` (``M`` the unit-scale means, rows), the cheapest factorisation of the
    ``K x N`` logit matrix :math:`Z` into ``depth`` weight matrices and ``H`` (all with penalty
    :math:`\lambda/2\|\cdot\|_F^2`, ``H`` summed over samples) costs
    :math:`\frac{(L+1)\lambda}{2}\sum_i\sigma_i(Z)^{2/(L+1)}` with :math:`\sigma_i(Z) = s\sqrt n\,\sigma_i(G)`.
    Returns ``(objective, best_scale)`` from a bounded scalar minimisation over ``s``.
    Comparing geometries (simplex ETF vs "cross-polytope") shows why deep heads with CE prefer
    low-rank configurations (Garrod & Keating, "The Persistence of Neural Collapse Despite
    Low-Rank Bias", 2024, arXiv:2410.23169).
    """
    from scipy.optimize import minimize_scalar

    m = torch.as_tensor(means, dtype=F64, device="cpu")  # a scalar root-find on the host
    m = check_tensor(m, "means", ndim=2, floating=True)
    depth = check_int(depth, "depth", minimum=1)
    lam = check_float(lambda_, "lambda_", positive=True)
    n = check_int(n_per_class, "n_per_class", minimum=1)
    check_choice(loss, "loss", ("ce", "mse"))
    g = m @ m.T
    k = g.shape[0]
    sv = torch.linalg.svdvals(g).numpy()
    y = torch.arange(k, device=m.device)
    p = 2.0 / (depth + 1)

    def f(log_s: float) -> float:
        s = math.exp(log_s)
        data = float(_ufm_data_loss(s * g, y, k, loss))
        return data + (depth + 1) * lam / 2 * float(np.sum((s * math.sqrt(n) * sv) ** p))

    res = minimize_scalar(f, bounds=(-12.0, 8.0), method="bounded", options={"xatol": 1e-10})
    return float(res.fun), math.exp(float(res.x))
