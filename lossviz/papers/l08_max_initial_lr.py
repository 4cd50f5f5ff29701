r"""Set-up of notebook L08: the maximal initial learning rate of deep ReLU nets against depth x width.

G. Iyer, B. Hanin, D. Rolnick, *Maximal Initial Learning Rates in Deep ReLU Networks*, ICML 2023,
arXiv:2212.07295.

The claim: :math:`\eta^*`, the largest constant learning rate from which a randomly initialised
net reaches a threshold accuracy, is well predicted by a power of depth x width,
:math:`\eta^* \approx C (d w)^{-p}`, provided ``w >> d`` and the input layer is trained at a small
learning rate; :math:`\eta^*` is related to, but not inversely proportional to, the sharpness
:math:`\lambda_1` at initialisation. The paper's exponent is not used here: the toy measures its
own and does not claim it equals the paper's.

The toy (curriculum entry L08): sklearn digits, standardised, a seeded split 1200 train / 597
test (float32); a bias-free ReLU MLP ``64 -> w x d -> 10`` with He init ``N(0, 2 / fan_in)`` and a
``N(0, 1 / fan_in)`` readout; SGD, batch 64, the batch order fixed by the seed, 150 steps, the
input layer at lr 0.01 and every other layer at ``lr``. "Trains" = test accuracy >= 0.5 after the
150 steps and the loss never non-finite or above 1e3. :math:`\eta^*` by
:func:`lossviz.landscape.max_trainable_lr` (from ``2^4`` halve until it trains, then 4 bisections
of ``log2 lr``: resolution ``2^(1/16)``; the width after the first starts at the previous width's
:math:`\eta^*` of the same depth and init, which gives the same grid and saves runs); geometric
mean over 2 inits. Configs: ``d in {2, 4, 8}``, ``w in {64, ..., 512}`` with ``w >= 16 d`` (11 nets,
``dw`` 128..4096). :math:`\lambda_1`: the top Hessian eigenvalue (Lanczos on Hessian-vector
products, :func:`lossviz.curvature.top_eigenvalues`) of the cross-entropy on 512 training samples,
over the trained (non-input) layers, at initialisation.

Nothing here is asserted; :func:`statistics` returns every number the notebook asserts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import curvature, data, landscape, models, stats, train
from .._validate import check_float, check_int

N_TRAIN = 1200
N_TEST = 597
DEPTHS = (2, 4, 8)
WIDTHS = (64, 128, 256, 512)
CONFIGS = tuple((d, w) for d in DEPTHS for w in WIDTHS if w >= 16 * d)
STEPS = 150
BATCH = 64
TARGET = 0.5
INPUT_LR = 0.01
LR_MAX = 2.0**4
REFINE = 4
N_CURV = 512
INITS = 2


def make_data(seed: int = 0, *, device=None, dtype: torch.dtype = torch.float32):
    """``(x_train, y_train, x_test, y_test)``: a seeded 1200 / 597 split of standardised digits."""
    seed = check_int(seed, "seed", minimum=0)
    full = data.digits(dtype=dtype, device="cpu")
    rows = torch.as_tensor(np.random.default_rng(seed).permutation(full.x.shape[0]), device=full.x.device)
    tr, te = rows[:N_TRAIN], rows[N_TRAIN : N_TRAIN + N_TEST]
    return tuple(t.to(device) for t in (full.x[tr], full.y[tr], full.x[te], full.y[te]))


def make_model(depth: int, width: int, seed: int = 0, *, device=None, dtype=torch.float32) -> models.MLP:
    """Bias-free ReLU MLP ``64 -> width x depth -> 10``: He init ``N(0, 2/fan_in)``, readout ``N(0, 1/fan_in)``."""
    depth = check_int(depth, "depth", minimum=1)
    width = check_int(width, "width", minimum=1)
    net = models.MLP(
        64,
        (width,) * depth,
        10,
        bias=False,
        init="normal",
        gain=math.sqrt(2.0),
        seed=seed,
        device=device,
        dtype=dtype,
    )
    with torch.no_grad():
        net.head.weight.mul_(1 / math.sqrt(2.0))  # N(0, 2/fan_in) -> N(0, 1/fan_in)
    return net


def slow_input_sgd(input_lr: float = INPUT_LR):
    """``optimizer=`` for :func:`lossviz.landscape.max_trainable_lr`: SGD, input layer at ``input_lr``.

    ``input_lr=None`` trains every layer at the searched lr (the condition-(ii) control).
    """
    if input_lr is not None:
        input_lr = check_float(input_lr, "input_lr", positive=True)

    def build(net: nn.Module, lr: float) -> torch.optim.Optimizer:
        if input_lr is None:
            return torch.optim.SGD(net.parameters(), lr=lr)
        first = list(net.layers[0].parameters())
        rest = [p for p in net.parameters() if all(p is not q for q in first)]
        return torch.optim.SGD([{"params": first, "lr": input_lr}, {"params": rest}], lr=lr)

    return build


def eta_star(
    net: nn.Module,
    split,
    *,
    seed: int = 0,
    lr_start: float | None = None,
    input_lr: float | None = INPUT_LR,
    refine: int = REFINE,
) -> landscape.MaxLRSearch:
    """:math:`\\eta^*` of ``net`` (not changed) on ``split`` (from :func:`make_data`): the toy's protocol.

    ``refine`` bisections of the factor-2 bracket (resolution ``2^(1/2^refine)``; see
    :func:`lossviz.landscape.max_trainable_lr`)."""
    x, y, xt, yt = split
    return landscape.max_trainable_lr(
        net,
        nn.functional.cross_entropy,
        (x, y),
        train.accuracy(xt, yt),
        target=TARGET,
        steps=STEPS,
        batch_size=BATCH,
        lr_start=lr_start,
        lr_max=LR_MAX,
        refine=refine,
        optimizer=slow_input_sgd(input_lr),
        divergence_threshold=1e3,
        seed=seed,
    )


def sharpness(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top Hessian eigenvalue of the cross-entropy on ``(x, y)`` over every layer but the input one."""
    res = curvature.top_eigenvalues(
        net,
        nn.functional.cross_entropy,
        (x, y),
        k=1,
        tol=1e-3,
        params=lambda n, p: not n.startswith("layers.0."),
    )
    return float(res.eigenvalues[0])


def run(
    seed: int = 0,
    *,
    inits: int = INITS,
    configs=CONFIGS,
    input_lr: float | None = INPUT_LR,
    curvature_: bool = True,
    refine: int = REFINE,
    device=None,
) -> dict[str, Any]:
    """Every config's :math:`\\eta^*` (per init and geometric mean) and :math:`\\lambda_1` (geometric mean).

    Init ``i`` of seed ``s`` uses model seed ``1000 s + i``; the data split and batch order use ``s``.
    ``searches[(d, w, i)]`` keeps every search (the lrs tried and their test accuracies).
    """
    seed = check_int(seed, "seed", minimum=0)
    inits = check_int(inits, "inits", minimum=1)
    split = make_data(seed, device=device)
    xc, yc = split[0][:N_CURV], split[1][:N_CURV]
    configs = tuple(sorted(configs))
    etas = np.full((len(configs), inits), np.nan)
    lams = np.full((len(configs), inits), np.nan)
    runs = 0
    searches: dict[tuple[int, int, int], landscape.MaxLRSearch] = {}
    prev: dict[tuple[int, int], float] = {}
    for j, (d, w) in enumerate(configs):
        for i in range(inits):
            net = make_model(d, w, 1000 * seed + i, device=device)
            start = prev.get((d, i))
            res = eta_star(net, split, seed=seed, lr_start=start, input_lr=input_lr, refine=refine)
            runs += res.runs
            searches[(d, w, i)] = res
            etas[j, i] = res.lr
            if np.isfinite(res.lr):
                prev[(d, i)] = res.lr
            if curvature_:
                lams[j, i] = sharpness(net, xc, yc)
    return {
        "seed": seed,
        "depth": np.array([d for d, _ in configs]),
        "width": np.array([w for _, w in configs]),
        "eta_inits": etas,
        "eta": np.exp(np.log(etas).mean(1)),
        "lambda_inits": lams,
        "lambda1": np.exp(np.log(lams).mean(1)),
        "runs": runs,
        "searches": searches,
        "inits": inits,
        "input_lr": input_lr,
        "refine": refine,
    }


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    return stats.loglog_slope(x, y).r2


def statistics(res: dict[str, Any]) -> dict[str, float]:
    """The regression numbers the notebook asserts (all fits least squares in log-log space)."""
    d, w, eta = res["depth"], res["width"], res["eta"]
    fit = stats.loglog_slope(d * w, eta)
    out = {
        "slope": fit.slope,
        "r2_dw": fit.r2,
        "r2_w": _r2(w, eta),
        "r2_d": _r2(d, eta),
        "eta_min": float(eta.min()),
        "eta_max": float(eta.max()),
    }
    # log eta* = a + b log d + c log w (least squares): a power of d w would have b = c
    design = np.column_stack([np.ones(len(d)), np.log(d), np.log(w)])
    target = np.log(eta)
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    resid = target - design @ coef
    out["exp_d"], out["exp_w"] = float(coef[1]), float(coef[2])
    out["r2_d_w"] = float(1 - resid @ resid / np.sum((target - target.mean()) ** 2))
    lam = res["lambda1"]
    if np.all(np.isfinite(lam)):
        out["lambda_slope"] = stats.loglog_slope(d * w, lam).slope
        out["eta_lambda_min"] = float((eta * lam).min())
        out["eta_lambda_max"] = float((eta * lam).max())
        out["eta_on_lambda_slope"] = stats.loglog_slope(lam, eta).slope
    return out


def claim_statistics(seed: int, **kw) -> dict[str, float]:
    """``statistics(run(seed, **kw))``."""
    return statistics(run(seed, **kw))
