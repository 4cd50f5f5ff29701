r"""Set-up of notebook L07: one-cycle learning rates on 3-class spirals with a BatchNorm MLP.

Leslie N. Smith & Nicholay Topin, *Super-Convergence: Very Fast Training of Neural Networks Using
Large Learning Rates*, arXiv:1708.07120 (2017; SPIE Artificial Intelligence and Machine Learning
for Multi-Domain Operations Applications, 2019). The paper trains with ONE learning-rate cycle
whose maximum is LARGE (read off an LR range test) and reaches in about a tenth of the
iterations what piecewise-constant training reaches (ResNet-56 on CIFAR-10: 92.4% after 10k
iterations vs 91.2% after 80k).

The toy: 3-class Archimedean spirals (1.5 turns, noise 0.05, inputs scaled by 2), 600 training
and 2000 test points; MLP 2-128-128-128-3 with ``BatchNorm1d`` before every ReLU; SGD with
momentum 0.9 (cycled 0.95 -> 0.85 -> 0.95 against the lr in the 1cycle runs), weight decay 1e-4,
batch 64. The 1cycle schedule is ``torch.optim.lr_scheduler.OneCycleLR`` with
``three_phase=True``, linear annealing, ``div_factor=10`` and ``final_div_factor=100``: lr
``max/10 -> max`` over 45% of the steps, back to ``max/10`` over the next 45%, then down to
``max/1000``. Every run goes through :func:`lossviz.train.fit`, which steps the scheduler after
every update (``fit(scheduler=...)``).

What the toy shows (measured over seeds 0-19, see the notebook): 1cycle at ``N/10`` steps beats
the best constant lr at ``N/10`` steps and is on par with the best constant lr at ``N`` steps,
but a 1cycle whose maximum is 10x SMALLER (0.03 instead of 0.3) is just as good: the gain is the
warm-up + annealing, not the large learning rate. The LR range test
(:func:`lossviz.landscape.lr_range_test`) picks a maximum that is worse than 0.3.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import data, landscape, train
from .._validate import check_choice, check_float, check_int

N_TRAIN, N_TEST = 600, 2000
HIDDEN = (128, 128, 128)
MOMENTUM, WEIGHT_DECAY, BATCH = 0.9, 1e-4, 64
CONSTANT_LRS = (0.01, 0.03, 0.1, 0.3)
MAX_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
LARGE_MAX, SMALL_MAX = 0.3, 0.03
RANGE_LR_MAX, RANGE_STEPS, RANGE_EVERY = 3.0, 300, 10


def spirals(seed: int, *, n_train: int = N_TRAIN, n_test: int = N_TEST, scale: float = 2.0, device=None):
    """``(x_train, y_train, x_test, y_test)``: 3-class spirals (1.5 turns, noise 0.05) times ``scale``.

    The test set is drawn with seed ``seed + 10_000`` (independent of the training set).
    """
    seed = check_int(seed, "seed", minimum=0)
    scale = check_float(scale, "scale", positive=True)
    tr = data.spirals(n_train, 3, turns=1.5, noise=0.05, seed=seed, device=device)
    te = data.spirals(n_test, 3, turns=1.5, noise=0.05, seed=seed + 10_000, device=device)
    return tr.x * scale, tr.y, te.x * scale, te.y


def bn_mlp(
    seed: int, *, hidden=HIDDEN, in_features: int = 2, out_features: int = 3, device=None
) -> nn.Module:
    """``Linear -> BatchNorm1d -> ReLU`` blocks and a linear head, initialised from ``seed``.

    Torch's default initialisation draws from a forked global generator, so the caller's RNG is
    left alone.
    """
    seed = check_int(seed, "seed", minimum=0)
    hidden = tuple(check_int(h, "hidden[i]", minimum=1) for h in hidden)
    layers: list[nn.Module] = []
    width = check_int(in_features, "in_features", minimum=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, check_int(out_features, "out_features", minimum=1)))
        net = nn.Sequential(*layers)
    return net.to(device) if device is not None else net


class _LRLog(train.Callback):
    """Records the lr and momentum of the first parameter group that every update uses."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        super().__init__(every=1, final=False)
        self.optimizer = optimizer
        self.lrs: list[float] = []
        self.momenta: list[float] = []

    def on_step(self, step, model, loss, history):
        group = self.optimizer.param_groups[0]
        self.lrs.append(float(group["lr"]))
        self.momenta.append(float(group.get("momentum", group.get("betas", (math.nan,))[0])))


def one_cycle(optimizer: torch.optim.Optimizer, max_lr: float, steps: int):
    """``OneCycleLR``: ``max/10 -> max`` (45%), ``-> max/10`` (45%), ``-> max/1000`` (10%); momentum
    0.95 -> 0.85 -> 0.95 against it."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=check_float(max_lr, "max_lr", positive=True),
        total_steps=check_int(steps, "steps", minimum=2),
        pct_start=0.45,
        anneal_strategy="linear",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=10.0,
        final_div_factor=100.0,
        three_phase=True,
    )


def run(
    seed: int,
    schedule: str,
    lr: float,
    steps: int,
    *,
    record_at=None,
    every: int | None = None,
    splits=None,
    device=None,
) -> dict:
    """Train a fresh :func:`bn_mlp` (init and batch order from ``seed``) on :func:`spirals`.

    ``schedule="constant"`` uses SGD at ``lr`` with momentum 0.9; ``"1cycle"`` uses
    :func:`one_cycle` with maximum ``lr``. Test accuracy is recorded at ``record_at`` (and every
    ``every`` steps, and at the end). Returns ``{"steps", "acc", "lrs", "final", "diverged"}``
    (``acc`` is 1/3 after a divergence: a diverged net is scored at chance).
    """
    check_choice(schedule, "schedule", ("constant", "1cycle"))
    lr = check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=2)
    x, y, xt, yt = spirals(seed, device=device) if splits is None else splits
    net = bn_mlp(seed, device=x.device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    log = _LRLog(opt)
    callbacks: list = [log]
    scheduler = (lambda o: one_cycle(o, lr, steps)) if schedule == "1cycle" else None
    at = None if record_at is None else [int(s) for s in record_at if 0 <= int(s) <= steps]
    rec = train.Recorder(every=every, at=at or [], metrics={"acc": train.accuracy(xt, yt)})
    callbacks.append(rec)
    hist = train.fit(
        net,
        nn.functional.cross_entropy,
        (x, y),
        steps=steps,
        optimizer=opt,
        scheduler=scheduler,
        batch_size=BATCH,
        callbacks=callbacks,
        divergence_threshold=1e4,
        seed=seed,
        progress=False,
    )
    rec_steps = np.array(hist.steps("acc"), dtype=int) if "acc" in hist.records else np.zeros(0, int)
    acc = np.array(hist.values("acc"), dtype=float) if "acc" in hist.records else np.zeros(0)
    if hist.diverged:
        wanted = sorted(set(at or []) | {steps})
        missing = [s for s in wanted if s not in set(rec_steps.tolist())]
        rec_steps = np.concatenate([rec_steps, np.array(missing, dtype=int)])
        acc = np.concatenate([acc, np.full(len(missing), 1 / 3)])
    lrs = np.array(log.lrs, dtype=float)[:steps]
    return {
        "steps": rec_steps,
        "acc": acc,
        "lrs": lrs,
        "final": float(acc[rec_steps == steps][0]) if (rec_steps == steps).any() else 1 / 3,
        "diverged": bool(hist.diverged),
    }


def acc_at(result: dict, step: int) -> float:
    """Test accuracy of a :func:`run` result at a recorded ``step``."""
    hit = np.flatnonzero(result["steps"] == int(step))
    if not len(hit):
        raise ValueError(f"`step` {step} was not recorded; recorded: {result['steps'].tolist()}")
    return float(result["acc"][hit[0]])


def range_test(seed: int, *, splits=None, device=None) -> landscape.LRRangeTest:
    """The LR range test of the paper: lr 0 -> 3 over 300 steps, test accuracy every 10 steps,
    maximum lr = the lr at the peak of the 3-point moving average."""
    x, y, xt, yt = spirals(seed, device=device) if splits is None else splits
    return landscape.lr_range_test(
        bn_mlp(seed, device=x.device),
        nn.functional.cross_entropy,
        (x, y),
        train.accuracy(xt, yt),
        lr_min=0.0,
        lr_max=RANGE_LR_MAX,
        steps=RANGE_STEPS,
        every=RANGE_EVERY,
        smooth=3,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        batch_size=BATCH,
        seed=seed,
    )


def claim_statistics(
    seed: int,
    *,
    short: int = 300,
    long: int = 3000,
    constant_lrs=CONSTANT_LRS,
    long_lrs=None,
    max_lrs=(SMALL_MAX, LARGE_MAX),
    every: int | None = None,
    device=None,
) -> dict:
    """Every quantity the notebook asserts, for one seed.

    Constant-lr runs go to ``long`` steps (test accuracy recorded at ``short`` too, so one run
    gives both budgets: same init, same batch order); ``long_lrs`` (default: all of
    ``constant_lrs``) are the ones continued to ``long``, the others stop at ``short``. 1cycle
    runs last ``short`` steps at each maximum in ``max_lrs`` and at the range test's pick.

    Returns a dict with the runs (``constant[lr]``, ``cycle[max_lr]``, ``range``) and the numbers:
    ``best_const_short`` / ``best_const_long`` (and the lrs that gave them), ``cycle_large``,
    ``cycle_small``, ``cycle_range`` (accuracies at ``short``), ``range_lr``,
    ``gain_vs_short = cycle_large - best_const_short``,
    ``gap_vs_long = cycle_large - best_const_long``,
    ``large_minus_small = cycle_large - cycle_small`` and
    ``large_minus_range = cycle_large - cycle_range``.
    """
    seed = check_int(seed, "seed", minimum=0)
    short = check_int(short, "short", minimum=2)
    long = check_int(long, "long", minimum=short)
    constant_lrs = tuple(float(v) for v in constant_lrs)
    long_lrs = constant_lrs if long_lrs is None else tuple(float(v) for v in long_lrs)
    if not set(long_lrs) <= set(constant_lrs):
        raise ValueError(f"`long_lrs` {long_lrs} must be a subset of `constant_lrs` {constant_lrs}")
    max_lrs = tuple(float(v) for v in max_lrs)
    if LARGE_MAX not in max_lrs or SMALL_MAX not in max_lrs:
        raise ValueError(f"`max_lrs` must contain {SMALL_MAX} and {LARGE_MAX}, got {max_lrs}")
    splits = spirals(seed, device=device)
    constant = {
        lr: run(
            seed,
            "constant",
            lr,
            long if lr in long_lrs else short,
            record_at=[short],
            every=every,
            splits=splits,
        )
        for lr in constant_lrs
    }
    cycle = {m: run(seed, "1cycle", m, short, every=every, splits=splits) for m in max_lrs}
    rt = range_test(seed, splits=splits)
    cycle_range = run(seed, "1cycle", rt.best_lr, short, every=every, splits=splits)
    short_acc = {lr: acc_at(r, short) for lr, r in constant.items()}
    long_acc = {lr: acc_at(constant[lr], long) for lr in long_lrs}
    best_short = max(short_acc, key=short_acc.get)
    best_long = max(long_acc, key=long_acc.get)
    large, small = cycle[LARGE_MAX]["final"], cycle[SMALL_MAX]["final"]
    return {
        "seed": seed,
        "short": short,
        "long": long,
        "constant": constant,
        "cycle": cycle,
        "range": rt,
        "cycle_range_run": cycle_range,
        "const_short": short_acc,
        "const_long": long_acc,
        "best_const_short": short_acc[best_short],
        "best_lr_short": best_short,
        "best_const_long": long_acc[best_long],
        "best_lr_long": best_long,
        "cycle_large": large,
        "cycle_small": small,
        "cycle_range": cycle_range["final"],
        "range_lr": rt.best_lr,
        "gain_vs_short": large - short_acc[best_short],
        "gap_vs_long": large - long_acc[best_long],
        "large_minus_small": large - small,
        "large_minus_range": large - cycle_range["final"],
    }
