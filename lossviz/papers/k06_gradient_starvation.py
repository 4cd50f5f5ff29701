r"""K06: gradient starvation and spectral decoupling on two toys (the notebook's set-up).

Mohammad Pezeshki, Sekou-Oumar Kaba, Yoshua Bengio, Aaron Courville, Doina Precup & Guillaume Lajoie,
"Gradient Starvation: A Learning Proclivity in Neural Networks", NeurIPS 2021, arXiv:2011.09468.

Claim: with cross-entropy, once some features classify the training set the gradient reaching other
predictive features vanishes, so the stronger one feature is the less another is learned; Spectral
Decoupling (SD), the loss ``CE + (lambda/2) ||logits||^2`` (a penalty on the logits, not on the
weights), decouples them.

Toy (a), linear: ``n = 200``, ``y = +-1``, ``x1 = s1 y (1 + u)``, ``x2 = y (1 + v)``,
``u, v ~ U(-1/2, 1/2)``; ``f = w . x`` from ``w = 0``, float64, full-batch GD, lr 0.05, 20000 steps;
losses CE, CE + SD (``lambda = 0.1``, the mean of ``lambda f^2 / 2``) and CE + weight decay 0.01.
With SD the optimum is exactly independent of ``s1``: with ``w1' = s1 w1`` the objective is the same
strictly convex function of ``(w1', w2)`` for every ``s1``, so its unique minimiser has the same ``w2``.
CE has no minimiser (it is read at a fixed step) and weight decay ``wd/2 (w1'^2 / s1^2 + w2^2)`` is not
invariant under the reparametrisation.

Toy (b), two moons without noise: class -1 ``(cos t, sin t)``, class +1 ``(1 - cos t, 1/2 - sin t)``,
``t ~ U(0, pi)``; ``shifted=True`` pushes class +1 right until ``x1`` alone separates the classes with a
gap of ``gap``; MLP 2-128-128-1 ReLU, Adam lr 2e-3, full batch, 1500 steps, CE vs CE + SD. The vertical
reliance ``R`` is the training-set mean of ``|df/dx2| / (|df/dx1| + |df/dx2|)``. With SD an
over-parametrised net can put every training margin ``m = y f`` at the per-sample optimum ``m*``,
the root of ``lambda m = 1 / (1 + e^m)`` (:func:`derivation`; 1.6335 at ``lambda = 0.1``).

The loss is the family one, :func:`lossviz.losses.spectral_decoupling` (``lam`` named).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from .. import train
from .._validate import check_choice, check_float, check_int
from ..losses import spectral_decoupling
from ..models import MLP

__all__ = [
    "S1_GRID",
    "LAMBDA",
    "derivation",
    "linear_task",
    "linear_weights",
    "make_moons",
    "train_moons",
    "vertical_reliance",
    "margins",
    "shuffled_x1_accuracy",
    "claim_statistics",
]

S1_GRID = (1.0, 2.0, 4.0, 8.0)
LAMBDA = 0.1
LOSSES = ("ce", "sd", "wd")


def derivation(lam: float = LAMBDA) -> dict:
    r"""Sympy: the per-sample SD optimum of ``softplus(-m) + lam m^2 / 2`` over the margin ``m``.

    Stationarity: ``-1 / (1 + e^m) + lam m = 0``; the objective is strictly convex, so the root is the
    minimiser. Returns ``{"equation", "m_star"}``.

    >>> round(derivation(0.1)["m_star"], 4)
    1.6335
    """
    lam = check_float(lam, "lam", positive=True)
    m = sp.symbols("m", real=True)
    obj = sp.log(1 + sp.exp(-m)) + sp.Rational(1, 2) * sp.nsimplify(lam) * m**2
    eq = sp.Eq(sp.simplify(sp.diff(obj, m)), 0)
    assert sp.simplify(sp.diff(obj, m, 2)) != 0
    root = sp.nsolve(sp.diff(obj, m), m, 1.0)
    return {"equation": eq, "m_star": float(root)}


def linear_task(seed: int, *, n: int = 200, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, a1, a2)`` of toy (a), float64: ``x1 = s1 * a1`` and ``x2 = a2``, ``y = +-1`` balanced."""
    n = check_int(n, "n", minimum=2)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    cpu = g.device  # seeded draws on the generator's device, then moved to ``device``
    y = torch.ones(n, dtype=torch.float64, device=cpu)
    y[n // 2 :] = -1
    y = y[torch.randperm(n, generator=g, device=cpu)]
    u = torch.rand(n, generator=g, dtype=torch.float64, device=cpu) - 0.5
    v = torch.rand(n, generator=g, dtype=torch.float64, device=cpu) - 0.5
    return y.to(device), (y * (1 + u)).to(device), (y * (1 + v)).to(device)


def linear_weights(
    seed: int,
    loss: str = "ce",
    *,
    s1=S1_GRID,
    steps: int = 20000,
    record=(),
    lr: float = 0.05,
    lam: float = LAMBDA,
    weight_decay: float = 0.01,
    n: int = 200,
    device=None,
) -> dict[int, torch.Tensor]:
    r"""Full-batch GD on toy (a) from ``w = 0``, all ``s1`` at once; ``{step: w}`` with ``w`` of shape ``(len(s1), 2)``.

    ``loss``: ``"ce"`` (logistic), ``"sd"`` (CE + ``lam/2`` mean ``f^2``) or ``"wd"`` (CE +
    ``weight_decay/2 ||w||^2``). The gradient is written out (a 2-parameter convex objective; this is
    plain GD, vectorised over ``s1``). ``record`` lists extra steps to return besides ``steps``.
    """
    loss = check_choice(loss, "loss", LOSSES)
    steps = check_int(steps, "steps", minimum=1)
    lr, lam = check_float(lr, "lr", positive=True), check_float(lam, "lam", minimum=0.0)
    weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
    s1 = [check_float(s, "s1", positive=True) for s in np.atleast_1d(np.asarray(s1, dtype=float))]
    record = {check_int(r, "record", minimum=0) for r in record} | {steps}
    y, a1, a2 = linear_task(seed, n=n, device=device)
    s = torch.tensor(s1, dtype=torch.float64, device=y.device)
    x = torch.stack([s[:, None] * a1, a2.expand(len(s1), -1)], -1)  # (S, n, 2)
    w = torch.zeros(len(s1), 2, dtype=torch.float64, device=y.device)
    out = {0: w.clone()} if 0 in record else {}
    for t in range(1, steps + 1):
        f = torch.einsum("snd,sd->sn", x, w)
        coef = -y * torch.sigmoid(-y * f)
        if loss == "sd":
            coef = coef + lam * f
        g = torch.einsum("sn,snd->sd", coef, x) / y.numel()
        if loss == "wd":
            g = g + weight_decay * w
        w = w - lr * g
        if t in record:
            out[t] = w.clone()
    return out


def make_moons(
    seed: int, *, n: int = 200, shifted: bool = True, gap: float = 0.1, device=None, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise-free two moons ``(x, y)`` with ``y = +-1`` (float); ``shifted`` separates them along ``x1`` by ``gap``."""
    n = check_int(n, "n", minimum=4)
    gap = check_float(gap, "gap", minimum=0.0)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    n0 = n // 2
    cpu = g.device  # seeded draws on the generator's device, then moved to ``device``
    t0 = math.pi * torch.rand(n0, generator=g, dtype=torch.float64, device=cpu)
    t1 = math.pi * torch.rand(n - n0, generator=g, dtype=torch.float64, device=cpu)
    a = torch.stack([torch.cos(t0), torch.sin(t0)], 1)
    b = torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], 1)
    if shifted:
        b[:, 0] += gap + a[:, 0].max() - b[:, 0].min()
    x = torch.cat([a, b])
    y = torch.cat(
        [
            -torch.ones(n0, dtype=torch.float64, device=cpu),
            torch.ones(n - n0, dtype=torch.float64, device=cpu),
        ]
    )
    perm = torch.randperm(n, generator=g, device=cpu)
    return x[perm].to(device=device, dtype=dtype), y[perm].to(device=device, dtype=dtype)


def train_moons(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lam: float = 0.0,
    seed: int = 0,
    steps: int = 1500,
    lr: float = 2e-3,
    hidden=(128, 128),
) -> MLP:
    """A fresh ReLU MLP ``2-128-128-1`` trained by :func:`lossviz.train.fit` (Adam, full batch) on
    :func:`lossviz.losses.spectral_decoupling` (``lam = 0``: logistic CE)."""
    lam = check_float(lam, "lam", minimum=0.0)
    steps = check_int(steps, "steps", minimum=1)
    model = MLP(2, hidden, 1, activation="relu", dtype=x.dtype, device=x.device, seed=int(seed))
    train.fit(
        model,
        lambda out, t: spectral_decoupling(out, t, lam=lam),
        (x, y),
        steps=steps,
        optimizer="adam",
        lr=lr,
        seed=int(seed),
        progress=False,
    )
    return model


def _input_grad(model, x):
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        f = model(xg).reshape(-1)
        (g,) = torch.autograd.grad(f.sum(), xg)
    return f.detach(), g


def vertical_reliance(model, x: torch.Tensor) -> float:
    """Mean over ``x`` of ``|df/dx2| / (|df/dx1| + |df/dx2|)``; no gradient lands on the model's parameters."""
    _, g = _input_grad(model, x)
    a = g.abs()
    return float((a[:, 1] / (a.sum(1) + 1e-30)).mean())


def margins(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Training margins ``y f(x)``."""
    with torch.no_grad():
        return y.reshape(-1) * model(x).reshape(-1)


def shuffled_x1_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0) -> float:
    """Accuracy with ``x1`` permuted across points (only ``x2`` still carries the label)."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    xs = x.clone()
    xs[:, 0] = x[torch.randperm(len(x), generator=g, device=g.device).to(x.device), 0]
    with torch.no_grad():
        return float((torch.sign(model(xs).reshape(-1)) == y.reshape(-1)).to(torch.float64).mean())


def claim_statistics(
    seed: int, *, steps: int = 1500, lin_steps: int = 20000, lam: float = LAMBDA, device=None
) -> dict:
    """Every asserted quantity of the notebook for one seed (``steps``: moons Adam steps)."""
    seed = check_int(seed, "seed", minimum=0)
    out: dict = {}
    half = lin_steps // 2
    for loss in LOSSES:
        ws = linear_weights(seed, loss, steps=lin_steps, record=(half,), lam=lam, device=device)
        w2 = ws[lin_steps][:, 1]
        out[f"lin_{loss}_ratio"] = float(w2[-1] / w2[0])
        out[f"lin_{loss}_drift"] = float(((ws[lin_steps][:, 1] - ws[half][:, 1]).abs() / w2.abs()).max())
    out["lin_sd_dev"] = abs(out["lin_sd_ratio"] - 1)
    m_star = derivation(lam)["m_star"]
    out["m_star"] = m_star
    for shifted, tag in ((True, ""), (False, "ctl_")):
        x, y = make_moons(seed, shifted=shifted, device=device)
        xt, yt = make_moons(seed + 10_000, shifted=shifted, device=device)
        for name, lm in (("ce", 0.0), ("sd", lam)):
            model = train_moons(x, y, lam=lm, seed=seed, steps=steps)
            m = margins(model, x, y)
            out[f"{tag}acc_{name}"] = float((m > 0).to(torch.float64).mean())
            out[f"{tag}R_{name}"] = vertical_reliance(model, x)
            if not shifted:
                continue
            q = torch.quantile(
                m.to(torch.float64), torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64, device=m.device)
            )
            out[f"{name}_margin_q"] = [float(v) for v in q]
            out[f"shuffled_acc_{name}"] = shuffled_x1_accuracy(model, xt, yt, seed=seed)
        out[f"{tag}R_ratio"] = out[f"{tag}R_sd"] / out[f"{tag}R_ce"]
    q05, q50, q95 = out["sd_margin_q"]
    out["sd_median_dev"] = q50 / m_star - 1
    out["sd_band"] = (q05 / m_star - 1, q95 / m_star - 1)
    c05, _, c95 = out["ce_margin_q"]
    out["ce_margin_spread"] = c95 / c05
    return out
