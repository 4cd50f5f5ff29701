r"""T08: EnsLoss on a noisy binary teacher (the notebook's set-up).

Ben Dai and co-authors, "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting
in Classification" (code github.com/statmlben/ensLoss; arXiv id and venue not verified here).

Claim: a convex margin loss is classification-calibrated iff ``phi'(0) < 0``, so calibrated convex
losses can be drawn through their derivatives; drawing a fresh one for every mini-batch
(:func:`lossviz.losses.ensloss`) overfits less than any fixed loss.

Toy: ``y = sign(w . x)``, ``w`` on the first 5 of ``d = 50`` coordinates, ``x ~ N(0, I)``,
``n = 500`` training points with a fraction ``noise = 0.2`` of the labels flipped, 4000 clean test
points; MLP 50-256-256-1 (ReLU), SGD momentum 0.9, lr 0.01, batch 32, 100 epochs through
:func:`lossviz.train.fit` (every run fits the noisy labels). At ``n = 200`` with 30% flips (the
first toy) the signal is too weak for any loss to matter: every loss ends at 0.60-0.72 and EnsLoss
minus the best fixed loss is -0.012..+0.023 over seeds 0-19. Losses (margin ``z = y f``): ``"bce"`` ``softplus(-z)``, ``"hinge"``,
``"exp"`` ``exp(-z)``, ``"sqhinge"``, ``"ensloss"`` (fresh random calibrated derivative per batch,
from a ``torch.Generator``), and two controls: ``"ens_mean"`` (the EXPECTED EnsLoss derivative,
deterministic) and ``"ens_perm"`` (the same random values in random order: not convex, not
calibrated).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import train
from .._validate import check_choice, check_float, check_int
from ..losses import ensloss
from ..models import MLP

__all__ = [
    "FIXED",
    "LOSSES",
    "make_task",
    "margin_loss",
    "mean_derivatives",
    "run",
    "claim_statistics",
]

FIXED = ("bce", "hinge", "exp", "sqhinge")
LOSSES = FIXED + ("ensloss", "ens_mean", "ens_perm")


def make_task(
    seed: int,
    *,
    n: int = 500,
    n_test: int = 4000,
    dim: int = 50,
    active: int = 5,
    noise: float = 0.2,
    device=None,
) -> dict:
    """Teacher data: ``{"x", "y", "x_test", "y_test", "flipped"}``, labels ``+-1`` (float32).

    ``w`` is ``N(0, 1)`` on the first ``active`` coordinates, ``0`` elsewhere; a fraction ``noise``
    of the training labels (exactly ``round(noise n)``) is flipped; test labels are clean.

    >>> t = make_task(0, n=100, noise=0.3)
    >>> int(t["flipped"].sum()), tuple(t["x"].shape), float(t["y_test"].abs().mean())
    (30, (100, 50), 1.0)
    """
    n, n_test = check_int(n, "n", minimum=2), check_int(n_test, "n_test", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    active = check_int(active, "active", minimum=1, maximum=dim)
    noise = check_float(noise, "noise", minimum=0.0, maximum=0.5)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    cpu = g.device
    w = torch.zeros(dim, dtype=torch.float64, device=cpu)
    w[:active] = torch.randn(active, generator=g, dtype=torch.float64, device=cpu)
    x = torch.randn(n + n_test, dim, generator=g, dtype=torch.float64, device=cpu)
    y = torch.where(x @ w >= 0, 1.0, -1.0).to(torch.float64)
    flipped = torch.zeros(n, dtype=torch.bool, device=cpu)
    flipped[torch.randperm(n, generator=g, device=cpu)[: round(noise * n)]] = True
    ytr = torch.where(flipped, -y[:n], y[:n])
    f32 = dict(device=device, dtype=torch.float32)
    return {
        "x": x[:n].to(**f32),
        "y": ytr.to(**f32),
        "x_test": x[n:].to(**f32),
        "y_test": y[n:].to(**f32),
        "flipped": flipped.to(device),
    }


def mean_derivatives(batch: int, *, draws: int = 4000, clip: float = -1.0) -> torch.Tensor:
    """The expected sorted EnsLoss derivative values for a batch of ``batch`` margins (float64, CPU).

    Monte Carlo over ``draws`` draws of ``max(sort(-exp(N(0, 1)_B)), clip)`` from a fixed generator
    (seed 0), i.e. ``E[g_(k)]``, the value the ``k``-th smallest margin receives before the ``1/z`` step.

    >>> m = mean_derivatives(8)
    >>> bool((m >= -1).all() and (m < 0).all() and (m.diff() >= 0).all())
    True
    """
    batch, draws = check_int(batch, "batch", minimum=1), check_int(draws, "draws", minimum=1)
    g = torch.Generator(device="cpu").manual_seed(0)
    d = torch.randn(draws, batch, generator=g, dtype=torch.float64, device=g.device)
    return torch.sort(-torch.exp(d), dim=1).values.clamp(min=float(clip)).mean(0)


def _rank_assign(z: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(z)
    out[torch.argsort(z, stable=True)] = values.to(device=z.device, dtype=z.dtype)
    big = z > 1
    return torch.where(big, out / torch.where(big, z, torch.ones_like(z)), out)


def margin_loss(name: str, *, generator: torch.Generator | None = None):
    """``loss(outputs, y)`` for :func:`lossviz.train.fit`: outputs ``(B, 1)`` or ``(B,)``, ``y = +-1``.

    ``"ensloss"`` and ``"ens_perm"`` draw from ``generator`` (required for them) on every call; the
    global RNG is never used.

    >>> z = torch.tensor([[0.0], [2.0]])
    >>> round(float(margin_loss("hinge")(z, torch.tensor([1.0, 1.0]))), 3)
    0.5
    """
    name = check_choice(name, "name", LOSSES)
    if name in ("ensloss", "ens_perm") and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator for {name!r}")
    cache: dict[int, torch.Tensor] = {}

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = out.reshape(-1) * y.reshape(-1).to(out.dtype)
        if name == "bce":
            return F.softplus(-z).mean()
        if name == "hinge":
            return F.relu(1 - z).mean()
        if name == "exp":
            return torch.exp(-z).mean()
        if name == "sqhinge":
            return F.relu(1 - z).square().mean()
        if name == "ensloss":
            return ensloss(z, generator=generator)
        if name == "ens_mean":
            b = z.numel()
            if b not in cache:
                cache[b] = mean_derivatives(b)
            g = _rank_assign(z.detach(), cache[b])
        else:  # ens_perm: the EnsLoss values in a random order (not monotone in z), then the 1/z step
            zd = z.detach()
            b = zd.numel()
            d = torch.randn(b, generator=generator, dtype=torch.float64, device=generator.device)
            vals = torch.sort(-torch.exp(d)).values.clamp(min=-1.0)
            perm = torch.randperm(b, generator=generator, device=generator.device)
            g = torch.empty(b, dtype=torch.float64, device=generator.device)
            g[perm] = vals
            g = g.to(device=zd.device, dtype=zd.dtype)
            big = zd > 1
            g = torch.where(big, g / torch.where(big, zd, torch.ones_like(zd)), g)
        return (g.detach() * z).mean()

    return loss


def run(
    seed: int,
    loss: str,
    *,
    noise: float = 0.2,
    n: int = 500,
    epochs: int = 100,
    batch_size: int = 32,
    lr: float = 0.01,
    record_every: int = 5,
    task: dict | None = None,
    device=None,
) -> dict:
    """Train a fresh 50-256-256-1 ReLU MLP with ``loss`` and return the accuracies.

    Returns ``{"test": final clean test accuracy, "train": final accuracy on the (noisy) training
    labels, "epochs": array, "curve": test accuracy at those epochs, "diverged": bool}``; a diverged
    run (non-finite loss) has ``test = nan``.
    """
    loss = check_choice(loss, "loss", LOSSES)
    epochs = check_int(epochs, "epochs", minimum=1)
    record_every = check_int(record_every, "record_every", minimum=1)
    t = make_task(seed, n=n, noise=noise, device=device) if task is None else task
    model = MLP(t["x"].shape[1], (256, 256), 1, activation="relu", device=t["x"].device, seed=int(seed))
    gen = torch.Generator(device="cpu").manual_seed(10_000 + int(seed))
    per_epoch = math.ceil(t["x"].shape[0] / batch_size)
    y01_test, y01 = (t["y_test"] > 0).long(), (t["y"] > 0).long()
    rec = train.Recorder(
        every=per_epoch * record_every, metrics={"test": train.accuracy(t["x_test"], y01_test)}
    )
    hist = train.fit(
        model,
        margin_loss(loss, generator=gen),
        (t["x"], t["y"]),
        epochs=epochs,
        batch_size=batch_size,
        optimizer="sgd",
        lr=lr,
        momentum=0.9,
        callbacks=[rec],
        seed=int(seed),
        progress=False,
    )
    steps, curve = zip(*hist.records["test"])
    diverged = bool(hist.diverged) or not math.isfinite(hist.loss[-1])
    return {
        "test": math.nan if diverged else float(curve[-1]),
        "train": train.accuracy(t["x"], y01)(model),
        "epochs": np.asarray(steps, dtype=float) / per_epoch,
        "curve": np.asarray(curve, dtype=float),
        "diverged": diverged,
    }


def claim_statistics(results: dict) -> dict:
    """From ``{loss: run(...)}``: ``best_fixed`` (nan-max over the fixed losses present), ``gain``
    (EnsLoss minus it), and ``mean_minus_ens`` / ``perm_minus_ens`` where those runs exist.

    >>> r = {k: {"test": v} for k, v in dict(bce=0.8, hinge=0.82, ensloss=0.85, ens_mean=0.84).items()}
    >>> s = claim_statistics(r)
    >>> round(s["gain"], 3), round(s["mean_minus_ens"], 3)
    (0.03, -0.01)
    """
    if "ensloss" not in results:
        raise ValueError("`results` must contain an 'ensloss' run")
    fixed = [results[k]["test"] for k in FIXED if k in results]
    if not fixed:
        raise ValueError("`results` must contain at least one fixed loss")
    best = float(np.nanmax(fixed))
    ens = float(results["ensloss"]["test"])
    out = {"best_fixed": best, "ensloss": ens, "gain": ens - best}
    for k in ("ens_mean", "ens_perm"):
        if k in results:
            out[k.replace("ens_", "") + "_minus_ens"] = float(results[k]["test"]) - ens
    return out
