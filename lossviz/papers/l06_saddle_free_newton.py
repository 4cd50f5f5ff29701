r"""L06: gradient descent, Newton and saddle-free Newton on small functions with exact Hessians.

Papers: R. Pascanu, Y. N. Dauphin, S. Ganguli, Y. Bengio, "On the saddle point problem for
non-convex optimization", 2014, arXiv:1405.4604; the saddle-free Newton method as developed in
Y. Dauphin, R. Pascanu, C. Gulcehre, K. Cho, S. Ganguli, Y. Bengio, "Identifying and attacking
the saddle point problem in high-dimensional non-convex optimization", NeurIPS 2014,
arXiv:1406.2572. Notebook: ``notebooks/landscape/L06_saddle_free_newton.ipynb``.

With ``H = U diag(lambda) U^T`` and the gradient ``g``, Newton's step ``-H^{-1} g`` rescales each
eigen-direction by ``1 / lambda`` and so is attracted to saddles (negative curvature turns into
attraction); gradient descent ``-eta g`` is repelled but, with ``eta`` capped by the largest
curvature, crawls where the negative curvature is small; saddle-free Newton
``-(|H| + delta I)^{-1} g`` with ``|H| = U diag(|lambda|) U^T`` moves away from saddles at the
Newton speed.

The notebook's two toys: :func:`saddle_2d` (``f = x^2/2 + eps (y^4/4 - y^2/2)``) raced by
:func:`race` (Newton, SFN and the best GD step size of a grid, :func:`best_gd`), and the deep
linear network :func:`linear_net` (``L = ||W2 W1 - T||_F^2 / 2``, saddles where only some singular
modes of ``T`` are learned).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _plot
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor

__all__ = [
    "OptimizationPath",
    "second_order_path",
    "plot_paths_2d",
    "saddle_2d",
    "best_gd",
    "race",
    "LinearNet",
    "linear_net",
]


@dataclass(frozen=True, repr=False)
class OptimizationPath(Result):
    """Iterates of :func:`second_order_path`.

    Attributes
    ----------
    points : np.ndarray (T + 1, n)
    values : np.ndarray (T + 1,)
        ``f`` at each iterate.
    grad_norms : np.ndarray (T + 1,)
    min_eigenvalues : np.ndarray (T + 1,)
        Smallest Hessian eigenvalue at each iterate.
    step_sizes : np.ndarray (T,)
        The accepted step length multiplier per step (1 without line search).
    method, settings : what was run.
    stopped : str
        ``"max_steps"``, ``"gradient"`` (``|g| <= grad_tol``), ``"target"`` (``f <= target``),
        ``"diverged"`` or ``"stalled"`` (line search failed).
    """

    points: np.ndarray
    values: np.ndarray
    grad_norms: np.ndarray
    min_eigenvalues: np.ndarray
    step_sizes: np.ndarray
    method: str
    stopped: str
    settings: dict

    def steps_to(self, target: float) -> int | None:
        """First step at which ``f <= target`` (``None`` if never)."""
        hit = np.nonzero(self.values <= target)[0]
        return int(hit[0]) if len(hit) else None


def second_order_path(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: Any,
    *,
    method: str = "sfn",
    steps: int = 100,
    lr: float = 1.0,
    damping: float = 1e-4,
    line_search: bool | None = None,
    armijo: float = 1e-4,
    pinv_rtol: float = 1e-12,
    grad_tol: float = 0.0,
    divergence: float = 1e12,
    target: float | None = None,
    track_hessian: bool | None = None,
) -> OptimizationPath:
    r"""Run gradient descent, Newton or saddle-free Newton on ``f`` with its exact Hessian.

    ``f`` maps a float64 vector to a scalar tensor (it is differentiated with autograd; the
    Hessian costs ``n`` backward passes, so keep ``n`` small). With
    ``H = U diag(lambda) U^T`` and ``g`` the gradient:

    * ``"gd"``: ``x <- x - lr g``.
    * ``"newton"``: ``x <- x - lr H^+ g`` with the pseudo-inverse ignoring directions with
      ``|lambda| <= pinv_rtol max|lambda|`` (exactly flat directions); attracted to *any* critical
      point, saddles included, because it rescales each direction by ``1/lambda``.
    * ``"sfn"``: saddle-free Newton, ``x <- x - t (|H| + damping I)^{-1} g`` with
      ``|H| = U diag(|lambda|) U^T``: a descent direction that moves *away* from saddles along
      negative curvature at the Newton speed (Dauphin et al. 2014, arXiv:1406.2572).
      ``t`` from Armijo backtracking (``f(x + t d) <= f(x) + armijo t g.d``, halving from ``lr``)
      when ``line_search`` (default: on for ``"sfn"``, off otherwise).

    Stops early when ``|g| <= grad_tol`` or, if ``target`` is given, once ``f <= target``.
    ``track_hessian`` (default: on for Newton and SFN, off for GD) computes the smallest Hessian
    eigenvalue at every iterate; when off it is computed at the last iterate only (NaN elsewhere),
    which makes long GD runs cheap.

    Example
    -------
    >>> import torch
    >>> f = lambda p: p[0] ** 2 / 2 + 0.01 * (p[1] ** 4 / 4 - p[1] ** 2 / 2)
    >>> path = second_order_path(f, [1.0, 1e-4], method="newton", steps=20)
    >>> bool(abs(path.points[-1, 1]) < 1e-8)      # Newton converged to the saddle y = 0
    True
    """
    check_choice(method, "method", ("gd", "newton", "sfn"))
    steps = check_int(steps, "steps", minimum=0)
    lr = check_float(lr, "lr", positive=True)
    damping = check_float(damping, "damping", minimum=0.0)
    armijo = check_float(armijo, "armijo", minimum=0.0, maximum=1.0)
    grad_tol = check_float(grad_tol, "grad_tol", minimum=0.0)
    if not callable(f):
        raise TypeError("`f` must be callable(x: tensor) -> scalar tensor")
    x = (
        x0
        if isinstance(x0, torch.Tensor)
        else torch.as_tensor(np.asarray(x0, dtype=np.float64), device="cpu")
    )
    x = check_tensor(x.to(torch.float64).reshape(-1).clone(), "x0", ndim=1, floating=True)
    if line_search is None:
        line_search = method == "sfn"
    if track_hessian is None:
        track_hessian = method != "gd"

    def hessf(z):
        return torch.autograd.functional.hessian(f, z)

    def gvf(z):
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            v = f(z)
            if not isinstance(v, torch.Tensor) or v.numel() != 1:
                raise ValueError("`f` must return a scalar tensor")
            (g,) = torch.autograd.grad(v.reshape(()), z, allow_unused=True)
        g = torch.zeros_like(z) if g is None else g
        return g.detach(), v.detach()

    def fval(z):
        v = f(z)
        if not isinstance(v, torch.Tensor) or v.numel() != 1:
            raise ValueError("`f` must return a scalar tensor")
        return float(v)

    def min_eig(z):
        H = hessf(z).reshape(z.numel(), z.numel())
        return torch.linalg.eigh((H + H.T) / 2)

    pts, vals, gns, mins, ts = [], [], [], [], []
    stopped = "max_steps"
    while True:
        g, v = gvf(x)
        pts.append(x.clone())
        vals.append(float(v))
        gns.append(float(g.norm()))
        if not math.isfinite(vals[-1]) or abs(vals[-1]) > divergence:
            stopped = "diverged"
            mins.append(math.nan)
            break
        need_h = method != "gd" or track_hessian
        if need_h:
            lam, U = min_eig(x)
        mins.append(float(lam[0]) if need_h else math.nan)
        if len(ts) == steps:
            break
        if gns[-1] <= grad_tol:
            stopped = "gradient"
            break
        if target is not None and vals[-1] <= target:
            stopped = "target"
            break
        if method == "gd":
            d = -g
        elif method == "newton":
            keep = lam.abs() > pinv_rtol * lam.abs().max().clamp_min(1e-300)
            inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
            d = -(U @ (inv * (U.T @ g)))
        else:
            d = -(U @ ((U.T @ g) / (lam.abs() + damping)))
        t = lr
        if line_search:
            f0, slope = vals[-1], float(g @ d)
            while fval(x + t * d) > f0 + armijo * t * slope and t > 1e-20:
                t /= 2
            if t <= 1e-20:
                stopped = "stalled"
                break
        x = x + t * d
        ts.append(t)
    if not track_hessian and stopped != "diverged":
        mins[-1] = float(min_eig(x)[0][0])
    return OptimizationPath(
        torch.stack(pts).cpu().numpy(),
        np.array(vals),
        np.array(gns),
        np.array(mins),
        np.array(ts),
        method,
        stopped,
        {
            "lr": lr,
            "damping": damping,
            "line_search": line_search,
            "armijo": armijo,
            "steps": steps,
            "target": target,
        },
    )


def saddle_2d(eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""``f(p) = p_0^2 / 2 + eps (p_1^4 / 4 - p_1^2 / 2)``: a saddle at 0 with curvatures ``1`` and
    ``-eps``, minima ``(0, +-1)`` with ``f = -eps / 4``."""
    eps = check_float(eps, "eps", positive=True)
    return lambda p: p[0] ** 2 / 2 + eps * (p[1] ** 4 / 4 - p[1] ** 2 / 2)


def best_gd(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: Any,
    lrs: Sequence[float],
    target: float,
    *,
    max_steps: int = 4000,
) -> tuple[OptimizationPath, float, int | None]:
    """Gradient descent with the step size from ``lrs`` that reaches ``f <= target`` in the fewest steps.

    Larger step sizes are tried first and each later run is capped at the best count so far (it
    can only matter if it is faster). Returns ``(path, lr, steps)``; when no step size reaches the
    target, the largest step size's uncapped run with ``steps=None``.
    """
    lrs = [check_float(lr, "lrs[i]", positive=True) for lr in lrs]
    if not lrs:
        raise ValueError("`lrs` must list at least one step size")
    best: tuple[OptimizationPath | None, float | None, int | None] = (None, None, None)
    cap = check_int(max_steps, "max_steps", minimum=1)
    for lr in sorted(lrs, reverse=True):
        path = second_order_path(f, x0, method="gd", lr=lr, steps=cap, target=target)
        s = path.steps_to(target)
        if s is not None and (best[2] is None or s < best[2]):
            best, cap = (path, lr, s), s
    if best[0] is None:  # nobody reached the target: keep the largest step size's run for the plots
        lr = max(lrs)
        best = (second_order_path(f, x0, method="gd", lr=lr, steps=max_steps), lr, None)
    return best  # type: ignore[return-value]


def race(
    x0: Any, eps: float, lrs: Sequence[float], *, max_gd_steps: int = 4000, damping: float = 1e-4
) -> dict:
    """Newton, saddle-free Newton and the best-step-size GD on :func:`saddle_2d` from ``x0``.

    "Reached" means ``f <= -0.99 eps / 4`` (99% of the way from the saddle down to the minimum).
    Returns the three paths, the best GD step size and the steps each needed (``None``: never).
    """
    f = saddle_2d(eps)
    target = -0.99 * eps / 4
    newton = second_order_path(f, x0, method="newton", steps=50)
    sfn = second_order_path(f, x0, method="sfn", damping=damping, steps=200, target=target)
    gd, best_lr, gd_steps = best_gd(f, x0, lrs, target, max_steps=max_gd_steps)
    return {
        "newton": newton,
        "sfn": sfn,
        "gd": gd,
        "best_lr": best_lr,
        "gd_steps": gd_steps,
        "sfn_steps": sfn.steps_to(target),
        "x0": x0,
        "eps": eps,
    }


@dataclass(frozen=True, repr=False)
class LinearNet(Result):
    r"""The deep linear network ``L(W1, W2) = ||W2 W1 - T||_F^2 / 2`` (parameters flattened).

    ``T = U diag(sigma) V^T``; every subset of learned singular modes is a critical point with
    loss ``sum_{unlearned} sigma_i^2 / 2`` (:attr:`saddle_levels`, from "nothing learned" down).
    """

    target: torch.Tensor
    sigma: torch.Tensor
    theta0: torch.Tensor
    hidden: int

    @property
    def d(self) -> int:
        return self.target.shape[0]

    def loss(self, p: torch.Tensor) -> torch.Tensor:
        h, d = self.hidden, self.d
        W1 = p[: h * d].reshape(h, d)
        W2 = p[h * d :].reshape(d, h)
        return 0.5 * ((W2 @ W1 - self.target) ** 2).sum()

    @property
    def saddle_levels(self) -> list[float]:
        r = int((self.sigma > 0).sum())
        return [0.5 * float((self.sigma[k:] ** 2).sum()) for k in range(r + 1)]


def linear_net(
    seed: int,
    *,
    d: int = 6,
    sigma: Sequence[float] = (10.0, 1.0, 0.1),
    init_scale: float = 1e-3,
    device=None,
) -> LinearNet:
    """``T`` with singular values ``sigma`` (padded with zeros to ``d``) and random orthogonal
    singular vectors, ``W1, W2`` of shape ``(d, d)`` initialised at ``init_scale N(0, 1)`` (float64)."""
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    F64 = torch.float64
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64, device=g.device))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64, device=g.device))
    s = torch.zeros(d, dtype=F64, device=g.device)
    s[: len(sigma)] = torch.tensor(list(sigma), dtype=F64, device=g.device)
    T = U @ torch.diag(s) @ V.T
    theta0 = init_scale * torch.randn(2 * d * d, generator=g, dtype=F64, device=g.device)
    return LinearNet(T.to(device), s.to(device), theta0.to(device), d)


def plot_paths_2d(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    paths: Mapping[str, OptimizationPath | np.ndarray],
    *,
    xlim: tuple[float, float] = (-2.0, 2.0),
    ylim: tuple[float, float] = (-1.5, 1.5),
    steps: int = 201,
    levels: int = 30,
    backend: str = "matplotlib",
    ax=None,
    title: str | None = None,
):
    """Contour plot of a 2-D function ``f(X, Y)`` (vectorised numpy) with optimiser paths on top.

    ``paths`` maps a label to an :class:`OptimizationPath` (or an array of points (T, 2)); path
    ``i`` is drawn in the fixed colour ``lossviz._plot.color(i)``, its end point marked by a cross.
    """
    backend = _plot.check_backend(backend)
    steps = check_int(steps, "steps", minimum=2)
    xs, ys = np.linspace(*xlim, steps), np.linspace(*ylim, steps)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    Z = np.asarray(f(X, Y), dtype=np.float64)
    pts = {}
    for label, p in paths.items():
        arr = p.points if isinstance(p, OptimizationPath) else np.asarray(p)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"`paths[{label!r}]` must hold 2-D points, got shape {arr.shape}")
        pts[label] = arr
    fig, ax = _plot.new_figure(backend, ax, figsize=(6, 4.5))
    if backend == "matplotlib":
        cs = ax.contourf(X, Y, Z, levels=levels, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="f")
        for i, (label, arr) in enumerate(pts.items()):
            ax.plot(arr[:, 0], arr[:, 1], ".-", ms=3, lw=1, color=_plot.color(i), label=label)
            ax.plot(arr[-1, 0], arr[-1, 1], "x", ms=8, color=_plot.color(i))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.legend(loc="upper right", fontsize=8)
        if getattr(fig, "_lossviz_owned", False):
            fig.tight_layout()
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel="x", ylabel="y")
    import plotly.graph_objects as go

    fig.add_trace(
        go.Contour(
            x=xs, y=ys, z=Z.T, colorscale="Viridis", ncontours=levels, name="f", colorbar={"title": "f"}
        )
    )
    for i, (label, arr) in enumerate(pts.items()):
        fig.add_trace(
            go.Scatter(
                x=arr[:, 0],
                y=arr[:, 1],
                mode="lines+markers",
                marker_size=3,
                line_color=_plot.color(i),
                name=label,
            )
        )
    fig.update_layout(template="plotly_white")
    return _plot.finish(fig, backend, title=title, xlabel="x", ylabel="y")
