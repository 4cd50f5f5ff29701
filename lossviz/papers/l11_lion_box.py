r"""Set-up of notebook L11: Lion with decoupled weight decay solves a box-constrained problem.

Lizhang Chen, Bo Liu, Kaizhao Liang & Qiang Liu, *Lion Secretly Solves Constrained Optimization:
As Lyapunov Predicts*, ICLR 2024, arXiv:2310.05898. Lion itself: Xiangning Chen et al., *Symbolic
Discovery of Optimization Algorithms*, NeurIPS 2023, arXiv:2302.06675.

Lion (in Chen et al. 2023's form, with gradient :math:`g_t = \nabla f(x_t)`)

.. math::

    c_t = \beta_1 m_t + (1 - \beta_1) g_t,\qquad
    x_{t+1} = x_t - \eta_t\big(\operatorname{sign}(c_t) + \lambda x_t\big),\qquad
    m_{t+1} = \beta_2 m_t + (1 - \beta_2) g_t .

With :math:`m' = -m` this is the Euler discretisation of the paper's Lion-:math:`\mathcal K` ODE
(:math:`\mathcal K = \|\cdot\|_1`) with :math:`\gamma = \alpha = (1 - \beta_2)/\eta` and
:math:`\varepsilon = (1 - \beta_1)/\gamma`. The paper's Lyapunov function is, on the box
:math:`\|\lambda x\|_\infty \le 1` (where :math:`\mathcal K^*(\lambda x) = 0`; it is
:math:`+\infty` outside),

.. math::

    H(x, m) = \alpha f(x) + \frac{1 - \varepsilon\lambda}{1 + \varepsilon\lambda}
    \big(\|m'\|_1 - \lambda\, m'^\top x\big) .

Phase 1: every coordinate's excess over :math:`1/\lambda` shrinks by at least
:math:`1 - \eta_t\lambda` a step (the sign step is bounded by 1), so the iterates enter the box
and never leave it. Phase 2: inside the box :math:`H` decreases until a KKT point of
:math:`\min f` s.t. :math:`\|x\|_\infty \le 1/\lambda` is reached.

The toys (float64): (a) a rotated 2-D quadratic :math:`f = \frac12 (x - c)^\top A (x - c)`,
:math:`A = R\,\mathrm{diag}(10, 1) R^\top`, with :math:`c` outside the box, started outside the box
on the far side; (b) the same quadratic from the box centre with a momentum pointing the wrong way;
(c) least squares with :math:`n = 200`, :math:`d = 20`, full batch and mini-batches of 20. Every
torch run goes through :func:`lossviz.train.fit` with :class:`Lion` (or SGD with decoupled decay as
the control); several 2-D runs share one ``fit`` call as separate parameters (the loss is a sum,
every update is per parameter, so the runs are independent). :func:`lion_quadratic` is the same
recursion in numpy, vectorised over runs with one weight decay each (it reproduces the
``train.fit`` iterates bit for bit, tested): it runs the long ODE proxy and the grid over
:math:`\lambda` behind the notebook's slider in a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .. import data as lvdata
from .. import train
from .._validate import check_float, check_int, check_tensor
from ..losses import half_mse
from ..optim import Lion

BETAS = (0.9, 0.99)
LR = 0.01
STEPS_2D = 3000
STEPS_REG = 4000


# --------------------------------------------------------------------------- Lyapunov function
def lyapunov_constants(lr: float = LR, betas=BETAS, weight_decay: float = 1.0) -> dict[str, float]:
    r"""ODE constants of discrete Lion: :math:`\gamma = \alpha = (1-\beta_2)/\eta`, :math:`\varepsilon = (1-\beta_1)/\gamma`.

    Returns ``alpha``, ``gamma``, ``eps`` and ``kappa`` :math:`= (1 - \varepsilon\lambda)/(1 + \varepsilon\lambda)`.

    Examples
    --------
    >>> lyapunov_constants(0.01, (0.9, 0.99), 1.0)["eps"]
    0.1
    """
    lr = check_float(lr, "lr", positive=True)
    lam = check_float(weight_decay, "weight_decay", minimum=0.0)
    gamma = (1.0 - check_float(betas[1], "betas[1]", minimum=0.0, maximum=1.0)) / lr
    if gamma <= 0:
        raise ValueError(f"`betas[1]` must be < 1, got {betas[1]}")
    eps = round((1.0 - check_float(betas[0], "betas[0]", minimum=0.0, maximum=1.0)) / gamma, 15)
    return {"alpha": gamma, "gamma": gamma, "eps": eps, "kappa": (1 - eps * lam) / (1 + eps * lam)}


def lyapunov(fx, x, m, *, alpha: float, eps: float, weight_decay: float) -> np.ndarray:
    r"""The paper's :math:`H(x, m)` on the box, with Lion's momentum ``m`` (so :math:`m' = -m`).

    ``fx`` has shape ``(...)``, ``x`` and ``m`` shape ``(..., d)`` (numpy). The term
    :math:`\frac{\gamma}{\lambda}\mathcal K^*(\lambda x)` (0 on the box, :math:`+\infty` outside) is
    left out: evaluate ``H`` only at points in the box (after entry).
    """
    x, m, fx = np.asarray(x, dtype=float), np.asarray(m, dtype=float), np.asarray(fx, dtype=float)
    if x.shape != m.shape or x.shape[:-1] != fx.shape:
        raise ValueError(
            f"`x`, `m` must share shape (..., d) and `fx` be (...): {x.shape}, {m.shape}, {fx.shape}"
        )
    lam = check_float(weight_decay, "weight_decay", minimum=0.0)
    kappa = (1 - eps * lam) / (1 + eps * lam)
    mp = -m
    return alpha * fx + kappa * (np.abs(mp).sum(-1) - lam * (mp * x).sum(-1))


def lr_schedule(steps: int, lr: float = LR, constant_fraction: float = 0.7) -> np.ndarray:
    """Per-step learning rates: ``lr`` for the first ``constant_fraction`` of the steps, then linearly to 0.

    Entry ``t`` is the rate of update ``t`` (from ``x_t`` to ``x_{t+1}``); the decay reaches 0 at the last update.

    Examples
    --------
    >>> lr_schedule(10, 1.0, 0.6).round(2).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.67, 0.33, 0.0]
    """
    steps = check_int(steps, "steps", minimum=1)
    lr = check_float(lr, "lr", minimum=0.0)
    frac = check_float(constant_fraction, "constant_fraction", minimum=0.0, maximum=1.0)
    t0 = int(round(frac * steps))
    t = np.arange(steps, dtype=float)
    if steps == t0:
        return np.full(steps, lr)
    return lr * np.clip((steps - 1 - t) / max(steps - 1 - t0, 1), 0.0, 1.0) * (t >= t0) + lr * (t < t0)


# --------------------------------------------------------------------------- the 2-D quadratic
def quadratic(seed: int, *, weight_decay: float = 1.0) -> dict:
    r"""The seeded 2-D quadratic :math:`f = \frac12 (x - c)^\top A (x - c)` and its box solution.

    :math:`A = R\,\mathrm{diag}(10, 1)R^\top` (random rotation), :math:`c = 3u + 0.5\operatorname{sign}(u)`
    (:math:`u` a random unit vector: outside the unit box), ``x_box`` the minimiser on
    :math:`\|x\|_\infty \le 1/\lambda` (BVLS), ``x0_far`` :math:`= -\operatorname{sign}(x_{box})\,U(2, 4)`
    (outside the box, on the side away from the solution) and ``x0_near`` :math:`= +\operatorname{sign}(x_{box})\,U(2, 4)`.
    """
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng([11, seed])
    th = rng.uniform(0, np.pi)
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a = r @ np.diag([10.0, 1.0]) @ r.T
    phi = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(phi), np.sin(phi)])
    c = 3 * u + 0.5 * np.sign(u)
    x_box = box_minimiser(a, c, 1.0 / check_float(weight_decay, "weight_decay", positive=True))
    s = np.sign(x_box)
    s[s == 0] = 1.0
    mag = rng.uniform(2, 4, size=2)
    return {"A": a, "c": c, "x_box": x_box, "x0_far": -s * mag, "x0_near": s * mag, "theta": th}


def f_quad(x, a, c):
    """``f`` of :func:`quadratic` at ``x`` of shape ``(..., 2)`` (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        at = torch.as_tensor(a, dtype=x.dtype, device=x.device)
        d = x - torch.as_tensor(c, dtype=x.dtype, device=x.device)
        return 0.5 * ((d @ at) * d).sum(-1)
    d = np.asarray(x) - c
    return 0.5 * np.einsum("...i,ij,...j->...", d, a, d)


def box_minimiser(a, c, radius: float) -> np.ndarray:
    r"""``argmin 1/2 (x - c)^T A (x - c)`` s.t. ``|x_i| <= radius`` by BVLS on the Cholesky factor.

    With :math:`A = LL^\top`, :math:`f = \frac12\|L^\top x - L^\top c\|^2`
    (:func:`scipy.optimize.lsq_linear`, ``method="bvls"``).
    """
    from scipy.optimize import lsq_linear

    radius = check_float(radius, "radius", positive=True, allow_inf=True)
    lt = np.linalg.cholesky(np.asarray(a, dtype=float)).T
    if math.isinf(radius):
        return np.asarray(c, dtype=float).copy()
    res = lsq_linear(lt, lt @ np.asarray(c, dtype=float), bounds=(-radius, radius), method="bvls", tol=1e-15)
    return res.x


def ridge_point(a, c, weight_decay: float) -> np.ndarray:
    r"""Fixed point of SGD with decoupled decay: :math:`(A + \lambda I)^{-1} A c`."""
    a = np.asarray(a, dtype=float)
    return np.linalg.solve(a + check_float(weight_decay, "weight_decay", minimum=0.0) * np.eye(len(a)), a @ c)


class _Points(nn.Module):
    """Independent 2-D runs, one parameter each (so each can have its own weight decay)."""

    def __init__(self, starts: torch.Tensor):
        super().__init__()
        self.xs = nn.ParameterList([nn.Parameter(s.detach().clone()) for s in starts])

    def forward(self, inputs):
        return torch.stack(list(self.xs))


def run_2d(
    a,
    c,
    x0,
    *,
    weight_decay: float | Sequence[float] = 1.0,
    optimizer: str = "lion",
    lr: float = LR,
    betas=BETAS,
    steps: int = STEPS_2D,
    constant_fraction: float = 0.7,
    m0=None,
    device="cpu",
) -> dict:
    r"""Runs on the 2-D quadratic through :func:`lossviz.train.fit`, every step recorded.

    ``x0`` is ``(2,)`` or ``(k, 2)`` (``k`` runs); ``weight_decay`` one value or one per run;
    ``optimizer`` ``"lion"`` (:class:`Lion`) or ``"sgdw"`` (plain SGD with decoupled decay,
    :math:`x \leftarrow x - \eta(\nabla f + \lambda x)`, which for SGD without momentum is
    ``torch.optim.SGD(weight_decay=)``); ``m0`` Lion's start momentum, shaped like ``x0``. The
    learning rate follows :func:`lr_schedule`. Returns numpy ``x`` and ``m`` of shape
    ``(steps + 1, k, 2)`` (``m[t]`` the momentum used at update ``t``; zeros for SGD), ``f``
    ``(steps + 1, k)``, ``lr`` ``(steps,)`` and the per-run ``weight_decay``.
    """
    if optimizer not in ("lion", "sgdw"):
        raise ValueError(f"`optimizer` must be 'lion' or 'sgdw', got {optimizer!r}")
    x0 = torch.as_tensor(np.asarray(x0, dtype=float), dtype=torch.float64, device=device)
    x0 = x0[None] if x0.ndim == 1 else x0
    check_tensor(x0, "x0", ndim=2)
    if x0.shape[-1] != 2:
        raise ValueError(f"`x0` must have shape (2,) or (k, 2), got {tuple(x0.shape)}")
    k = x0.shape[0]
    wds = [weight_decay] * k if np.isscalar(weight_decay) else list(weight_decay)
    if len(wds) != k:
        raise ValueError(f"`weight_decay` must be one value or {k} (one per run), got {len(wds)}")
    wds = [check_float(w, "weight_decay", minimum=0.0) for w in wds]
    steps = check_int(steps, "steps", minimum=1)
    lrs = lr_schedule(steps, lr, constant_fraction)
    if m0 is not None:
        m0 = torch.as_tensor(np.asarray(m0, dtype=float), dtype=torch.float64, device=device).reshape(
            x0.shape
        )
    model = _Points(x0)
    holder: dict = {}

    def make(params):
        groups = [{"params": [p], "weight_decay": w} for p, w in zip(model.xs, wds)]
        if optimizer == "sgdw":
            opt = torch.optim.SGD(groups, lr=lr)
        else:
            opt = Lion(groups, lr=lr, betas=betas)
            for i, p in enumerate(model.xs):
                opt.state[p]["exp_avg"] = torch.zeros_like(p) if m0 is None else m0[i].clone()
        holder["opt"] = opt
        return opt

    xs, ms = [], []

    def record(step, mdl, loss, history):
        with torch.no_grad():
            xs.append(torch.stack([p.detach().clone() for p in mdl.xs]))
            if optimizer == "lion":
                ms.append(torch.stack([holder["opt"].state[p]["exp_avg"].clone() for p in mdl.xs]))

    def set_lr(step, mdl, history):
        for g in holder["opt"].param_groups:
            g["lr"] = float(lrs[step])

    at, ct = (
        torch.as_tensor(a, dtype=torch.float64, device=device),
        torch.as_tensor(c, dtype=torch.float64, device=device),
    )

    def loss(mdl, batch):
        d = mdl(None) - ct
        return 0.5 * ((d @ at) * d).sum()

    z = torch.zeros(1, 1, dtype=torch.float64, device=device)
    train.fit(
        model,
        train.batch_loss(loss),
        (z, z),
        steps=steps,
        optimizer=make,
        grad_hook=set_lr,
        callbacks=[record],
        progress=False,
    )
    x = torch.stack(xs).cpu().numpy()
    m = torch.stack(ms).cpu().numpy() if ms else np.zeros_like(x)
    return {"x": x, "m": m, "f": f_quad(x, a, c), "lr": lrs, "weight_decay": np.array(wds)}


def lion_quadratic(
    a,
    c,
    x0,
    *,
    weight_decay: float | Sequence[float] = 1.0,
    lr: float = LR,
    betas=BETAS,
    steps: int = STEPS_2D,
    constant_fraction: float = 0.7,
    m0=None,
) -> dict:
    r"""Lion on :math:`f = \frac12 (x - c)^\top A (x - c)` as a numpy recursion, vectorised over runs.

    The same update as :class:`Lion` (gradient :math:`\nabla f` written as torch's autograd forms it,
    :math:`\frac12 (dA + dA^\top)` with :math:`d = x - c`, so the iterates equal :func:`run_2d`'s bit
    for bit in float64) and the same :func:`lr_schedule`. ``x0`` is ``(d,)`` or ``(k, d)``;
    ``weight_decay`` one value or one per run; ``m0`` the start momentum, shaped like ``x0``.
    Returns the same arrays as :func:`run_2d`: ``x``, ``m`` ``(steps + 1, k, d)``, ``f``
    ``(steps + 1, k)``, ``lr`` ``(steps,)``, ``weight_decay`` ``(k,)``.

    Examples
    --------
    >>> run = lion_quadratic(np.eye(2), np.array([3.0, 0.5]), np.zeros(2), steps=2000)
    >>> [round(float(v), 3) for v in run["x"][-1, 0]]   # the box solution: clip c to [-1, 1]
    [1.0, 0.5]
    """
    a = np.asarray(a, dtype=float)
    c = np.asarray(c, dtype=float)
    x = np.array(x0, dtype=float)
    x = x[None] if x.ndim == 1 else x
    if x.ndim != 2 or a.shape != (x.shape[1], x.shape[1]) or c.shape != (x.shape[1],):
        raise ValueError(
            f"`x0` must be (d,) or (k, d) with `a` (d, d) and `c` (d,), got {x.shape}, {a.shape}, {c.shape}"
        )
    k = x.shape[0]
    wds = (
        np.full(k, float(weight_decay))
        if np.isscalar(weight_decay)
        else np.asarray(weight_decay, dtype=float)
    )
    if wds.shape != (k,):
        raise ValueError(f"`weight_decay` must be one value or {k} (one per run), got shape {wds.shape}")
    for w in wds:
        check_float(float(w), "weight_decay", minimum=0.0)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"`betas` must be a pair (beta1, beta2), got {betas!r}")
    b1 = check_float(betas[0], "betas[0]", minimum=0.0, maximum=1.0 - 1e-15)
    b2 = check_float(betas[1], "betas[1]", minimum=0.0, maximum=1.0 - 1e-15)
    steps = check_int(steps, "steps", minimum=1)
    lrs = lr_schedule(steps, lr, constant_fraction)
    m = np.zeros_like(x) if m0 is None else np.array(m0, dtype=float).reshape(x.shape)
    xs = np.empty((steps + 1, *x.shape))
    ms = np.empty_like(xs)
    xs[0], ms[0] = x, m
    lam = wds[:, None]
    for t in range(steps):
        d = x - c
        g = 0.5 * (d @ a) + (0.5 * d) @ a.T
        x = x * (1.0 - lrs[t] * lam) - lrs[t] * np.sign(b1 * m + (1.0 - b1) * g)
        m = b2 * m + (1.0 - b2) * g
        xs[t + 1], ms[t + 1] = x, m
    return {"x": xs, "m": ms, "f": f_quad(xs, a, c), "lr": lrs, "weight_decay": wds}


def lambda_grid(seed: int, lambdas: Sequence[float], *, steps: int = STEPS_2D, lr: float = LR) -> dict:
    r"""Lion on seed ``seed``'s quadratic for every :math:`\lambda` in ``lambdas``, from the far and the near start.

    The starts are :func:`quadratic`'s at :math:`\lambda = 1` for every :math:`\lambda` (only the decay
    changes). One vectorised :func:`lion_quadratic` call. Returns ``lambdas``, ``x`` of shape
    ``(steps + 1, len(lambdas), 2, 2)`` (axis 2: far, near start), ``x_box`` and ``ridge``
    ``(len(lambdas), 2)`` (the BVLS box solution and :math:`(A + \lambda I)^{-1}Ac`), ``end_dist_box``
    ``(len(lambdas), 2)``, ``entry`` (the first step with :math:`\|x\|_\infty \le 1/\lambda + 10^{-9}`, -1 if
    never) and the quadratic ``q``.
    """
    lams = np.asarray([check_float(v, "lambdas", positive=True) for v in lambdas], dtype=float)
    if lams.ndim != 1 or lams.size == 0:
        raise ValueError("`lambdas` must be a non-empty sequence of positive numbers")
    q = quadratic(seed)
    a, c = q["A"], q["c"]
    starts = np.stack([q["x0_far"], q["x0_near"]])
    x0 = np.tile(starts, (lams.size, 1))
    run = lion_quadratic(a, c, x0, weight_decay=np.repeat(lams, 2), steps=steps, lr=lr)
    x = run["x"].reshape(steps + 1, lams.size, 2, 2)
    x_box = np.stack([box_minimiser(a, c, 1.0 / v) for v in lams])
    ridge = np.stack([ridge_point(a, c, v) for v in lams])
    entry = np.array(
        [
            [-1 if (e := entry_step(x[:, i, j], 1.0 / v)) is None else e for j in range(2)]
            for i, v in enumerate(lams)
        ]
    )
    dist = np.linalg.norm(x[-1] - x_box[:, None], axis=-1)
    return {
        "lambdas": lams,
        "x": x,
        "f": run["f"].reshape(steps + 1, lams.size, 2),
        "x_box": x_box,
        "ridge": ridge,
        "end_dist_box": dist,
        "entry": entry,
        "q": q,
    }


# --------------------------------------------------------------------------- phase statistics
def contraction_violations(x, lrs, weight_decay: float, *, atol: float = 1e-12) -> int:
    r"""How often :math:`(|x_{t+1,i}| - 1/\lambda)_+ > (1 - \eta_t\lambda)(|x_{t,i}| - 1/\lambda)_+ + \text{atol}`.

    ``x`` has shape ``(steps + 1, ..., d)``, ``lrs`` ``(steps,)``.
    """
    x = np.asarray(x, dtype=float)
    lam = check_float(weight_decay, "weight_decay", positive=True)
    ex = np.maximum(np.abs(x) - 1.0 / lam, 0.0)
    fac = (1.0 - np.asarray(lrs) * lam).reshape((-1,) + (1,) * (x.ndim - 1))
    return int((ex[1:] > fac * ex[:-1] + atol).sum())


def entry_step(x, radius: float, tol: float = 1e-9) -> int | None:
    """First ``t`` with ``||x_t||_inf <= radius + tol`` (``x`` of shape ``(T, d)``), or ``None``."""
    inside = np.abs(np.asarray(x)).max(-1) <= radius + tol
    idx = np.flatnonzero(inside)
    return int(idx[0]) if idx.size else None


def h_ratio(h) -> float:
    """(Sum of the positive increments of ``h``) / (``h[0] - h[-1]``): 0 for a monotone decrease."""
    h = np.asarray(h, dtype=float)
    dh = np.diff(h)
    drop = h[0] - h[-1]
    return float(np.maximum(dh, 0).sum() / drop) if drop > 0 else math.inf


def phase_statistics(run: dict, i: int, a, c, *, weight_decay: float, tol: float = 1e-9, consts=None) -> dict:
    """Phase-1 and Lyapunov statistics of run ``i`` of :func:`run_2d` (or a regression run)."""
    lam = weight_decay
    x, m, fx = run["x"][:, i], run["m"][:, i], run["f"][:, i]
    consts = consts or lyapunov_constants(LR, BETAS, lam)
    e = entry_step(x, 1.0 / lam, tol)
    out = {"violations": contraction_violations(x, run["lr"], lam), "entry": e}
    if e is None:
        out.update(max_excess_after=math.inf, h_ratio=math.inf, f_rise=math.nan)
        return out
    out["max_excess_after"] = float((np.abs(x[e:]).max(-1) - 1.0 / lam).max())
    h = lyapunov(fx[e:], x[e:], m[e:], alpha=consts["alpha"], eps=consts["eps"], weight_decay=lam)
    out["h_ratio"] = h_ratio(h)
    out["f_rise"] = float(np.maximum(np.diff(fx[e:]), 0).sum())
    out["H"] = h
    return out


# --------------------------------------------------------------------------- regression
def regression(seed: int, *, n: int = 200, d: int = 20, noise: float = 0.1, device="cpu") -> dict:
    r"""Least squares :math:`f(w) = \frac{1}{2n}\|Xw - y\|^2` with :math:`w^* \sim 2N(0, I)`, its box and OLS solutions.

    The data come from :func:`lossviz.data.teacher_student` with a linear teacher whose weights are
    :math:`w^*`. ``w_box``: BVLS on :math:`|w_i| \le 1`; ``w0``: a start outside the box on the far
    side, :math:`-\operatorname{sign}(w_{box})\,U(1.5, 3)`.
    """
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng([111, seed])
    w_star = 2.0 * rng.standard_normal(d)
    teacher = nn.Linear(d, 1, bias=False).to(torch.float64)
    with torch.no_grad():
        teacher.weight.copy_(torch.as_tensor(w_star[None], dtype=torch.float64, device=teacher.weight.device))
    ds = lvdata.teacher_student(
        n, d, teacher=teacher, noise=noise, seed=seed, dtype=torch.float64, device=device
    )
    xn, yn = ds.x.cpu().numpy(), ds.y.cpu().numpy()[:, 0]
    from scipy.optimize import lsq_linear

    w_box = lsq_linear(xn / math.sqrt(n), yn / math.sqrt(n), bounds=(-1, 1), method="bvls", tol=1e-15).x
    w_ols = np.linalg.lstsq(xn, yn, rcond=None)[0]
    s = np.sign(w_box)
    s[s == 0] = 1.0
    w0 = -s * rng.uniform(1.5, 3.0, size=d)
    return {"data": ds, "w_star": w_star, "w_box": w_box, "w_ols": w_ols, "w0": w0, "X": xn, "y": yn}


def reg_loss(w, xn, yn) -> np.ndarray:
    """``f(w) = ||X w - y||^2 / (2n)`` for ``w`` of shape ``(..., d)``."""
    r = np.asarray(w) @ xn.T - yn
    return 0.5 * (r**2).mean(-1)


def run_regression(
    reg: dict,
    *,
    weight_decay: float = 1.0,
    lr: float = LR,
    steps: int = STEPS_REG,
    constant_fraction: float = 0.6,
    batch_size: int | None = None,
    seed: int = 0,
) -> dict:
    """Lion on :func:`regression`'s least squares through :func:`lossviz.train.fit` (one linear layer).

    Returns ``x`` and ``m`` of shape ``(steps + 1, 1, d)``, ``f`` (full-data loss) ``(steps + 1, 1)``, ``lr``.
    """
    ds = reg["data"]
    d = ds.x.shape[1]
    model = nn.Linear(d, 1, bias=False).to(dtype=torch.float64, device=ds.x.device)
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(reg["w0"][None], dtype=torch.float64, device=ds.x.device))
    lrs = lr_schedule(steps, lr, constant_fraction)
    holder: dict = {}

    def make(params):
        holder["opt"] = Lion(params, lr=lr, betas=BETAS, weight_decay=weight_decay)
        return holder["opt"]

    xs, ms = [], []

    def record(step, mdl, loss, history):
        xs.append(mdl.weight.detach()[0].clone())
        st = holder["opt"].state.get(mdl.weight, {})
        ms.append(st["exp_avg"][0].clone() if "exp_avg" in st else torch.zeros_like(mdl.weight[0]))

    def set_lr(step, mdl, history):
        for g in holder["opt"].param_groups:
            g["lr"] = float(lrs[step])

    train.fit(
        model,
        half_mse,
        ds,
        steps=steps,
        batch_size=batch_size,
        optimizer=make,
        grad_hook=set_lr,
        callbacks=[record],
        seed=seed,
        progress=False,
    )
    x = torch.stack(xs).detach().cpu().numpy()[:, None]
    m = torch.stack(ms).detach().cpu().numpy()[:, None]
    return {"x": x, "m": m, "f": reg_loss(x, reg["X"], reg["y"]), "lr": lrs}


# --------------------------------------------------------------------------- sympy
def derivation() -> dict:
    r"""Sympy: the decayed sign step :math:`x \leftarrow (1 - \eta\lambda)x - \eta s`, :math:`|s| \le 1`.

    Returns the fixed point of the extreme step (``s = -1``: the largest ``|x|`` it can sustain),
    the excess after one step, the entry-time bound
    :math:`t \le \log(\text{tol}/e_0)/\log(1 - \eta\lambda)` and its ``lambdify``'d numeric version
    ``entry_bound(tol, e0, eta_lambda)``.
    """
    import sympy as sp

    x, eta, lam, e0, tol = sp.symbols("x eta lambda e_0 tol", positive=True)
    step = (1 - eta * lam) * x + eta  # s = -1: the step that pushes out the most
    fixed = sp.solve(sp.Eq(step, x), x)[0]
    excess_next = sp.simplify(step - 1 / lam)
    factor = sp.simplify(excess_next / (x - 1 / lam))
    t_bound = sp.log(tol / e0) / sp.log(1 - eta * lam)
    el = sp.symbols("eta_lambda", positive=True)
    bound = t_bound.subs(eta * lam, el)
    return {
        "fixed_point": fixed,
        "excess_factor": factor,
        "entry_bound": t_bound,
        "entry_bound_fn": sp.lambdify((tol, e0, el), bound, "numpy"),
    }


# --------------------------------------------------------------------------- claim statistics
def claim_statistics(seed: int, *, device="cpu", refine: int = 10, keep_runs: bool = False) -> dict:
    r"""Everything the notebook asserts for one seed (2-D runs, ODE proxy, regression, controls).

    The 2-D runs (Lion at :math:`\lambda \in \{1, 0, 0.2\}` from the far start, Lion from the centre
    with the wrong-way momentum, SGD-W at :math:`\lambda \in \{0.2, 1\}`) and the regression runs go
    through :func:`lossviz.train.fit` on ``device``. The ODE proxy is Lion with a ``refine`` times
    smaller step and ``refine`` times more steps at the same :math:`\alpha, \gamma, \varepsilon`
    (:math:`\beta_2 = 1 - \eta\gamma`), run by :func:`lion_quadratic` (``refine=0`` skips it). With
    ``keep_runs`` the trajectories are returned under ``"runs"`` (for the notebook's figures).
    """
    refine = check_int(refine, "refine", minimum=0)
    q = quadratic(seed)
    a, c, xb = q["A"], q["c"], q["x_box"]
    out: dict = {"c": c, "x_box": xb, "f_box": float(f_quad(xb, a, c))}
    # (a) main run, controls lambda = 0 and 0.2 from the same far-side start, and (b) wrong-way momentum
    x0 = np.stack([q["x0_far"]] * 3 + [np.zeros(2)])
    g0 = a @ (np.zeros(2) - c)
    m0 = np.stack([np.zeros(2)] * 3 + [-3 * g0])
    lion = run_2d(a, c, x0, weight_decay=[1.0, 0.0, 0.2, 1.0], m0=m0, device=device)
    sgd = run_2d(a, c, np.stack([q["x0_far"]] * 2), weight_decay=[0.2, 1.0], optimizer="sgdw", device=device)
    main = phase_statistics(lion, 0, a, c, weight_decay=1.0)
    wrong = phase_statistics(lion, 3, a, c, weight_decay=1.0)
    xt = lion["x"][-1]
    out.update(
        violations=main["violations"],
        entry=main["entry"],
        excess0=float(np.abs(q["x0_far"]).max() - 1.0),
        max_excess_after=main["max_excess_after"],
        dist_box=float(np.linalg.norm(xt[0] - xb)),
        f_gap=float(lion["f"][-1, 0] - out["f_box"]),
        h_ratio=main["h_ratio"],
        wrong_violations=wrong["violations"],
        wrong_max_excess=wrong["max_excess_after"],
        wrong_f_rise=wrong["f_rise"],
        wrong_h_ratio=wrong["h_ratio"],
        wrong_dist_box=float(np.linalg.norm(xt[3] - xb)),
        lam0_dist_c=float(np.linalg.norm(xt[1] - c)),
        lam0_inf=float(np.abs(xt[1]).max()),
        lam02_dist_c=float(np.linalg.norm(xt[2] - c)),
        sgdw02_dist_ridge=float(np.linalg.norm(sgd["x"][-1, 0] - ridge_point(a, c, 0.2))),
        sgdw02_dist_c=float(np.linalg.norm(sgd["x"][-1, 0] - c)),
        sgdw1_dist_box=float(np.linalg.norm(sgd["x"][-1, 1] - xb)),
        sgdw1_violations=contraction_violations(sgd["x"][:, 1], sgd["lr"], 1.0),
    )
    out["sgdw_over_lion"] = out["sgdw02_dist_c"] / max(out["lam02_dist_c"], 1e-300)
    runs = {"q": q, "lion": lion, "sgd": sgd, "main": main, "wrong": wrong}
    if refine:  # ODE proxy: a `refine` x finer step, the same alpha, gamma, eps (beta2 = 1 - eta gamma)
        b2 = 1.0 - (1.0 - BETAS[1]) / refine
        fr = lion_quadratic(a, c, q["x0_far"], lr=LR / refine, betas=(BETAS[0], b2), steps=refine * STEPS_2D)
        consts = lyapunov_constants(LR / refine, (BETAS[0], b2), 1.0)
        fs = phase_statistics(fr, 0, a, c, weight_decay=1.0, consts=consts)
        out.update(
            fine_h_ratio=fs["h_ratio"],
            fine_violations=fs["violations"],
            fine_entry=fs["entry"],
            fine_dist_box=float(np.linalg.norm(fr["x"][-1, 0] - xb)),
        )
        runs.update(fine=fr, fine_stats=fs)
    # (c) regression
    reg = regression(seed, device=device)
    xn, yn, wb = reg["X"], reg["y"], reg["w_box"]
    fbox = float(reg_loss(wb, xn, yn))
    active = set(np.flatnonzero(np.abs(wb) >= 1 - 1e-9))
    out["reg_outside_ols"] = float((np.abs(reg["w_ols"]) > 1).mean())
    out["reg_n_active"] = len(active)
    runs["reg"] = reg
    for name, bs in (("reg", None), ("mb", 20)):
        r = run_regression(reg, batch_size=bs, seed=seed)
        runs[f"{name}_run"] = r
        w = r["x"][-1, 0]
        e = entry_step(r["x"][:, 0], 1.0, 1e-6)
        out[f"{name}_violations"] = contraction_violations(r["x"][:, 0], r["lr"], 1.0)
        out[f"{name}_entry"] = e
        out[f"{name}_max_excess_after"] = (
            math.inf if e is None else float((np.abs(r["x"][e:, 0]).max(-1) - 1.0).max())
        )
        out[f"{name}_final_excess"] = float(np.abs(w).max() - 1.0)
        out[f"{name}_dist_box"] = float(np.abs(w - wb).max())
        out[f"{name}_rel_gap"] = float((reg_loss(w, xn, yn) - fbox) / fbox)
        out[f"{name}_active_equal"] = set(np.flatnonzero(np.abs(w) >= 1 - 1e-6)) == active
    if keep_runs:
        out["runs"] = runs
    return out
