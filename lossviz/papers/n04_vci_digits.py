r"""N04: the Variability Collapse Index during training on digits, and a transfer probe.

Reference: Jing Xu & Haoxiong Liu, "Quantifying the Variability Collapse of Neural Networks",
ICML 2023 (PMLR 202), arXiv:2306.03440.

:func:`train_digits` trains an MLP on digits 0-4 (sklearn's bundled 8x8 images) with Adam through
:func:`lossviz.train.fit` and keeps the penultimate features (the input of the classifier) at
chosen epochs; :func:`transfer_accuracy` scores a logistic-regression probe of those features on
digits 5-9 (5-fold cross-validated, standardised features). ``shuffle_labels=True`` trains on a
fixed random permutation of the labels (the negative control: the network memorises, but its
features do not collapse onto the true classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_float, check_int
from ..collapse import feature_extractor, nc_metrics, vci
from ..data import Dataset, digits
from ..models import MLP
from ..train import Callback, fit

__all__ = ["DigitsRun", "train_digits", "transfer_accuracy", "checkpoint_epochs"]


def checkpoint_epochs(max_epoch: int) -> list[int]:
    """``[0, 1, 2, 4, ..., max_epoch]`` (doubling; ``max_epoch`` a power of two)."""
    max_epoch = check_int(max_epoch, "max_epoch", minimum=1)
    return [0] + [2**i for i in range(int(np.log2(max_epoch)) + 1)]


def transfer_accuracy(
    model: torch.nn.Module, target: Dataset, *, seed: int = 0, layer: str = "head"
) -> float:
    """5-fold cross-validated accuracy of a logistic probe on ``target`` (standardised features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    f = feature_extractor(model, layer)(target.x).double().cpu().numpy()
    sd = f.std(0)
    sd[sd == 0] = 1.0
    z = (f - f.mean(0)) / sd
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(
        cross_val_score(LogisticRegression(max_iter=1000), z, target.y.cpu().numpy(), cv=folds).mean()
    )


@dataclass(frozen=True, repr=False)
class DigitsRun(Result):
    """Features (float64, one ``(N, d)`` tensor per checkpoint) of the training inputs, their VCI
    and NC1 against the *true* labels, transfer accuracies (``None`` when not probed) and the
    final training accuracy on the labels trained on."""

    epochs: tuple[int, ...]
    features: tuple[torch.Tensor, ...]
    vci: np.ndarray
    nc1: np.ndarray
    transfer: np.ndarray | None
    train_acc: float
    smoothing: float
    shuffle_labels: bool
    seed: int


class _Snapshots(Callback):
    def __init__(self, x, steps_per_epoch, epochs, target, seed):
        super().__init__(every=None, at=[e * steps_per_epoch for e in epochs], final=False)
        self.x, self.spe, self.target, self.seed = x, steps_per_epoch, target, seed
        self.saved = {}

    def on_step(self, step, model, loss, history):
        tr = None if self.target is None else transfer_accuracy(model, self.target, seed=self.seed)
        self.saved[step // self.spe] = (feature_extractor(model, "head")(self.x).double(), tr)


def train_digits(
    smoothing: float = 0.0,
    seed: int = 0,
    *,
    max_epoch: int = 64,
    hidden: Sequence[int] = (256, 64),
    lr: float = 1e-3,
    batch_size: int = 32,
    shuffle_labels: bool = False,
    probe: bool = True,
    source: Dataset | None = None,
    target: Dataset | None = None,
    device=None,
    desc: str | None = None,
    progress: bool = True,
) -> DigitsRun:
    """Train the N04 MLP 64-256-64-5 on digits 0-4 and record features at :func:`checkpoint_epochs`.

    Cross-entropy with ``label_smoothing=smoothing``, Adam, mini-batches of ``batch_size``.
    ``shuffle_labels`` trains on a seeded random permutation of the labels; VCI and NC1 are always
    measured against the true labels. ``probe`` scores :func:`transfer_accuracy` on digits 5-9 at
    every checkpoint.
    """
    smoothing = check_float(smoothing, "smoothing", minimum=0.0, maximum=1.0)
    seed = check_int(seed, "seed", minimum=0)
    epochs = checkpoint_epochs(max_epoch)
    src = digits(classes=[0, 1, 2, 3, 4], device=device) if source is None else source
    tgt = (digits(classes=[5, 6, 7, 8, 9], device=device) if target is None else target) if probe else None
    y_train = src.y
    if shuffle_labels:
        perm = torch.randperm(
            len(src.y),
            generator=torch.Generator().manual_seed(seed + 10_000),
            device=torch.Generator().manual_seed(seed + 10_000).device,
        )
        y_train = src.y[perm.to(src.y.device)]
    net = MLP(src.x.shape[1], tuple(hidden), 5, seed=seed).to(device=src.x.device)
    spe = int(np.ceil(len(src.y) / batch_size))
    snaps = _Snapshots(src.x, spe, epochs, tgt, seed)

    def loss_fn(out, y):
        return torch.nn.functional.cross_entropy(out, y, label_smoothing=smoothing)

    fit(
        net,
        loss_fn,
        (src.x, y_train),
        epochs=epochs[-1],
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        callbacks=[snaps],
        seed=seed,
        desc=desc,
        progress=progress,
    )
    feats = tuple(snaps.saved[e][0] for e in epochs)
    with torch.no_grad():
        train_acc = float((net.eval()(src.x).argmax(1) == y_train).double().mean())
    return DigitsRun(
        epochs=tuple(epochs),
        features=feats,
        vci=np.array([vci(f, src.y).value for f in feats]),
        nc1=np.array([nc_metrics(f, src.y).nc1 for f in feats]),
        transfer=np.array([snaps.saved[e][1] for e in epochs]) if probe else None,
        train_acc=train_acc,
        smoothing=smoothing,
        shuffle_labels=bool(shuffle_labels),
        seed=seed,
    )
