"""Validation helpers shared by the neural-collapse modules (features, labels, classifiers).

Every check raises a ``ValueError``/``TypeError`` that names the argument, in the style of
:mod:`lossviz._validate`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._validate import check_int, check_tensor

F64 = torch.float64
GLOBAL_MEANS = ("unweighted", "weighted")


def check_features(features: Any, name: str = "features") -> torch.Tensor:
    features = check_tensor(features, name, ndim=2, floating=True, finite=True)
    return features


def check_labels(
    labels: Any, n: int, num_classes: int | None, name: str = "labels"
) -> tuple[torch.Tensor, int]:
    labels = check_tensor(labels, name, ndim=1, floating=False, nonempty=False)
    if labels.dtype == torch.bool:
        raise TypeError(f"`{name}` must be integer class labels, got dtype torch.bool")
    labels = labels.long()  # any integer dtype (uint8 is never read as a mask)
    if labels.shape[0] != n:
        raise ValueError(
            f"`features` and `{name}` have different lengths: {n} feature rows but {labels.shape[0]} labels"
        )
    if n and int(labels.min()) < 0:
        raise ValueError(f"`{name}` must be non-negative class indices, found {int(labels.min())}")
    top = int(labels.max()) + 1 if n else 0
    if num_classes is None:
        num_classes = top
    else:
        num_classes = check_int(num_classes, "num_classes", minimum=1)
        if top > num_classes:
            raise ValueError(f"`{name}` contains class {top - 1} but num_classes={num_classes}")
    if num_classes < 2:
        raise ValueError(
            f"`{name}` must hold at least two classes for neural-collapse statistics, got {num_classes}"
        )
    return labels, num_classes


def check_counts(counts: torch.Tensor, name: str = "labels") -> None:
    empty = [int(k) for k in torch.nonzero(counts == 0).flatten()]
    if empty:
        raise ValueError(
            f"class(es) {empty} have no samples in `{name}`; class means are undefined "
            "(pass data with every class present, or relabel the classes to 0..K-1)"
        )


def chunks(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def as_classifier(classifier: Any, k: int, d: int, name: str = "classifier"):
    """Return ``(W, b)`` in float64 (``b`` may be ``None``) from a Linear, a tensor or a pair."""
    if classifier is None:
        return None, None
    if isinstance(classifier, nn.Linear):
        w, b = classifier.weight, classifier.bias
    elif isinstance(classifier, (tuple, list)) and len(classifier) == 2:
        w, b = classifier
    else:
        w, b = classifier, None
    w = check_tensor(w, f"{name} weight", ndim=2, floating=True)
    if tuple(w.shape) != (k, d):
        raise ValueError(
            f"`{name}` weight must have shape (num_classes, feature_dim) = ({k}, {d}), got {tuple(w.shape)}"
        )
    if b is not None:
        b = check_tensor(b, f"{name} bias", ndim=1, floating=True)
        if b.shape[0] != k:
            raise ValueError(f"`{name}` bias must have {k} entries (one per class), got {b.shape[0]}")
        b = b.detach().to(F64)
    return w.detach().to(F64), b
