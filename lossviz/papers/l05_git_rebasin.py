r"""L05: weight matching removes the loss barrier between two independently trained MLPs.

The set-up of ``notebooks/landscape/L05_git_rebasin.ipynb``.

Papers: Samuel K. Ainsworth, Jonathan Hayase, Siddhartha Srinivasa, "Git Re-Basin: Merging Models
modulo Permutation Symmetries", ICLR 2023, arXiv:2209.04836; Akira Ito, Masanori Yamada, Atsutoshi
Kumagai, "Analysis of Linear Mode Connectivity via Permutation-Based Weight Matching", ICLR 2025,
arXiv:2402.04051.

Two MLPs 64-w-w-10 (ReLU) are trained on standardised sklearn digits from different
initialisations and data orders (:func:`train_mlp`, through :func:`lossviz.train.fit`). For one
pair, :func:`compare_pair` measures the loss barrier

.. math:: B = \max_\alpha \big[L((1-\alpha)\theta_A + \alpha\theta_B) - (1-\alpha)L(\theta_A)
          - \alpha L(\theta_B)\big]

on three straight paths (:func:`lossviz.landscape.interpolate`, float64): A to B (*naive*), A to
B permuted by weight matching (*matched*, :func:`lossviz.landscape.weight_matching`) and A to B
under a *random* permutation of its hidden units (the negative control: it computes the same
function as B, so it tests that it is the *right* permutation that removes the barrier, not any
permutation). :func:`barrier_statistics` collects what the notebook's claim check asserts and
:func:`barrier_claim` is the claim's own test, applied to the matched and to the random ratios.

>>> import torch
>>> from lossviz import data
>>> ds = data.digits()
>>> A, B = (train_mlp(ds.x[:200], ds.y[:200], 16, seed=s, epochs=1) for s in (1, 2))
>>> pair = compare_pair(A, B, ds.x[:200].double(), ds.y[:200], steps=5)
>>> sorted(pair.barriers)
['matched', 'naive', 'random']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import landscape, models, train
from .._result import Result
from .._validate import check_int, check_tensor

__all__ = [
    "PATHS",
    "PairComparison",
    "train_mlp",
    "compare_pair",
    "rebasin_experiment",
    "barrier_statistics",
    "barrier_claim",
]

PATHS = ("naive", "matched", "random")


def train_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    width: int,
    *,
    seed: int,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> nn.Module:
    """Train an MLP ``d-width-width-K`` (ReLU) with Adam and return it in float64.

    The initialisation and the data order both come from ``seed`` (two seeds: two independent
    runs). The model is created on the device of ``x``; training runs in float32 through
    :func:`lossviz.train.fit`; the returned model is cast to float64 for the barrier measurement.
    """
    x = check_tensor(x, "x", ndim=2, floating=True)
    y = check_tensor(y, "y", ndim=1)
    width = check_int(width, "width", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`y` has {y.shape[0]} labels but `x` has {x.shape[0]} rows")
    classes = int(y.max()) + 1
    net = models.MLP(x.shape[1], (width, width), classes, seed=seed, dtype=torch.float32, device=x.device)
    train.fit(
        net,
        nn.functional.cross_entropy,
        (x.float(), y),
        epochs=check_int(epochs, "epochs", minimum=1),
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        seed=seed,
        progress=False,
    )
    return net.double()


@dataclass(frozen=True, repr=False)
class PairComparison(Result):
    """The three interpolation paths of one pair (A, B) and the weight-space statistics.

    Attributes
    ----------
    width : int
    model_a, model_b : the two trained models (not copies)
    paths : dict ``"naive" | "matched" | "random"`` -> :class:`lossviz.landscape.Interpolation`
    barriers : dict of the same keys -> float (loss barrier of each path)
    match : :class:`lossviz.landscape.WeightMatching` (B permuted to A)
    random_model : B under a random permutation of every hidden layer (the control)
    distance_naive, distance_matched : L2 distances ``||theta_A - theta_B||``, ``||theta_A - theta_piB||``
    overlap_naive, overlap_matched : top-``k`` left-singular subspace overlap of the first layer
    """

    width: int
    model_a: nn.Module
    model_b: nn.Module
    paths: dict
    barriers: dict
    match: landscape.WeightMatching
    random_model: nn.Module
    distance_naive: float
    distance_matched: float
    overlap_naive: float
    overlap_matched: float

    @property
    def ratio(self) -> float:
        """Matched / naive barrier."""
        return self.barriers["matched"] / self.barriers["naive"]

    @property
    def random_ratio(self) -> float:
        """Random-permutation / naive barrier (the control)."""
        return self.barriers["random"] / self.barriers["naive"]


def compare_pair(
    model_a: nn.Module,
    model_b: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 21,
    seed: int = 0,
    k: int = 5,
    restarts: int = 4,
) -> PairComparison:
    """Match ``model_b`` to ``model_a`` and measure the naive, matched and random-permutation paths.

    ``x``, ``y``: the data on which the cross-entropy barrier is measured (the notebook: all
    training samples, float64). Weight matching runs ``restarts`` times (layer orders seeded
    ``seed, seed + 1, ...``) and keeps the permutation with the largest alignment objective;
    ``seed`` also seeds the random permutation of the control. ``k``: dimension of the singular
    subspaces compared. Neither model is changed.
    """
    x = check_tensor(x, "x", ndim=2, floating=True)
    steps = check_int(steps, "steps", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    restarts = check_int(restarts, "restarts", minimum=1)
    # coordinate descent finds a local optimum that depends on the random layer order: keep the
    # best of `restarts` runs (the largest alignment objective; the first on ties)
    runs = [landscape.weight_matching(model_a, model_b, seed=seed + r) for r in range(restarts)]
    match = max(runs, key=lambda m: m.objective[-1])
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(p)) for p in match.permutations]
    random_model = landscape.permute_mlp(model_b, perms, "model_b")
    metrics = {"accuracy": landscape.accuracy_metric}
    paths = {
        name: landscape.interpolate(
            model_a, other, nn.functional.cross_entropy, (x, y), steps=steps, metrics=metrics
        )
        for name, other in zip(PATHS, (model_b, match.model, random_model))
    }
    width = len(match.permutations[0])
    return PairComparison(
        width=width,
        model_a=model_a,
        model_b=model_b,
        paths=paths,
        barriers={name: float(p.barrier) for name, p in paths.items()},
        match=match,
        random_model=random_model,
        distance_naive=landscape.parameter_distance(model_a, model_b),
        distance_matched=landscape.parameter_distance(model_a, match.model),
        overlap_naive=landscape.subspace_overlap(model_a, model_b, layer=0, k=k),
        overlap_matched=landscape.subspace_overlap(model_a, match.model, layer=0, k=k),
    )


def rebasin_experiment(
    x: torch.Tensor,
    y: torch.Tensor,
    widths: Sequence[int] = (32, 128, 512),
    *,
    seed: int = 0,
    epochs: int = 10,
    steps: int = 21,
    restarts: int = 4,
    progress: bool = False,
) -> dict[int, PairComparison]:
    """For every width, train A (seed ``1000 seed + 1``) and B (``1000 seed + 2``) and compare them.

    The barrier is measured in float64 on ``(x, y)``. Returns ``{width: PairComparison}``.
    """
    seed = check_int(seed, "seed", minimum=0)
    from tqdm.auto import tqdm

    x64 = x.double()
    out = {}
    for width in tqdm(list(widths), desc="widths", disable=not progress):
        width = check_int(width, "widths[i]", minimum=1)
        A = train_mlp(x, y, width, seed=1000 * seed + 1, epochs=epochs)
        B = train_mlp(x, y, width, seed=1000 * seed + 2, epochs=epochs)
        out[width] = compare_pair(A, B, x64, y, steps=steps, seed=1000 * seed + width, restarts=restarts)
    return out


def barrier_statistics(results: Mapping[int, PairComparison]) -> dict:
    """What the claim check measures, per width in increasing order.

    ``widths``; ``ratio`` (matched / naive barrier); ``random_ratio`` (random permutation / naive,
    the control); ``random_over_matched``; ``l2_reduction`` (``1 - d_matched / d_naive``);
    ``barrier_reduction`` (``1 - ratio``); ``overlap_naive``, ``overlap_matched``; ``naive``,
    ``matched``, ``random`` (the barriers).
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError("`results` must be a non-empty mapping width -> PairComparison")
    ws = sorted(results)
    r = [results[w] for w in ws]
    ratio = np.array([p.ratio for p in r])
    return {
        "widths": ws,
        "naive": np.array([p.barriers["naive"] for p in r]),
        "matched": np.array([p.barriers["matched"] for p in r]),
        "random": np.array([p.barriers["random"] for p in r]),
        "ratio": ratio,
        "random_ratio": np.array([p.random_ratio for p in r]),
        "random_over_matched": np.array([p.barriers["random"] / p.barriers["matched"] for p in r]),
        "barrier_reduction": 1 - ratio,
        "l2_reduction": np.array([1 - p.distance_matched / p.distance_naive for p in r]),
        "overlap_naive": np.array([p.overlap_naive for p in r]),
        "overlap_matched": np.array([p.overlap_matched for p in r]),
    }


def barrier_claim(ratios: Sequence[float], *, widest: float = 0.1) -> bool:
    """The claim's test on barrier ratios ordered by width: the ratio falls strictly with width
    and is below ``widest`` at the largest width ("the barrier nearly vanishes, more so for wider
    nets")."""
    r = np.asarray(ratios, dtype=float)
    if r.ndim != 1 or r.size < 2:
        raise ValueError(f"`ratios` must hold one ratio per width (at least two), got {r!r}")
    return bool(r[-1] < widest and np.all(np.diff(r) < 0))
