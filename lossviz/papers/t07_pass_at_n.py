r"""Set-up of notebook T07: pass@N, over-confidence and the DCO loss on a 100-answer toy.

Feng Chen, Allan Raventos, Nan Cheng, Surya Ganguli, Shaul Druckmann, *Rethinking Fine-Tuning
when Scaling Test-Time Compute: Limiting Confidence Improves Mathematical Reasoning*,
NeurIPS 2025, arXiv:2502.07154.

Claim: training with cross-entropy (CE) is misaligned with pass@N. For large ``N`` test pass@N
*falls* with longer CE training while pass@1 keeps rising, because CE makes the model
over-confident (on test items it gets wrong the correct answer's probability goes to 0). Direct
Coverage Optimization, ``DCO_N = -log(1 - (1 - p_y)^N)`` (:func:`lossviz.losses.dco_loss`),
limits confidence and gives a higher pass@N at large ``N`` at the price of pass@1.

Toy ("answer sampling" as ``K = 100``-way classification): class centres ``N(0, I_32)``,
within-class ``sigma = 1.5``, 10 training items per answer (1000), 20 test items per answer
(2000, the same centres); MLP 32-256-256-100, Adam 1e-3, full batch, test logits recorded every
``record_every`` steps. pass@N is exact and closed form (:func:`lossviz.losses.pass_at_n`,
sampling at temperature ``tau``), so the pass@N curves for any ``N`` and any test temperature are
computed from the recorded float64 logits without retraining. ``K`` must be large: with
``K = 10`` a uniform guesser has pass@64 ~ 1. Easy control: ``sigma = 0.5`` (test accuracy 1).

Deviation measured at toy scale (the notebook shows it): CE plus a *test-time* temperature
(``tau`` chosen on the test set from :data:`TAU_GRID`, one scalar on 2000 items) beats DCO(64)
on both pass@1 and pass@64, so the toy supports "over-confidence, not accuracy, limits pass@N"
and "DCO beats CE at tau = 1", not "changing the training loss beats post-hoc temperature".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_float, check_int
from ..data import gaussian_mixture
from ..losses import dco_loss, pass_at_n
from ..models import MLP
from ..train import Recorder, fit

__all__ = [
    "NS",
    "TAU_GRID",
    "Run",
    "answer_task",
    "train_run",
    "curves",
    "best_temperature",
    "claim_statistics",
]

NS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TAU_GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def answer_task(
    seed: int,
    *,
    num_classes: int = 100,
    dim: int = 32,
    noise: float = 1.5,
    n_train_per_class: int = 10,
    n_test_per_class: int = 20,
    device="cpu",
) -> dict:
    """Training and test items of the ``num_classes``-answer task (float32 inputs on ``device``).

    Centres ``N(0, I_dim)`` drawn once from ``seed``; both splits share them, with their own
    noise draws. Returns ``x_train, y_train, x_test, y_test, means``.
    """
    seed = check_int(seed, "seed", minimum=0)
    noise = check_float(noise, "noise", minimum=0.0)
    common = dict(num_classes=num_classes, dim=dim, noise=noise, separation=1.0, dtype=torch.float32)
    train = gaussian_mixture(
        check_int(n_train_per_class, "n_train_per_class", minimum=1), seed=seed, device=device, **common
    )
    test = gaussian_mixture(
        check_int(n_test_per_class, "n_test_per_class", minimum=1),
        means=train.info["means"],
        seed=seed + 100_000,
        device=device,
        **common,
    )
    return {
        "x_train": train.x,
        "y_train": train.y,
        "x_test": test.x,
        "y_test": test.y,
        "means": train.info["means"],
    }


@dataclass(frozen=True, repr=False)
class Run(Result):
    """One training run: recorded ``steps``, float64 test ``logits`` (T, n_test, K), ``y_test``,
    the ``loss`` name, the DCO ``n`` (``None`` for CE) and the final train accuracy."""

    loss: str
    n: int | None
    steps: np.ndarray
    logits: torch.Tensor
    y_test: torch.Tensor
    train_accuracy: float


def train_run(
    task: dict,
    *,
    loss: str = "ce",
    n: int | None = None,
    steps: int = 1000,
    record_every: int = 50,
    lr: float = 1e-3,
    hidden: tuple[int, ...] = (256, 256),
    seed: int = 0,
) -> Run:
    """Train a fresh MLP on ``task`` with CE (``loss="ce"``) or DCO (``loss="dco"``, ``n`` samples).

    Seeded (initialisation from ``seed``; :func:`lossviz.train.fit` restores the global RNG).
    """
    if loss not in ("ce", "dco"):
        raise ValueError(f"`loss` must be 'ce' or 'dco', got {loss!r}")
    if loss == "dco":
        if n is None:
            raise ValueError("`n` is required for loss='dco'")
        n = check_int(n, "n", minimum=1)
    elif n is not None:
        raise ValueError("`n` is only used with loss='dco'")
    steps = check_int(steps, "steps", minimum=1)
    record_every = check_int(record_every, "record_every", minimum=1)
    lr = check_float(lr, "lr", positive=True)
    seed = check_int(seed, "seed", minimum=0)
    x, y, xt = task["x_train"], task["y_train"], task["x_test"]
    k = int(task["means"].shape[0])
    model = MLP(x.shape[1], hidden, k, seed=seed, device=x.device)
    fn = torch.nn.functional.cross_entropy if loss == "ce" else (lambda z, t: dco_loss(z, t, n))
    rec = Recorder(every=record_every, metrics={"logits": lambda m: m(xt).double()})
    hist = fit(
        model, fn, (x, y), steps=steps, optimizer="adam", lr=lr, seed=seed, callbacks=[rec], progress=False
    )
    rec_steps, logits = hist.steps("logits"), hist.values("logits")
    with torch.no_grad():
        train_acc = float((model(x).argmax(1) == y).float().mean())
    return Run(
        loss=loss,
        n=n,
        steps=np.asarray(rec_steps),
        logits=torch.stack(list(logits)),
        y_test=task["y_test"],
        train_accuracy=train_acc,
    )


def curves(run: Run, ns=NS, *, tau: float = 1.0) -> np.ndarray:
    """Test pass@N of every recorded step: array ``(len(steps), len(ns))`` (closed form)."""
    y = run.y_test
    return np.stack([pass_at_n(z, y, list(ns), tau=tau).cpu().numpy() for z in run.logits])


def best_temperature(logits: torch.Tensor, y: torch.Tensor, *, n: int = 64, grid=TAU_GRID) -> dict:
    """The grid temperature with the highest test pass@``n`` (chosen on the test set: an oracle)."""
    vals = [float(pass_at_n(logits, y, n, tau=float(t))) for t in grid]
    i = int(np.argmax(vals))
    tau = float(grid[i])
    return {
        "tau": tau,
        "pass_n": vals[i],
        "pass_1": float(pass_at_n(logits, y, 1, tau=tau)),
        "grid": tuple(float(t) for t in grid),
        "values": vals,
    }


def _dco1_vs_ce(seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(500, 100, generator=g, dtype=torch.float64, device=g.device) * 5
    y = torch.randint(0, 100, (500,), generator=g, device=g.device)
    return float(
        (dco_loss(z, y, 1, reduction="none") - torch.nn.functional.cross_entropy(z, y, reduction="none"))
        .abs()
        .max()
    )


def claim_statistics(
    seed: int,
    *,
    steps: int = 1000,
    control_steps: int | None = None,
    record_every: int = 50,
    dco_n: int = 64,
    device="cpu",
) -> dict:
    """Every asserted quantity for one seed: CE and DCO(``dco_n``) runs, the easy-task CE control.

    ``control_steps`` (default ``steps``) is the length of the easy-task run.
    """
    seed = check_int(seed, "seed", minimum=0)
    task = answer_task(seed, device=device)
    ce = train_run(task, loss="ce", steps=steps, record_every=record_every, seed=seed)
    dco = train_run(task, loss="dco", n=dco_n, steps=steps, record_every=record_every, seed=seed)
    easy_task = answer_task(seed, noise=0.5, device=device)
    easy = train_run(easy_task, loss="ce", steps=control_steps or steps, record_every=record_every, seed=seed)
    ns = (1, dco_n)
    c_ce, c_dco, c_easy = curves(ce, ns), curves(dco, ns), curves(easy, ns)
    peak = int(np.argmax(c_ce[:, 1]))
    best = best_temperature(ce.logits[-1], ce.y_test, n=dco_n)
    y = ce.y_test
    return {
        "runs": {"ce": ce, "dco": dco, "easy": easy},
        "ce_peak_step": int(ce.steps[peak]),
        "ce_peak_pass_n": float(c_ce[peak, 1]),
        "ce_final_pass_n": float(c_ce[-1, 1]),
        "ce_drop": float(c_ce[peak, 1] - c_ce[-1, 1]),
        "ce_pass1_at_peak": float(c_ce[peak, 0]),
        "ce_final_pass1": float(c_ce[-1, 0]),
        "ce_pass1_rise": float(c_ce[-1, 0] - c_ce[peak, 0]),
        "ce_final_accuracy": float((ce.logits[-1].argmax(1) == y).double().mean()),
        "ce_train_accuracy": ce.train_accuracy,
        "dco_final_pass_n": float(c_dco[-1, 1]),
        "dco_final_pass1": float(c_dco[-1, 0]),
        "dco_final_accuracy": float((dco.logits[-1].argmax(1) == y).double().mean()),
        "dco_minus_ce_pass_n": float(c_dco[-1, 1] - c_ce[-1, 1]),
        "ce_minus_dco_pass1": float(c_ce[-1, 0] - c_dco[-1, 0]),
        "dco_curve_drop": float(c_dco[:, 1].max() - c_dco[-1, 1]),
        "dco1_vs_ce": _dco1_vs_ce(seed),
        "easy_drop": float(c_easy[:, 1].max() - c_easy[-1, 1]),
        "easy_final_pass_n": float(c_easy[-1, 1]),
        "easy_final_accuracy": float((easy.logits[-1].argmax(1) == easy.y_test).double().mean()),
        "ce_best_tau": best["tau"],
        "ce_tau_pass_n": best["pass_n"],
        "ce_tau_pass1": best["pass_1"],
        "tau_minus_dco_pass_n": best["pass_n"] - float(c_dco[-1, 1]),
        "tau_minus_dco_pass1": best["pass_1"] - float(c_dco[-1, 0]),
    }
