r"""K07: self-distillation with ground-truth targets in kernel ridge regression (the notebook's set-up).

Kenneth Borup & Lars N. Andersen, "Even your Teacher Needs Guidance: Ground-Truth Targets Dampen
Regularization Imposed by Self-Distillation", NeurIPS 2021, arXiv:2102.13088.

Toy: 1-D, ``n = 40``, ``x ~ U(-1, 1)``, ``y = sin 3x + 0.5 cos 7x + 0.3 eps``; RBF kernel with length 0.2
(:func:`lossviz.ntk.rbf_kernel`), float64; test error = mean squared error against the noise-free
function on a 400-point grid of ``[-1, 1]``. ``c*`` is the best ridge of a 61-point log grid
``1e-5..10`` **chosen by test error** (an oracle); the under-regularised teacher has ridge
``c*/300``, the over-regularised one ``10 c*``. Every distilled fit comes from the closed form
:func:`lossviz.ntk.self_distillation`; :func:`iterate` re-does the steps by repeated linear solves
(:func:`lossviz.ntk.kernel_regression`) as an independent check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import ntk
from .._result import Result
from .._validate import check_int

__all__ = [
    "ALPHAS",
    "STEPS",
    "RIDGES",
    "Task",
    "make_task",
    "test_error",
    "iterate",
    "ErrorGrid",
    "error_grid",
    "step2_grid_errors",
    "claim_statistics",
]

ALPHAS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
STEPS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 10**6)
RIDGES = tuple(np.logspace(-5, 1, 61))
LENGTH = 0.2


def _target_fn(x):
    return torch.sin(3 * x) + 0.5 * torch.cos(7 * x)


@dataclass(frozen=True, repr=False)
class Task(Result):
    """Training and test data with their Gram matrices (float64)."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    f_test: torch.Tensor
    k: torch.Tensor
    k_test: torch.Tensor


def make_task(
    seed: int, *, n: int = 40, n_test: int = 400, noise: float = 0.3, length: float = LENGTH, device=None
) -> Task:
    """The 1-D regression task of the notebook, drawn with a seeded generator on ``device``.

    Examples
    --------
    >>> t = make_task(0)
    >>> t.k.shape, t.k_test.shape
    (torch.Size([40, 40]), torch.Size([400, 40]))
    """
    n, n_test = check_int(n, "n", minimum=2), check_int(n_test, "n_test", minimum=1)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    x = (2 * torch.rand(n, generator=g, dtype=torch.float64, device="cpu") - 1).to(device)
    eps = torch.randn(n, generator=g, dtype=torch.float64, device="cpu").to(device)
    y = _target_fn(x) + noise * eps
    x_test = torch.linspace(-1, 1, n_test, dtype=torch.float64, device=x.device)
    return Task(
        x,
        y,
        x_test,
        _target_fn(x_test),
        ntk.rbf_kernel(x, length=length),
        ntk.rbf_kernel(x_test, x, length=length),
    )


def test_error(pred: torch.Tensor, task: Task) -> torch.Tensor:
    """Mean squared error against the noise-free function on the test grid (points on the last axis)."""
    return (pred - task.f_test).pow(2).mean(-1)


test_error.__test__ = False  # not a pytest test


def iterate(task: Task, ridge: float, alpha: float, steps: int):
    """``steps`` distillation steps by repeated kernel ridge solves: ``(train fits, test predictions)``, each (steps, n)."""
    tr, te = [], []
    target = task.y
    for _ in range(steps):
        fit = ntk.kernel_regression(task.k, target, task.k_test, ridge=ridge)
        tr.append(fit.train_predictions[:, 0])
        te.append(fit.predictions[:, 0])
        target = alpha * task.y + (1 - alpha) * fit.train_predictions[:, 0]
    return torch.stack(tr), torch.stack(te)


@dataclass(frozen=True, repr=False)
class ErrorGrid(Result):
    """Test errors ``errors[i, j]`` of alpha ``alphas[i]`` at step ``steps[j]`` for one teacher ridge."""

    alphas: np.ndarray
    steps: np.ndarray
    errors: np.ndarray
    ridge: float
    teacher_error: float


def error_grid(task: Task, ridge: float, alphas=ALPHAS, steps=STEPS) -> ErrorGrid:
    """Closed-form test errors over ``alphas x steps`` (13 x 13 in the notebook: milliseconds)."""
    errs = np.array(
        [
            test_error(
                ntk.self_distillation(
                    task.k, task.y, task.k_test, ridge=ridge, alpha=a, steps=steps
                ).predictions[..., 0],
                task,
            )
            .cpu()
            .numpy()
            for a in alphas
        ]
    )
    return ErrorGrid(
        np.asarray(alphas, float), np.asarray(steps, float), errs, float(ridge), float(errs[0, 0])
    )


def _krr(task, ridge):
    return ntk.kernel_regression(task.k, task.y, task.k_test, ridge=ridge)


def step2_grid_errors(task: Task, ridge: float, grid=None) -> np.ndarray:
    """Test errors of step 2 for every alpha of ``grid`` (default 3001 points on [-1, 2]), batched.

    Evaluates ``f_2 = k(x, X) V diag((alpha + (1 - alpha) a) / (d + c)) V^T y`` for all alphas from one
    eigendecomposition: a brute-force search that shares no code with
    :func:`lossviz.ntk.distillation_weight` (which solves a linear system).
    """
    grid = np.linspace(-1, 2, 3001) if grid is None else np.asarray(grid, float)
    d, v = torch.linalg.eigh(task.k)
    d = d.clamp(min=0.0)
    a = d / (d + ridge)
    al = torch.as_tensor(grid, dtype=torch.float64, device=d.device)[:, None]
    h = al + (1 - al) * a[None, :]
    pred = (task.k_test @ v) @ ((h / (d + ridge)[None, :]) * (v.T @ task.y)[None, :]).T
    return test_error(pred.T, task).cpu().numpy()


def claim_statistics(seed: int, *, device=None) -> dict:
    """Every number the notebook's claim check asserts, for one seed (about 0.2 s on a CPU).

    Keys: ``closed_vs_iter`` (max abs gap, training fits and test errors, alpha 0/.3/.7, 10 steps),
    ``inf_vs_krr`` (max abs gap of the t = inf fixed point and of 400 iterated solves to KRR with
    ``c / alpha``, alpha .25/.5/.75), ``sd0_norm_ratio`` and ``sd0_err_vs_zero`` (alpha = 0 at t = 1e6),
    ``a001_vs_krr`` (relative) and ``a001_err_vs_zero``, ``gain_margin`` (min over d of
    ``g_t(d) - d / (d + c/alpha)``, alpha = .5), ``best_vs_teacher`` and ``best_vs_tuned`` (under-regularised
    teacher, best over alpha < 1 and t >= 2), ``alpha_star`` and ``alpha_star_gap`` (closed-form
    optimal step-2 alpha minus the best of a 3001-point grid on [-1, 2], test error), ``over_ratio``
    (control: best over alpha < 1, t >= 2 of the over-regularised teacher / its own error),
    ``alpha1_gap`` (alpha = 1: max over t of ``|f_t - f_1|`` on the test grid), plus ``c_star``, ``tuned_error``, ``zero_error``.
    """
    task = make_task(seed, device=device)
    zero_error = float(task.f_test.pow(2).mean())
    tuned = np.array([float(test_error(_krr(task, c).predictions[:, 0], task)) for c in RIDGES])
    c_star = float(RIDGES[int(np.argmin(tuned))])
    tuned_error = float(tuned.min())
    c_u, c_o = c_star / 300, 10 * c_star
    out = {"c_star": c_star, "tuned_error": tuned_error, "zero_error": zero_error}

    gap = 0.0
    for a in (0.0, 0.3, 0.7):
        tr, te = iterate(task, c_u, a, 10)
        sd = ntk.self_distillation(task.k, task.y, task.k_test, ridge=c_u, alpha=a, steps=range(1, 11))
        gap = max(gap, float((sd.train_predictions[..., 0] - tr).abs().max()))
        gap = max(gap, float((test_error(sd.predictions[..., 0], task) - test_error(te, task)).abs().max()))
    out["closed_vs_iter"] = gap

    gap = 0.0
    for a in (0.25, 0.5, 0.75):
        krr = _krr(task, c_u / a)
        sd = ntk.self_distillation(task.k, task.y, task.k_test, ridge=c_u, alpha=a, steps=[math.inf])
        tr, te = iterate(task, c_u, a, 400)
        for got_tr, got_te in ((sd.train_predictions[0, :, 0], sd.predictions[0, :, 0]), (tr[-1], te[-1])):
            gap = max(gap, float((got_tr - krr.train_predictions[:, 0]).abs().max()))
            gap = max(gap, float((got_te - krr.predictions[:, 0]).abs().max()))
    out["inf_vs_krr"] = gap

    sd0 = ntk.self_distillation(task.k, task.y, task.k_test, ridge=c_u, alpha=0.0, steps=[1, 10**6])
    out["sd0_norm_ratio"] = float(sd0.train_predictions[1].norm() / sd0.train_predictions[0].norm())
    out["sd0_err_vs_zero"] = float(test_error(sd0.predictions[1, :, 0], task)) / zero_error
    sd1 = ntk.self_distillation(task.k, task.y, task.k_test, ridge=c_u, alpha=0.01, steps=[10**6])
    krr = _krr(task, c_u / 0.01)
    out["a001_vs_krr"] = float(
        (sd1.predictions[0, :, 0] - krr.predictions[:, 0]).norm() / krr.predictions[:, 0].norm()
    )
    out["a001_err_vs_zero"] = float(test_error(sd1.predictions[0, :, 0], task)) / zero_error

    sdh = ntk.self_distillation(task.k, task.y, ridge=c_u, alpha=0.5, steps=STEPS)
    d = sdh.eigenvalues
    out["gain_margin"] = float((sdh.gains - d / (d + c_u / 0.5)).min())

    under, over = error_grid(task, c_u), error_grid(task, c_o)
    keep_a, keep_t = under.alphas < 1, under.steps >= 2
    out["teacher_error"] = under.teacher_error
    out["best_vs_teacher"] = float(under.errors[np.ix_(keep_a, keep_t)].min() / under.teacher_error)
    out["best_vs_tuned"] = float(under.errors[np.ix_(keep_a, keep_t)].min() / tuned_error)
    out["over_ratio"] = float(over.errors[np.ix_(keep_a, keep_t)].min() / over.teacher_error)

    f1 = _krr(task, c_u)
    a_star = ntk.distillation_weight(
        task.k, task.y, f1.train_predictions, task.f_test, ridge=c_u, k_eval_train=task.k_test
    )
    sd_star = ntk.self_distillation(task.k, task.y, task.k_test, ridge=c_u, alpha=a_star, steps=[2])
    out["alpha_star"] = a_star
    out["alpha_star_error"] = float(test_error(sd_star.predictions[0, :, 0], task))
    out["alpha_star_gap"] = out["alpha_star_error"] - float(step2_grid_errors(task, c_u).min())
    sd_one = ntk.self_distillation(task.k, task.y, task.k_test, ridge=c_u, alpha=1.0, steps=STEPS)
    out["alpha1_gap"] = float((sd_one.predictions - sd_one.predictions[:1]).abs().max())  # f_t vs f_1
    return out
