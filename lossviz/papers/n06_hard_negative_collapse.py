r"""N06: hard-negative mining, the triplet loss and network collapse (the notebook's set-up).

Xu, Hsieh, Vundurthy, Kemp, Cohen, Li & Choset, "Mathematical Justification of Hard Negative
Mining via Isometric Approximation Theorem", ICLR 2024, arXiv:2210.11173.

The paper shows that the triplet loss with hard-negative mining is equivalent to minimising a
Hausdorff-like distance between the network and an ideal isometric counterpart, and that network
collapse (every input mapped to one point) happens when the batch is too large or the embedding
dimension too small. Toy version: 100 overlapping Gaussian classes in 16 dimensions (centres
``N(0, I)``, within-class noise ``N(0, 0.7^2 I)``, 20 points each: 2000 points), an MLP 16-128-n with
L2-normalised output, the batch-hard triplet loss of Hermans, Beyer & Leibe (2017; per anchor the
farthest positive and the closest negative in the batch, Euclidean distance, margin 0.2) on P x K
batches (K = 4 per class, P = B / K classes), Adam 1e-3, 400 steps; the grid is n in {2, 8, 32}
times B in {8, 32, 128, 400}. The encoder starts from ``N(0, 1 / fan_in)`` weights and zero biases
(``models.MLP(init="normal")``): with PyTorch's default uniform init (random biases) the runs
neither collapse at (n = 2, B = 400) (spread 0.34) nor stay spread with random negatives (0.40),
measured on seed 0. Collapse is read off the *spread*, the mean pairwise distance of all
2000 embeddings (0 when collapsed; 4/pi on the circle; about sqrt 2 on a high-dimensional sphere).

Mechanism (our reading, not the paper's theorem): at the collapsed point every triplet term equals
the margin, so the loss is exactly the margin; where the batch-hard gap ``g = mean(d_ap - d_an)`` is
positive (the hardest negative closer than the hardest positive), the loss exceeds the margin and
collapse is downhill. ``g`` at initialisation grows with B (more negatives to pick the closest from)
and shrinks with n (more room), and predicts the final spread (``Run.gap_init``).

The loss is :func:`lossviz.losses.triplet_loss`, the sampler :class:`lossviz.data.PKBatches`
(class-balanced P x K batches; ``PKBatches`` here is the same class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import data, losses, models, train
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_labels, check_tensor

__all__ = [
    "DIMS",
    "BATCHES",
    "FULL_DIMS",
    "FULL_BATCHES",
    "make_data",
    "batch_hard_gap",
    "PKBatches",
    "make_encoder",
    "embed",
    "spread",
    "Run",
    "train_run",
    "RunGrid",
    "run_grid",
    "claim_statistics",
]

DIMS = (2, 8, 32)
BATCHES = (8, 32, 128, 400)
FULL_DIMS = (2, 4, 8, 16, 32)
FULL_BATCHES = (8, 16, 32, 64, 128, 256, 400)
K_PER_CLASS = 4
MINING = ("hard", "semi-hard", "random")
STEPS = 400


def make_data(
    seed: int = 0,
    *,
    num_classes: int = 100,
    per_class: int = 20,
    dim: int = 16,
    noise: float = 0.7,
    device=None,
) -> data.Dataset:
    """The overlapping mixture: centres ``N(0, I_dim)``, points ``centre + noise * N(0, I)`` (float32)."""
    return data.gaussian_mixture(
        per_class,
        num_classes,
        dim,
        separation=1.0,
        noise=noise,
        seed=seed,
        dtype=torch.float32,
        device=device,
    )


def batch_hard_gap(z: torch.Tensor, labels: torch.Tensor) -> float:
    """``g = mean_a (d(a, p*) - d(a, n*))`` with batch-hard mining (Euclidean): > 0 means collapse lowers the loss.

    ``p*`` is the farthest positive, ``n*`` the closest negative of anchor ``a`` (as in
    :func:`lossviz.losses.triplet_loss` with ``mining="hard"``). The triplet loss is at least
    ``max(g + margin, 0)`` (the hinge is convex), while at the collapsed point it equals ``margin``.
    """
    z = check_tensor(z, "z", ndim=2, floating=True)
    y = check_labels(labels, "labels", n=z.shape[0]).to(z.device)
    with torch.no_grad():
        d = torch.cdist(z.double(), z.double())
        same = y[:, None] == y[None, :]
        pos = same & ~torch.eye(len(y), dtype=torch.bool, device=z.device)
        if not bool(pos.any(1).all()) or bool(same.all(1).any()):
            raise ValueError("`labels`: every anchor needs a positive and a negative in the batch")
        dap = d.masked_fill(~pos, -math.inf).amax(1)
        dan = d.masked_fill(same, math.inf).amin(1)
    return float((dap - dan).mean())


PKBatches = data.PKBatches  # moved to lossviz.data (the same class; k defaults to K_PER_CLASS = 4)


def make_encoder(
    n: int, *, in_features: int = 16, hidden: int = 128, seed: int = 0, device=None, dtype=torch.float32
) -> nn.Module:
    """The encoder MLP ``in -> hidden -> n`` (ReLU; ``N(0, 1/fan_in)`` weights, zero biases).

    Its output is L2-normalised in training and by :func:`embed`.
    """
    n = check_int(n, "n", minimum=1)
    return models.MLP(in_features, (hidden,), n, init="normal", seed=seed, dtype=dtype, device=device)


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """L2-normalised embeddings ``model(x) / ||model(x)||`` without gradients (the model's mode restored)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return F.normalize(model(x), dim=1)
    finally:
        for m, t in flags:
            m.train(t)


def spread(z) -> float:
    """Mean pairwise Euclidean distance over all pairs ``i < j`` (0 for a collapsed embedding), in float64."""
    z = check_tensor(z, "z", ndim=2, floating=True)
    if z.shape[0] < 2:
        raise ValueError(f"`z` needs at least 2 rows, got shape {tuple(z.shape)}")
    return float(torch.pdist(z.detach().double()).mean())


@dataclass(frozen=True, repr=False)
class Run(Result):
    """One training run: final ``spread``, the ``loss`` per step, ``gap_init`` and the final ``embedding``."""

    n: int
    batch_size: int
    mining: str
    spread: float
    loss: np.ndarray
    gap_init: float
    embedding: np.ndarray
    labels: np.ndarray


def train_run(
    ds: data.Dataset,
    n: int,
    batch_size: int,
    *,
    mining: str = "hard",
    margin: float = 0.2,
    steps: int = STEPS,
    lr: float = 1e-3,
    k: int = K_PER_CLASS,
    probes: int = 20,
    seed: int = 0,
    device=None,
) -> Run:
    """Train a fresh :func:`make_encoder` with :func:`lossviz.losses.triplet_loss` on P x K batches.

    Adam (``lr``) for ``steps`` steps through :func:`lossviz.train.fit`; batches from
    :class:`PKBatches` seeded with ``seed + 1``, random negatives from a generator seeded with
    ``seed + 2``, the encoder with ``seed``. ``gap_init`` is :func:`batch_hard_gap` of the untrained
    encoder averaged over ``probes`` batches (drawn without disturbing the training stream).
    About 0.4-3 s CPU a run (B = 8 to 400).
    """
    mining = check_choice(mining, "mining", MINING)
    steps = check_int(steps, "steps", minimum=0)
    margin = check_float(margin, "margin", minimum=0.0)
    lr = check_float(lr, "lr", positive=True)
    probes = check_int(probes, "probes", minimum=1)
    x, y = ds.x, ds.y
    dev = device if device is not None else x.device
    model = make_encoder(n, in_features=x.shape[1], seed=seed, device=dev)
    x = x.to(device=next(model.parameters()).device, dtype=torch.float32)
    y = y.to(x.device)
    loader = PKBatches(x, y, batch_size, k=k, seed=seed + 1)
    neg_gen = torch.Generator(device=x.device).manual_seed(seed + 2)
    gap = _mean_gap(model, loader, probes)

    def objective(m, batch):
        xb, yb = batch
        z = F.normalize(m(xb), dim=1)
        return losses.triplet_loss(z, yb, margin=margin, mining=mining, generator=neg_gen)

    hist = train.fit(
        model,
        train.batch_loss(objective),
        loader,
        steps=steps,
        optimizer="adam",
        lr=lr,
        seed=seed,
        progress=False,
    )
    z = embed(model, x)
    return Run(n, batch_size, mining, spread(z), np.asarray(hist.loss), gap, z.cpu().numpy(), y.cpu().numpy())


def _mean_gap(model, loader: PKBatches, batches: int) -> float:
    gen_state = loader.gen.get_state()
    try:
        gs = []
        for _ in range(batches):
            idx = loader.indices()
            gs.append(batch_hard_gap(embed(model, loader.inputs[idx]), loader.targets[idx]))
    finally:
        loader.gen.set_state(gen_state)  # the training stream does not depend on the probe
    return float(np.mean(gs))


@dataclass(frozen=True, repr=False)
class RunGrid(Result):
    """Runs over ``dims x batches``: ``spread`` and ``gap_init`` arrays (len(dims), len(batches)), ``runs``
    keyed by ``(n, B)``, random-negative ``controls`` keyed the same way."""

    dims: tuple
    batches: tuple
    spread: np.ndarray
    gap_init: np.ndarray
    runs: dict
    controls: dict

    def __getitem__(self, key) -> Run:
        return self.runs[key]


def run_grid(
    seed: int = 0,
    *,
    dims=DIMS,
    batches=BATCHES,
    controls=((2, 400),),
    steps: int = STEPS,
    device=None,
    ds: data.Dataset | None = None,
) -> RunGrid:
    """Hard-mined runs on ``dims x batches`` and random-negative runs at ``controls`` (:func:`train_run`)."""
    seed = check_int(seed, "seed", minimum=0)
    dims = tuple(check_int(n, "dims[i]", minimum=1) for n in dims)
    batches = tuple(check_int(b, "batches[i]", minimum=2 * K_PER_CLASS) for b in batches)
    if not dims or not batches:
        raise ValueError("`dims` and `batches` must not be empty")
    ds = make_data(seed, device=device) if ds is None else ds
    runs = {(n, b): train_run(ds, n, b, steps=steps, seed=seed, device=device) for n in dims for b in batches}
    ctl = {
        (n, b): train_run(ds, n, b, mining="random", steps=steps, seed=seed, device=device)
        for n, b in controls
    }
    sp = np.array([[runs[n, b].spread for b in batches] for n in dims])
    gp = np.array([[runs[n, b].gap_init for b in batches] for n in dims])
    return RunGrid(dims, batches, sp, gp, runs, ctl)


def _spearman(a, b) -> float:
    ra = np.argsort(np.argsort(np.ravel(a))).astype(float)
    rb = np.argsort(np.argsort(np.ravel(b))).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def claim_statistics(
    seed: int, quick: bool = True, *, device=None, grid: RunGrid | None = None, steps: int = STEPS
) -> dict:
    """Every number the notebook's claim check asserts, for one seed.

    ``quick=True``: the 3 x 4 grid n in ``DIMS`` x B in ``BATCHES`` plus the random-negative
    control at (2, 400), 13 runs (about 11 s CPU at one thread); ``quick=False``: the 5 x 7 grid
    ``FULL_DIMS x FULL_BATCHES`` (36 runs). ``grid`` reuses a :func:`run_grid` of this seed that
    contains those cells (the notebook's cached grid). The statistics are read on ``DIMS x
    BATCHES`` either way. Keys: ``spread`` (3 x 4), ``collapsed_max`` (max spread at (2, 128),
    (2, 400), (8, 400)), ``noncollapsed_min`` (min at n = 32, B <= 128 and at (8, 8)),
    ``decreasing_in_B`` (strictly, n = 2 and n = 8), ``increasing_in_n_at_400``,
    ``control_spread``, ``control_ratio`` (random-negative / hard-mined spread at (2, 400)),
    ``gap_init`` (3 x 4, at initialisation), ``gap_increasing_in_B``, ``gap_decreasing_in_n``,
    ``spearman_gap_spread``, and ``spread_32_400`` (shown, not asserted), ``grid``.
    """
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(quick, bool):
        raise TypeError(f"`quick` must be a bool, got {type(quick).__name__}")
    if grid is None:
        dims, batches = (DIMS, BATCHES) if quick else (FULL_DIMS, FULL_BATCHES)
        grid = run_grid(seed, dims=dims, batches=batches, steps=steps, device=device)
    if not isinstance(grid, RunGrid):
        raise TypeError(f"`grid` must be a RunGrid from run_grid, got {type(grid).__name__}")
    missing = [(n, b) for n in DIMS for b in BATCHES if (n, b) not in grid.runs]
    if missing or (2, 400) not in grid.controls:
        raise ValueError(
            f"`grid` must hold n in {DIMS} x B in {BATCHES} and the control (2, 400); missing {missing}"
        )
    sp = np.array([[grid.runs[n, b].spread for b in BATCHES] for n in DIMS])
    gp = np.array([[grid.runs[n, b].gap_init for b in BATCHES] for n in DIMS])
    s = {(n, b): grid.runs[n, b].spread for n in DIMS for b in BATCHES}
    control = grid.controls[2, 400].spread
    return {
        "spread": sp,
        "collapsed_max": max(s[2, 128], s[2, 400], s[8, 400]),
        "noncollapsed_min": min(s[32, 8], s[32, 32], s[32, 128], s[8, 8]),
        "decreasing_in_B": bool(np.all(np.diff(sp[0]) < 0) and np.all(np.diff(sp[1]) < 0)),
        "increasing_in_n_at_400": bool(np.all(np.diff(sp[:, -1]) > 0)),
        "control_spread": control,
        "control_ratio": control / max(s[2, 400], 1e-12),
        "gap_init": gp,
        "gap_increasing_in_B": bool(np.all(np.diff(gp, axis=1) > 0)),
        "gap_decreasing_in_n": bool(np.all(np.diff(gp, axis=0) < 0)),
        "spearman_gap_spread": _spearman(gp, sp),
        "spread_32_400": s[32, 400],
        "grid": grid,
    }
