r"""Set-up of notebook L12: ADOPT converges for every :math:`\beta_2`, Adam does not.

Shohei Taniguchi, Keno Harada, Gouki Minegishi, Yuta Oshima, Seong Cheol Jeong, Go Nagahara,
Tomoshi Iiyama, Masahiro Suzuki, Yusuke Iwasawa & Yutaka Matsuo, *ADOPT: Modified Adam Can Converge
with Any* :math:`\beta_2` *with the Optimal Rate*, NeurIPS 2024, arXiv:2411.02853. The
counter-example is in the style of Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*,
ICLR 2018, arXiv:1904.09237.

Adam divides the momentum by :math:`\sqrt{v_t}`, where :math:`v_t` already contains the current
gradient :math:`g_t^2`: the step is correlated with its own normaliser, and for small
:math:`\beta_2` the mean step is no longer a descent direction. ADOPT (Algorithm 1) normalises by
the *previous* second moment and applies the momentum *after* normalising:

.. math::

    v_0 = g_0^2,\qquad
    m_t = \beta_1 m_{t-1} + (1 - \beta_1)\,\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)},\qquad
    \theta_t = \theta_{t-1} - \alpha_t m_t,\qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 .

Since :math:`g_t` is independent of :math:`v_{t-1}`, the mean normalised gradient is
:math:`\mathbb E[g_t]\,\mathbb E[1/\sqrt{v_{t-1}}]`, a descent direction for every :math:`\beta_2`.
The official code (and the updated arXiv version) clips the normalised gradient to
:math:`\pm t^{1/4}` (``clip_exponent=0.25`` here), which keeps the convergence guarantee and
avoids the :math:`g/\epsilon` steps of coordinates whose :math:`v_0` is zero.

The toys:

(a) the stochastic counter-example :math:`f(\theta) = \theta` on :math:`[-1, 1]` (projected),
    stochastic gradient :math:`k^2` with probability :math:`1/k`, else :math:`-k`
    (:math:`\mathbb E g = 1`: the optimum is :math:`\theta = -1`, the worst point is :math:`+1`),
    :math:`\beta_1 = 0.9`, :math:`\alpha_t = 0.01/\sqrt{1 + 0.01t}`, :math:`\theta_0 = 0`, many
    independent chains at once in numpy (the torch optimisers below agree with these updates to
    rounding, a test says so; 20000 steps through ``train.fit`` would cost 100x more);
(b) sklearn's digits (standardised), an MLP 64-128-128-10 (ReLU), batch 16, lr :math:`10^{-3}`,
    :math:`\beta_1 = 0.9`, 1500 steps through :func:`lossviz.train.fit`; Adam against ADOPT with the
    official clipping (plain Algorithm 1 diverges on this net for every :math:`\beta_2`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import data as lvdata
from .. import models, train
from .._validate import check_betas, check_choice, check_float, check_int
from ..optim import ADOPT, ClippedADOPT

BETA1 = 0.9
BETA2S = (0.1, 0.5, 0.9, 0.99, 0.999)
CHECK_BETA2S = (0.1, 0.5, 0.9, 0.999)
KS = (10, 50)
METHODS = ("adam", "amsgrad", "adopt")
TOY_STEPS = 20000
TOY_CHAINS = 64
NET_STEPS = 1500
NET_LR = 1e-3


# --------------------------------------------------------------------------- the optimisers
# --------------------------------------------------------------------------- toy (a): the counter-example
def lr_toy(steps: int, lr: float = 0.01, decay: float = 0.01) -> np.ndarray:
    r"""Step sizes :math:`\alpha_t = \text{lr}/\sqrt{1 + \text{decay}\cdot t}`, ``t = 0..steps-1`` (update ``t + 1``).

    Examples
    --------
    >>> lr_toy(3, 1.0, 1.0).round(4).tolist()
    [1.0, 0.7071, 0.5774]
    """
    steps = check_int(steps, "steps", minimum=1)
    lr = check_float(lr, "lr", minimum=0.0)
    decay = check_float(decay, "decay", minimum=0.0)
    return lr / np.sqrt(1.0 + decay * np.arange(steps, dtype=float))


def counterexample_uniforms(steps: int, chains: int, seed: int) -> np.ndarray:
    r"""The seeded uniforms :math:`u_{t,c}` behind every chain's gradients, shape ``(steps + 1, chains)``.

    The gradient of chain ``c`` at draw ``t`` is :math:`k^2` if :math:`u_{t,c} < 1/k`, else
    :math:`-k` (:func:`counterexample_gradients`); row 0 is ADOPT's initialising draw
    :math:`g_0`, rows ``1..steps`` the gradients of the updates. The same uniforms serve every
    ``k``, :math:`\beta_2` and method (common random numbers), so differences between them are not
    sampling noise.
    """
    steps = check_int(steps, "steps", minimum=1)
    chains = check_int(chains, "chains", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    return np.random.default_rng([12, seed]).random((steps + 1, chains))


def counterexample_gradients(k: float, u) -> np.ndarray:
    r"""Stochastic gradients of :math:`f(\theta) = \theta`: :math:`k^2` with probability :math:`1/k`, else :math:`-k`.

    :math:`\mathbb E g = k^2/k - k(1 - 1/k) = 1` for every :math:`k > 1`; :math:`\mathbb E g^2 = k^3 + k^2 - k`.

    Examples
    --------
    >>> counterexample_gradients(10, np.array([0.05, 0.5])).tolist()
    [100.0, -10.0]
    """
    k = check_float(k, "k", minimum=1.0 + 1e-12)
    u = np.asarray(u, dtype=float)
    return np.where(u < 1.0 / k, k * k, -k)


def run_counterexample(
    seed: int,
    *,
    ks: Sequence[float] = KS,
    beta2s: Sequence[float] = BETA2S,
    methods: Sequence[str] = METHODS,
    steps: int = TOY_STEPS,
    chains: int = TOY_CHAINS,
    beta1: float = BETA1,
    lr: float = 0.01,
    eps: float = 1e-8,
    every: int = 100,
    deterministic: bool = False,
) -> dict:
    r"""Adam, AMSGrad and ADOPT on the projected counter-example, all ``k`` x :math:`\beta_2` x chains at once.

    Conventions: Adam and AMSGrad in PyTorch's form (bias-corrected :math:`\hat m/(\sqrt{\hat v} +
    \epsilon)`, AMSGrad with the running maximum of :math:`v`), ADOPT as Algorithm 1 (no
    clipping; its first draw only sets :math:`v_0`), all with :math:`\epsilon` = ``eps``, step
    :func:`lr_toy`, and :math:`\theta` projected onto :math:`[-1, 1]` after every update, from
    :math:`\theta_0 = 0`. ``deterministic=True`` replaces the noise by :math:`g \equiv 1` (the
    control: the failure needs the noise).

    Returns
    -------
    dict with ``"theta"``: method -> array ``(len(steps_recorded), len(ks), len(beta2s), chains)``;
    ``"steps"`` (recorded every ``every`` updates and at the end), ``"ks"``, ``"beta2s"`` and
    ``"final_mean"``: method -> ``(len(ks), len(beta2s))`` chain means of :math:`\theta_T`.
    """
    steps = check_int(steps, "steps", minimum=1)
    every = check_int(every, "every", minimum=1)
    b1 = check_float(beta1, "beta1", minimum=0.0, maximum=1.0 - 1e-15)
    eps = check_float(eps, "eps", positive=True)
    methods = tuple(check_choice(m, "methods[i]", METHODS) for m in methods)
    if not methods:
        raise ValueError("`methods` must name at least one of 'adam', 'amsgrad', 'adopt'")
    kk = np.array([check_float(k, "ks[i]", minimum=1.0 + 1e-12) for k in ks], dtype=float)
    bb = np.array(
        [check_float(b, "beta2s[i]", minimum=0.0, maximum=1.0 - 1e-15) for b in beta2s], dtype=float
    )
    if kk.size == 0 or bb.size == 0:
        raise ValueError("`ks` and `beta2s` must not be empty")
    u = counterexample_uniforms(steps, chains, seed)
    lrs = lr_toy(steps, lr)
    K = kk[:, None, None]
    B2 = bb[None, :, None]
    shape = (kk.size, bb.size, u.shape[1])

    def grad(t):
        if deterministic:
            return np.ones((kk.size, 1, u.shape[1]))
        return np.where(u[t][None, None, :] < 1.0 / K, K * K, -K)

    th = {m: np.zeros(shape) for m in methods}
    mom = {m: np.zeros(shape) for m in methods}
    sq = {m: np.zeros(shape) for m in methods}
    vmax = np.zeros(shape)
    if "adopt" in methods:
        g0 = grad(0)
        sq["adopt"] = np.broadcast_to(g0 * g0, shape).copy()
    rec_steps = sorted(set(range(0, steps + 1, every)) | {steps})
    rec = {m: [th[m].copy()] for m in methods}
    for t in range(1, steps + 1):
        g = grad(t)
        g2 = g * g
        a = lrs[t - 1]
        bc1 = 1.0 - b1**t
        bc2s = np.sqrt(1.0 - B2**t)
        for m in methods:
            if m == "adopt":
                mom[m] = b1 * mom[m] + (1.0 - b1) * (g / np.maximum(np.sqrt(sq[m]), eps))
                th[m] = np.clip(th[m] - a * mom[m], -1.0, 1.0)
                sq[m] = B2 * sq[m] + (1.0 - B2) * g2
                continue
            mom[m] = b1 * mom[m] + (1.0 - b1) * g
            sq[m] = B2 * sq[m] + (1.0 - B2) * g2
            if m == "amsgrad":
                vmax = np.maximum(vmax, sq[m])
                denom = np.sqrt(vmax) / bc2s + eps
            else:
                denom = np.sqrt(sq[m]) / bc2s + eps
            th[m] = np.clip(th[m] - (a / bc1) * mom[m] / denom, -1.0, 1.0)
        if t % every == 0 or t == steps:
            for m in methods:
                rec[m].append(th[m].copy())
    theta = {m: np.stack(rec[m]) for m in methods}
    return {
        "theta": theta,
        "steps": np.array(rec_steps),
        "ks": kk,
        "beta2s": bb,
        "final_mean": {m: theta[m][-1].mean(-1) for m in methods},
    }


def toy_value(run: dict, method: str, k: float, beta2: float, *, step: int | None = None) -> float:
    r"""Chain mean of :math:`\theta` for one ``(method, k, beta2)`` of :func:`run_counterexample` (last step by default)."""
    check_choice(method, "method", tuple(run["theta"]))
    ik = np.flatnonzero(np.isclose(run["ks"], k))
    ib = np.flatnonzero(np.isclose(run["beta2s"], beta2))
    if ik.size == 0:
        raise ValueError(f"`k` must be one of {run['ks'].tolist()}, got {k}")
    if ib.size == 0:
        raise ValueError(f"`beta2` must be one of {run['beta2s'].tolist()}, got {beta2}")
    it = -1 if step is None else int(np.flatnonzero(run["steps"] == step)[0])
    return float(run["theta"][method][it, ik[0], ib[0]].mean())


# --------------------------------------------------------------------------- sympy: the sign limit
def derivation() -> dict:
    r"""Sympy: mean steps at :math:`\beta_1 = 0` in the limits :math:`\beta_2 \to 0` and :math:`\beta_2 \to 1`.

    * Adam, :math:`\beta_2 \to 0`: :math:`v_t = g_t^2`, the step is :math:`-\alpha\,g_t/|g_t|`, whose
      mean is :math:`-\alpha\,(2/k - 1)`: *uphill* (:math:`> 0`) for every :math:`k > 2`.
    * ADOPT, :math:`\beta_2 \to 0`: :math:`v_{t-1} = g_{t-1}^2` is independent of :math:`g_t`, the mean
      step is :math:`-\alpha\,\mathbb E[g]\,\mathbb E[1/|g|] = -\alpha\,(1/k^3 + (k - 1)/k^2) < 0`.
    * both, :math:`\beta_2 \to 1`: :math:`v \to \mathbb E g^2 = k^3 + k^2 - k`, mean step
      :math:`-\alpha/\sqrt{k^3 + k^2 - k}` (a fixed normaliser: downhill, but slow).

    Returns the expressions (per unit :math:`\alpha`) and their ``lambdify``'d versions
    ``adam_sign_fn(k)``, ``adopt_sign_fn(k)``, ``fixed_v_fn(k)``.
    """
    import sympy as sp

    k = sp.symbols("k", positive=True)
    p = 1 / k  # P(g = k^2)
    g_big, g_small = k**2, -k
    e_g = sp.simplify(p * g_big + (1 - p) * g_small)
    e_g2 = sp.expand(p * g_big**2 + (1 - p) * g_small**2)
    adam = sp.simplify(-(p * sp.sign(g_big) + (1 - p) * sp.sign(g_small)))
    adopt = sp.simplify(-e_g * (p / sp.Abs(g_big) + (1 - p) / sp.Abs(g_small)))
    fixed = -e_g / sp.sqrt(e_g2)
    return {
        "k": k,
        "mean_gradient": e_g,
        "mean_square": e_g2,
        "adam_sign": adam,
        "adopt_sign": adopt,
        "fixed_v": fixed,
        "adam_sign_fn": sp.lambdify(k, adam, "numpy"),
        "adopt_sign_fn": sp.lambdify(k, adopt, "numpy"),
        "fixed_v_fn": sp.lambdify(k, fixed, "numpy"),
    }


# --------------------------------------------------------------------------- toy (b): digits MLP
def make_optimizer(method: str, beta2: float, *, lr: float = NET_LR, beta1: float = BETA1) -> Callable:
    """A factory ``params -> optimiser`` for :func:`lossviz.train.fit`.

    ``method``: ``"adam"`` (``torch.optim.Adam``, eps 1e-8), ``"adopt"`` (:class:`ADOPT`, Algorithm 1,
    eps 1e-6) or ``"adopt_clip"`` (:class:`ClippedADOPT`, eps 1e-6).
    """
    check_choice(method, "method", ("adam", "adopt", "adopt_clip"))
    betas = check_betas((beta1, beta2))
    lr = check_float(lr, "lr", minimum=0.0)

    def make(params):
        if method == "adam":
            return torch.optim.Adam(params, lr=lr, betas=betas)
        if method == "adopt":
            return ADOPT(params, lr=lr, betas=betas)
        return ClippedADOPT(params, lr=lr, betas=betas)

    return make


def digits_net(seed: int, *, hidden: Sequence[int] = (128, 128), device="cpu") -> nn.Module:
    """The MLP 64-128-128-10 (ReLU, PyTorch's default init) with seeded weights."""
    return models.MLP(
        64, tuple(hidden), 10, activation="relu", seed=check_int(seed, "seed", minimum=0), device=device
    )


def run_net(
    method: str,
    beta2: float,
    seed: int,
    *,
    steps: int = NET_STEPS,
    batch_size: int = 16,
    lr: float = NET_LR,
    hidden: Sequence[int] = (128, 128),
    dataset=None,
    divergence_threshold: float = math.inf,
    device="cpu",
) -> dict:
    r"""Train the digits MLP with one optimiser through :func:`lossviz.train.fit`; the final full-data CE.

    The model (:func:`digits_net` with ``seed``) and the mini-batch order (``seed``) are the same for
    every ``method`` and :math:`\beta_2`. Training stops early when the batch loss becomes non-finite
    or exceeds ``divergence_threshold`` (``fit``'s divergence rule; default: only non-finite). Returns ``"loss"`` (batch CE after ``t`` updates, ``t = 0..``),
    ``"final_ce"`` (full-data CE at the last parameters; ``inf`` if they or the CE are non-finite),
    ``"diverged"`` and ``"steps_run"``.
    """
    ds = lvdata.digits(device=device) if dataset is None else dataset
    net = digits_net(seed, hidden=hidden, device=device)
    hist = train.fit(
        net,
        nn.functional.cross_entropy,
        ds,
        steps=check_int(steps, "steps", minimum=1),
        batch_size=check_int(batch_size, "batch_size", minimum=1),
        optimizer=make_optimizer(method, beta2, lr=lr),
        divergence_threshold=check_float(
            divergence_threshold, "divergence_threshold", positive=True, allow_inf=True
        ),
        seed=seed,
        progress=False,
    )
    with torch.no_grad():
        finite = all(bool(torch.isfinite(p).all()) for p in net.parameters())
        ce = float(nn.functional.cross_entropy(net(ds.x), ds.y)) if finite else math.inf
    if not math.isfinite(ce):
        ce = math.inf
    return {
        "loss": np.asarray(hist.loss, dtype=float),
        "final_ce": ce,
        "diverged": bool(hist.diverged) or not math.isfinite(ce),
        "steps_run": len(hist.loss) - 1,
    }


def run_nets(
    seed: int,
    *,
    beta2s: Sequence[float] = CHECK_BETA2S,
    methods: Sequence[str] = ("adam", "adopt_clip"),
    steps: int = NET_STEPS,
    device="cpu",
    progress: bool = False,
) -> dict:
    """:func:`run_net` for every ``(method, beta2)``: a dict ``(method, beta2) -> run``."""
    ds = lvdata.digits(device=device)
    todo = [(m, b) for m in methods for b in beta2s]
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, desc="digits MLP runs", leave=False)
    return {(m, float(b)): run_net(m, b, seed, steps=steps, dataset=ds, device=device) for m, b in todo}


# --------------------------------------------------------------------------- claim statistics
def toy_statistics(run: dict, det: dict | None = None) -> dict:
    """The toy's asserted quantities from :func:`run_counterexample` (and its deterministic twin ``det``)."""
    out: dict = {}
    for m in run["theta"]:
        for k in (10, 50):
            for b in CHECK_BETA2S:
                out[f"{m}_k{k}_b{b}"] = toy_value(run, m, k, b)
    out["k10_adam_small_min"] = min(out[f"adam_k10_b{b}"] for b in (0.1, 0.5, 0.9))
    out["k10_adopt_max"] = max(out[f"adopt_k10_b{b}"] for b in CHECK_BETA2S)
    out["k10_adam_0.999"] = out["adam_k10_b0.999"]
    out["k50_adam_0.999"] = out["adam_k50_b0.999"]
    out["k50_gap_min"] = min(out[f"adam_k50_b{b}"] - out[f"adopt_k50_b{b}"] for b in CHECK_BETA2S)
    if det is not None:
        dev = 0.0
        for m in ("adam", "adopt"):
            for b in (0.1, 0.999):
                dev = max(dev, abs(toy_value(det, m, 10, b) + 1.0))
        out["det_max_dev"] = dev
    return out


def net_statistics(nets: dict) -> dict:
    """The net's asserted quantities from :func:`run_nets` (``inf`` stands for a non-finite CE)."""
    ce = {key: r["final_ce"] for key, r in nets.items()}
    return {
        "net_adam_small_min": min(ce[("adam", 0.1)], ce[("adam", 0.5)]),
        "net_adam_large_max": max(ce[("adam", 0.9)], ce[("adam", 0.999)]),
        "net_adopt_clip_max": max(ce[("adopt_clip", b)] for b in CHECK_BETA2S),
        **{f"net_{m}_b{b}": v for (m, b), v in ce.items()},
    }


def claim_statistics(seed: int, *, device="cpu", chains: int = TOY_CHAINS, net: bool = True) -> dict:
    """Everything the notebook asserts for one seed: the toy (stochastic and deterministic) and the net."""
    seed = check_int(seed, "seed", minimum=0)
    run = run_counterexample(seed, beta2s=CHECK_BETA2S, chains=chains, every=TOY_STEPS)
    det = run_counterexample(
        seed,
        ks=(10,),
        beta2s=(0.1, 0.999),
        methods=("adam", "adopt"),
        chains=1,
        deterministic=True,
        every=TOY_STEPS,
    )
    out = toy_statistics(run, det)
    if net:
        out.update(net_statistics(run_nets(seed, device=device)))
    return out
