"""The set-up of T03 (and T04): sklearn digits with symmetric label noise, an MLP trained on it.

Papers:

* Dixian Zhu, Yiming Ying, Tianbao Yang, "Label Distributionally Robust Losses for Multi-class
  Classification: Consistency, Robustness and Adaptivity", ICML 2023, arXiv:2112.14869 (T03).
* Anqi Mao, Mehryar Mohri, Yutao Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis and
  Applications", ICML 2023, arXiv:2304.07288 (T04 imports this module).

:func:`noisy_digits` draws the split and the noise; :func:`train_classifier` trains
``MLP(64, hidden, 10)`` on the noisy labels with any ``loss_fn(logits, targets)`` through
:func:`lossviz.train.fit` and records the clean test accuracy with a :class:`lossviz.train.Recorder`.
Same seed, same run. :func:`compare_losses` runs several losses over several seeds (T03, T04).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import train
from .._result import Result
from .._validate import check_choice, check_float, check_int
from ..data import digits
from ..models import MLP

__all__ = [
    "NoisyDigits",
    "noisy_digits",
    "ClassifierRun",
    "train_classifier",
    "LossComparison",
    "compare_losses",
]


@dataclass(frozen=True, repr=False)
class NoisyDigits(Result):
    """Digits split into train (with noisy labels) and clean test.

    ``x_train, y_train`` (noisy labels), ``y_train_clean``, ``x_test, y_test``, ``noise`` rate,
    ``flipped`` (bool mask of corrupted training labels), ``seed``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    noise: float
    flipped: torch.Tensor
    seed: int


def noisy_digits(
    noise: float = 0.4, *, train_fraction: float = 2 / 3, seed: int = 0, device=None
) -> NoisyDigits:
    """sklearn digits (standardised), a random ``train_fraction`` split and symmetric label noise.

    The split and the noise are drawn on the CPU from ``seed``; the tensors are then moved to
    ``device``.

    Symmetric noise: each training label is, with probability ``noise``, replaced by one of the
    *other* 9 classes uniformly at random (so exactly the flipped ones are wrong).
    """
    noise = check_float(noise, "noise", minimum=0.0, maximum=1.0)
    train_fraction = check_float(train_fraction, "train_fraction", minimum=0.0, maximum=1.0)
    seed = check_int(seed, "seed", minimum=0)
    x, y = digits(dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g, device=g.device)
    n_train = int(round(train_fraction * len(y)))
    tr, te = perm[:n_train], perm[n_train:]
    y_clean = y[tr].clone()
    flip = torch.rand(n_train, generator=g, device=g.device) < noise
    shift = torch.randint(1, 10, (n_train,), generator=g, device=g.device)
    y_noisy = torch.where(flip, (y_clean + shift) % 10, y_clean)
    return NoisyDigits(
        x_train=x[tr].to(device),
        y_train=y_noisy.to(device),
        y_train_clean=y_clean.to(device),
        x_test=x[te].to(device),
        y_test=y[te].to(device),
        noise=noise,
        flipped=flip.to(device),
        seed=seed,
    )


@dataclass(frozen=True, repr=False)
class ClassifierRun(Result):
    """Test accuracy (clean labels) over epochs of a classifier trained on noisy labels.

    ``epochs`` (list of recorded epochs, 0 = init), ``test_accuracy``, ``train_accuracy_noisy``
    (agreement with the noisy labels: memorisation), ``final_test_accuracy``, ``best_test_accuracy``
    (early-stopping oracle), ``loss_name``.
    """

    epochs: np.ndarray
    test_accuracy: np.ndarray
    train_accuracy_noisy: np.ndarray
    final_test_accuracy: float
    best_test_accuracy: float
    loss_name: str
    seed: int


def train_classifier(
    data: NoisyDigits,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    hidden: Sequence[int] = (256, 256),
    epochs: int = 100,
    batch_size: int = 128,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    record_every: int = 5,
    seed: int = 0,
    loss_name: str | None = None,
) -> ClassifierRun:
    """Train ``MLP(64, hidden, 10)`` on ``data``'s noisy training labels; record clean test accuracy.

    ``optimizer``: ``"adam"`` or ``"sgd"`` (momentum 0.9); ``weight_decay`` is L2 in the optimiser.
    Recorded at epoch 0 and every ``record_every`` epochs and at the end. Trained by
    :func:`lossviz.train.fit` (mini-batches shuffled with ``seed + 1``), on the device of ``data``.
    """
    if not isinstance(data, NoisyDigits):
        raise TypeError(f"`data` must be NoisyDigits, got {type(data).__name__}")
    if not callable(loss_fn):
        raise TypeError("`loss_fn` must be callable(logits, targets)")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    optimizer = check_choice(optimizer, "optimizer", ("adam", "sgd"))
    record_every = check_int(record_every, "record_every", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    x, y = data.x_train, data.y_train
    model = MLP(64, tuple(hidden), 10, seed=seed, dtype=x.dtype, device=x.device)
    per_epoch = -(-len(y) // batch_size)
    rec = train.Recorder(
        every=record_every * per_epoch,
        metrics={"test": train.accuracy(data.x_test, data.y_test), "train": train.accuracy(x, y)},
    )
    hist = train.fit(
        model,
        loss_fn,
        (x, y),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        momentum=0.9 if optimizer == "sgd" else 0.0,
        weight_decay=weight_decay,
        callbacks=[rec],
        seed=seed + 1,
        progress=False,
    )
    test = np.array(hist.values("test"))
    return ClassifierRun(
        epochs=np.array(hist.steps("test")) // per_epoch,
        test_accuracy=test,
        train_accuracy_noisy=np.array(hist.values("train")),
        final_test_accuracy=float(test[-1]),
        best_test_accuracy=float(test.max()),
        loss_name=loss_name or getattr(loss_fn, "__name__", "loss"),
        seed=seed,
    )


@dataclass(frozen=True, repr=False)
class LossComparison(Result):
    """Runs of :func:`train_classifier` for several losses and seeds on one noise level.

    ``runs[(name, seed)]`` is a :class:`ClassifierRun`; ``names``, ``seeds``, ``noise``. The
    methods give seed means: :meth:`final`, :meth:`best` (early-stopping oracle),
    :meth:`memorised` (final agreement with the noisy training labels), :meth:`at_epoch`.
    """

    runs: dict
    names: tuple
    seeds: tuple
    noise: float

    def _mean(self, name: str, fn) -> float:
        if name not in self.names:
            raise KeyError(f"no runs for {name!r}; have {list(self.names)}")
        return float(np.mean([fn(self.runs[name, s]) for s in self.seeds]))

    def final(self, name: str) -> float:
        """Seed-mean clean test accuracy at the last epoch."""
        return self._mean(name, lambda r: r.final_test_accuracy)

    def best(self, name: str) -> float:
        """Seed-mean of the best clean test accuracy over the recorded epochs (an oracle)."""
        return self._mean(name, lambda r: r.best_test_accuracy)

    def memorised(self, name: str) -> float:
        """Seed-mean final agreement with the *noisy* training labels (1 = memorised)."""
        return self._mean(name, lambda r: float(r.train_accuracy_noisy[-1]))

    def at_epoch(self, name: str, epoch: int) -> float:
        """Seed-mean clean test accuracy at a recorded ``epoch``."""
        return self._mean(name, lambda r: float(r.test_accuracy[list(r.epochs).index(epoch)]))


def compare_losses(
    loss_fns: dict,
    seeds: Sequence[int],
    *,
    noise: float = 0.4,
    device=None,
    progress: bool = True,
    **train_kw,
) -> LossComparison:
    """Train one classifier per loss and seed on :func:`noisy_digits` (``noise``, ``seed``).

    ``loss_fns``: name -> ``loss_fn(logits, targets)``; ``train_kw`` go to
    :func:`train_classifier` (``hidden``, ``epochs``, ``record_every``, ...). The data of a seed
    is drawn once and shared by all losses, the model init too (same ``seed``).

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> c = compare_losses({"CE": F.cross_entropy}, [0], hidden=(8,), epochs=1, progress=False)
    >>> 0 <= c.final("CE") <= 1
    True
    """
    if not isinstance(loss_fns, dict) or not loss_fns:
        raise TypeError("`loss_fns` must be a non-empty dict name -> loss_fn(logits, targets)")
    seeds = tuple(check_int(s, "seeds[i]", minimum=0) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must not be empty")
    from tqdm.auto import tqdm

    runs = {}
    with tqdm(
        total=len(seeds) * len(loss_fns), desc=f"training runs (noise {noise:g})", disable=not progress
    ) as bar:
        for s in seeds:
            data = noisy_digits(noise, seed=s, device=device)
            for name, fn in loss_fns.items():
                runs[name, s] = train_classifier(data, fn, seed=s, loss_name=name, **train_kw)
                bar.update()
    return LossComparison(runs=runs, names=tuple(loss_fns), seeds=seeds, noise=float(noise))
