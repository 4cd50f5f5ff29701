"""mixup: convex combinations of input pairs and of their one-hot labels.

Paper: Hongyi Zhang, Moustapha Cisse, Yann N. Dauphin, David Lopez-Paz, "mixup: Beyond Empirical
Risk Minimization", ICLR 2018, arXiv:1710.09412.

For a batch ``(x, y)``, a permutation ``pi`` and ``lambda ~ Beta(alpha, alpha)``,

.. math::

    \\tilde x_i = \\lambda_i x_i + (1 - \\lambda_i) x_{\\pi(i)}, \\qquad
    \\tilde y_i = \\lambda_i e_{y_i} + (1 - \\lambda_i) e_{y_{\\pi(i)}}.

Conventions (named arguments): ``per_sample=True`` draws one ``lambda`` per sample (as in
"Pushing Boundaries: Mixup's Influence on Neural Collapse", Fisher, Meng, Papyan, ICLR 2024,
arXiv:2402.06171); ``per_sample=False`` draws one per batch (the original paper's code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._result import Result
from .._validate import check_float, check_int, check_labels, check_tensor
from ._common import check_ignore_index, check_pair, check_reduction, cross_entropy

__all__ = ["Mixup", "mixup", "soft_cross_entropy"]


@dataclass(frozen=True, repr=False)
class Mixup(Result):
    """A mixed batch.

    Attributes
    ----------
    x : mixed inputs, same shape/dtype/device as the input
    targets : (n, K) soft targets ``lam * e_{y_a} + (1 - lam) * e_{y_b}`` in the dtype of ``x``
    lam : (n,) mixing weights (the weight of ``y_a``), dtype of ``x``
    index : (n,) the permutation ``pi`` (partner of each sample)
    y_a, y_b : (n,) integer labels of the two mixed samples (``y`` and ``y[index]``)
    alpha, per_sample, seed : settings
    """

    x: torch.Tensor
    targets: torch.Tensor
    lam: torch.Tensor
    index: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    alpha: float
    per_sample: bool
    seed: int | None

    @property
    def cross_class(self) -> torch.Tensor:
        """(n,) bool: the two mixed samples have different labels."""
        return self.y_a != self.y_b


def mixup(
    x: Any,
    y: Any,
    num_classes: int,
    *,
    alpha: float = 1.0,
    per_sample: bool = True,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Mixup:
    """Mix a batch with its random permutation (mixup).

    Parameters
    ----------
    x : (n, ...) floating inputs
    y : (n,) integer labels in ``[0, num_classes)``
    num_classes : K, the length of the soft targets
    alpha : Beta(alpha, alpha) parameter, > 0 (alpha = 1 is uniform lambda)
    per_sample : one lambda per sample (True) or one for the whole batch (False)
    seed, generator : randomness (give one of them; ``seed`` builds a fresh CPU generator).
        Same seed -> same mix. With neither, the global torch RNG is used.

    Returns
    -------
    Mixup (x, targets, lam, index, y_a, y_b, ...). Train with
    ``soft_cross_entropy(model(m.x), m.targets)`` or an MSE on ``m.targets``.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import mixup
    >>> m = mixup(torch.randn(8, 3), torch.arange(8) % 2, 2, seed=0)
    >>> m.x.shape, m.targets.shape, bool(torch.allclose(m.targets.sum(1), torch.ones(8)))
    (torch.Size([8, 3]), torch.Size([8, 2]), True)
    """
    x = check_tensor(x, "x", floating=True)
    if x.ndim < 1:
        raise ValueError("`x` must have a batch dimension")
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    y = check_labels(y, "y", n=x.shape[0], num_classes=num_classes)
    alpha = check_float(alpha, "alpha", positive=True)
    if not isinstance(per_sample, bool):
        raise TypeError(f"`per_sample` must be a bool, got {per_sample!r}")
    if seed is not None and generator is not None:
        raise ValueError("give `seed` or `generator`, not both")
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
        generator = torch.Generator().manual_seed(seed)
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    n = x.shape[0]
    # numpy's Beta sampler, seeded from the explicit seed/generator (torch's Beta takes no generator)
    if generator is None:
        generator = torch.default_generator
    np_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    rng = np.random.default_rng(np_seed)
    lam64 = torch.from_numpy(rng.beta(alpha, alpha, size=n if per_sample else 1))
    lam64 = lam64 if per_sample else lam64.expand(n)
    index = torch.from_numpy(rng.permutation(n))
    lam = lam64.to(dtype=x.dtype, device=x.device)
    index = index.to(x.device)
    shape = (n,) + (1,) * (x.ndim - 1)
    xm = lam.view(shape) * x + (1 - lam.view(shape)) * x[index]
    eye = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
    targets = lam[:, None] * eye + (1 - lam[:, None]) * eye[index]
    return Mixup(
        x=xm,
        targets=targets,
        lam=lam,
        index=index,
        y_a=y,
        y_b=y[index],
        alpha=alpha,
        per_sample=per_sample,
        seed=seed,
    )


def soft_cross_entropy(
    logits: Any, targets: Any, *, reduction: str = "mean", ignore_index: int = -100
) -> torch.Tensor:
    """Cross-entropy ``-sum_k t_k log softmax(z)_k`` with integer or soft targets (e.g. from mixup).

    ``F.cross_entropy`` with its conventions: logits ``(n, K)`` or ``(n, K, d1, ...)``, integer
    labels of any integer dtype (``ignore_index`` entries left out of the mean, default -100) or
    soft targets of the logits' shape; NaN logits propagate. Half-precision logits are evaluated
    in float32 and the result cast back.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import soft_cross_entropy
    >>> float(soft_cross_entropy(torch.zeros(1, 4), torch.full((1, 4), 0.25)))  # log 4
    1.3862943649291992
    """
    logits, targets, _ = check_pair(logits, targets)
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    return cross_entropy(logits, targets, 1.0, reduction=reduction, ignore_index=ignore_index)
