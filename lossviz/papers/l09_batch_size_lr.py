r"""Set-up of notebook L09: mini-batch Hessian spectra and the maximal stable learning rate against the batch size.

D. Granziol, S. Zohren, S. Roberts, *Learning Rates as a Function of Batch Size: A Random Matrix
Theory Approach to Neural Network Training*, Journal of Machine Learning Research 23(173), 2022,
arXiv:2006.09092.

The claim: the extremal eigenvalues of the mini-batch Hessian ``H_B`` are larger in magnitude than
those of the full (empirical) Hessian ``H`` and grow as the batch shrinks (for a spiked model,
``lambda_1(H_B) ~ lambda_1 + P sigma^2 / (B lambda_1)``), so the largest stable SGD learning rate,
``~ 2 / lambda_1(H_B)``, grows with ``B`` and saturates once ``H_B`` is close to ``H``.

The toy (curriculum entry L09): 1024 standardised digits (a seeded subset of sklearn's 1797),
an MLP 64-32-10 with tanh (P = 2410 parameters) in float64, the loss
``0.5 * mean_i ||f(x_i) - e_{y_i}||^2`` (MSE on one-hot targets; with cross-entropy the divergence
based ``lr_max`` is not defined because SGD far above ``2/lambda`` still does not diverge), and
the point reached by 3 epochs of SGD (lr 0.05, batch 32) from the default init, through
:func:`lossviz.train.fit`. At that point:

* ``lambda`` and ``lambda_min`` of the full Hessian, and the top eigenvalue of the Hessians of 32
  random batches (without replacement inside a batch) of each size ``B = 8, 16, ..., 512``, by
  :func:`lossviz.curvature.batch_eigenvalues` (Lanczos, relative residual 1e-6); the bottom
  eigenvalue of the batches of ``B = 8, 64, 512``;
* ``lr_max(B)`` for ``B = 8, 32, 128, 512``: the largest learning rate on the grid ``2^(k/4)``,
  walked down from ``4 * 2 / lambda_B``, at which 200 SGD steps from the point (``train.fit``,
  batches of ``B`` reshuffled every epoch) keep the parameters finite with norm < 1e6 and end with
  a full-batch loss below the starting one;
* the negative control: all 1024 samples identical, where every batch Hessian is the full one.

The curriculum prototype used 16 batches per size; with 16 the 4x-grid decrease of the mean
(asserted >= 1.05 per step) fell to 1.026 and 1.047 on seeds 10 and 11 of 0-19, which 32 batches
fix (sampling noise of the mean at B = 128 and 512).

Nothing here is asserted; :func:`claim_statistics` returns every number the notebook asserts.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import curvature, data, models, stats, train
from .._validate import check_float, check_int
from ..losses import half_mse

N_SAMPLES = 1024
HIDDEN = 32
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512)
LR_SIZES = (8, 32, 128, 512)
BOTTOM_SIZES = (8, 64, 512)
SLOPE_SIZES = (8, 16, 32, 64, 128)
NUM_BATCHES = 32
TOL = 1e-6
LR_STEPS = 200


@functools.lru_cache(maxsize=2)
def _digits(dtype: torch.dtype) -> data.Dataset:
    return data.digits(dtype=dtype, device="cpu")  # read once per dtype; callers index and move copies


def make_data(
    seed: int = 0,
    n: int = N_SAMPLES,
    *,
    identical: bool = False,
    device=None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, one_hot_targets, labels)``: ``n`` standardised digits drawn (seeded) from the 1797.

    ``identical=True`` is the negative control: the first drawn sample repeated ``n`` times.
    """
    seed = check_int(seed, "seed", minimum=0)
    n = check_int(n, "n", minimum=1, maximum=1797)
    full = _digits(dtype)
    rows = np.random.default_rng(seed).permutation(full.x.shape[0])[:n]
    if identical:
        rows = np.full(n, rows[0])
    idx = torch.as_tensor(rows, dtype=torch.int64, device="cpu")
    x, labels = full.x[idx].to(device), full.y[idx].to(device)
    targets = nn.functional.one_hot(labels, 10).to(dtype)
    return x, targets, labels


def make_model(
    seed: int = 0, *, hidden: int = HIDDEN, device=None, dtype: torch.dtype = torch.float64
) -> nn.Module:
    """MLP 64-``hidden``-10 with tanh and PyTorch's default init, seeded."""
    return models.MLP(64, (hidden,), 10, activation="tanh", seed=seed, dtype=dtype, device=device)


def train_point(
    seed: int = 0,
    x: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    *,
    epochs: int = 3,
    lr: float = 0.05,
    batch_size: int = 32,
    device=None,
) -> nn.Module:
    """The point where the spectra are measured: ``epochs`` of SGD from the default init."""
    if x is None or targets is None:
        x, targets, _ = make_data(seed, device=device)
    model = make_model(seed, device=x.device, dtype=x.dtype)
    train.fit(
        model, half_mse, (x, targets), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False
    )
    return model


def full_loss(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        return float(half_mse(model(x), targets))


def is_stable(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    lr: float,
    batch_size: int,
    *,
    steps: int = LR_STEPS,
    seed: int = 0,
    start_loss: float | None = None,
) -> bool:
    """Do ``steps`` SGD steps at ``lr`` from ``model`` (a copy; the model is not changed) stay stable?

    Stable: no divergence (loss finite and below 1e8 at every step), finite parameters with norm
    below 1e6 at the end, and a final full-batch loss below the starting one.
    """
    lr = check_float(lr, "lr", minimum=0.0)
    if start_loss is None:
        start_loss = full_loss(model, x, targets)
    run = copy.deepcopy(model)
    hist = train.fit(
        run,
        half_mse,
        (x, targets),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        divergence_threshold=1e8,
        progress=False,
    )
    if hist.diverged:
        return False
    with torch.no_grad():
        theta = torch.cat([p.reshape(-1) for p in run.parameters()])
        if not bool(torch.isfinite(theta).all()) or float(theta.norm()) >= 1e6:
            return False
    end = full_loss(run, x, targets)
    return math.isfinite(end) and end < start_loss


def max_stable_lr(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    lam_batch: float,
    *,
    start_factor: float = 4.0,
    steps: int = LR_STEPS,
    seed: int = 0,
    max_tries: int = 40,
) -> tuple[float, list[tuple[float, bool]]]:
    """The largest ``lr = 2^(k/4)`` at most ``start_factor * 2 / lam_batch`` that is stable.

    Walks the grid down from the top until :func:`is_stable`; returns ``(lr_max, [(lr, stable), ...])``.
    """
    lam_batch = check_float(lam_batch, "lam_batch", minimum=0.0)
    if lam_batch <= 0:
        raise ValueError(f"`lam_batch` must be positive, got {lam_batch}")
    start_loss = full_loss(model, x, targets)
    k = math.floor(4 * math.log2(start_factor * 2.0 / lam_batch) + 1e-9)
    tried: list[tuple[float, bool]] = []
    for _ in range(max_tries):
        lr = 2.0 ** (k / 4)
        ok = is_stable(model, x, targets, lr, batch_size, steps=steps, seed=seed, start_loss=start_loss)
        tried.append((lr, ok))
        if ok:
            return lr, tried
        k -= 1
    return float("nan"), tried


def spectra(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_sizes=BATCH_SIZES,
    bottom_sizes=BOTTOM_SIZES,
    num_batches: int = NUM_BATCHES,
    seed: int = 0,
    tol: float = TOL,
) -> dict[str, Any]:
    """Full-Hessian edges and per-batch top (and bottom) eigenvalues at ``model``."""
    n = x.shape[0]
    kw = {"tol": tol, "seed": seed}
    full_top = curvature.batch_eigenvalues(model, half_mse, (x, targets), n, 1, **kw).eigenvalues[0]
    out: dict[str, Any] = {"full_top": float(full_top), "top": {}, "bottom": {}}
    if bottom_sizes:
        low = curvature.batch_eigenvalues(model, half_mse, (x, targets), n, 1, which="SA", **kw)
        out["full_bottom"] = float(low.eigenvalues[0])
    for b in batch_sizes:
        res = curvature.batch_eigenvalues(model, half_mse, (x, targets), b, num_batches, **kw)
        out["top"][b] = res
        if b in bottom_sizes:
            out["bottom"][b] = curvature.batch_eigenvalues(
                model, half_mse, (x, targets), b, num_batches, which="SA", indices=res.indices, **kw
            )
    return out


def run(
    seed: int = 0,
    *,
    num_batches: int = NUM_BATCHES,
    batch_sizes=BATCH_SIZES,
    lr_sizes=LR_SIZES,
    bottom_sizes=BOTTOM_SIZES,
    control: bool = True,
    device=None,
) -> dict[str, Any]:
    """Everything the notebook shows for one seed (the widget scrubs this cache)."""
    seed = check_int(seed, "seed", minimum=0)
    num_batches = check_int(num_batches, "num_batches", minimum=2)
    for b in lr_sizes:
        if b not in batch_sizes:
            raise ValueError(f"`lr_sizes` must be a subset of `batch_sizes`, got {b}")
    x, t, _ = make_data(seed, device=device)
    model = train_point(seed, x, t)
    spec = spectra(
        model, x, t, batch_sizes=batch_sizes, bottom_sizes=bottom_sizes, num_batches=num_batches, seed=seed
    )
    mean_top = {b: spec["top"][b].mean for b in batch_sizes}
    lr_max, lr_tried = {}, {}
    for b in lr_sizes:
        lr_max[b], lr_tried[b] = max_stable_lr(model, x, t, b, mean_top[b], seed=seed)
    out = {
        "seed": seed,
        "model": model,
        "n": x.shape[0],
        "num_params": sum(p.numel() for p in model.parameters()),
        "loss": full_loss(model, x, t),
        "batch_sizes": tuple(batch_sizes),
        "lr_sizes": tuple(lr_sizes),
        "spectra": spec,
        "mean_top": mean_top,
        "lr_max": lr_max,
        "lr_tried": lr_tried,
    }
    if control:
        xc, tc, _ = make_data(seed, identical=True, device=device)
        cspec = spectra(
            model, xc, tc, batch_sizes=batch_sizes, bottom_sizes=(), num_batches=num_batches, seed=seed
        )
        out["control"] = cspec
    return out


def statistics(res: dict[str, Any]) -> dict[str, float]:
    """The asserted numbers of a :func:`run`."""
    spec, n = res["spectra"], res["n"]
    lam = spec["full_top"]
    mean = res["mean_top"]
    ratios = {b: mean[b] / lam for b in res["batch_sizes"]}
    four = [b for b in LR_SIZES if b in mean]
    consecutive = [mean[a] / mean[b] for a, b in zip(four[:-1], four[1:])]
    sizes = [b for b in SLOPE_SIZES if b in mean]
    slope = stats.loglog_slope([1 / b - 1 / n for b in sizes], [mean[b] - lam for b in sizes])
    lr = res["lr_max"]
    out = {
        "lambda_full": lam,
        "lambda_min_full": spec["full_bottom"],
        "loss": res["loss"],
        "ratio_8": ratios[8],
        "min_ratio_upto_256": min(r for b, r in ratios.items() if b <= 256),
        "ratio_512": ratios[512],
        "min_consecutive_4x": min(consecutive),
        "bottom_ratio_8": spec["bottom"][8].mean / spec["full_bottom"],
        "bottom_ratio_64": spec["bottom"][64].mean / spec["full_bottom"],
        "bottom_ratio_512": spec["bottom"][512].mean / spec["full_bottom"],
        "bottom_shift_over_top_shift_8": (spec["full_bottom"] - spec["bottom"][8].mean) / (mean[8] - lam),
        "excess_slope": slope.slope,
        "excess_slope_r2": slope.r2,
        "lr_ratio_32_8": lr[32] / lr[8],
        "lr_ratio_512_128": lr[512] / lr[128],
        "lr_lambda_min": min(lr[b] * mean[b] / 2 for b in LR_SIZES),
        "lr_lambda_max": max(lr[b] * mean[b] / 2 for b in LR_SIZES),
        "lr_full_lambda_max": max(lr[b] * lam / 2 for b in LR_SIZES),
        "all_converged": float(all(r.all_converged for r in spec["top"].values())),
    }
    if "control" in res:
        c = res["control"]
        out["control_max_dev"] = max(
            float(np.max(np.abs(r.eigenvalues / c["full_top"] - 1))) for r in c["top"].values()
        )
    return out


def claim_statistics(seed: int, **kw) -> dict[str, float]:
    """Every number the notebook asserts, for one seed (``kw`` goes to :func:`run`)."""
    return statistics(run(seed, **kw))


def batch_mean_variance() -> dict[str, Any]:
    """sympy: the variance of the mean of ``B`` values drawn without replacement out of ``N``.

    ``Var = sigma^2 (N - B) / (B (N - 1))`` with ``sigma^2`` the population variance: the finite
    population correction. Returns the expression, its ``B << N`` limit and a numpy function.
    """
    import sympy as sp

    s2, N, B = sp.symbols("sigma^2 N B", positive=True)
    expr = s2 * (N - B) / (B * (N - 1))
    return {
        "variance": expr,
        "at_full_batch": sp.simplify(expr.subs(B, N)),
        "small_batch": sp.limit(expr * B, N, sp.oo) / B,
        "fn": sp.lambdify((s2, N, B), expr, "numpy"),
    }
