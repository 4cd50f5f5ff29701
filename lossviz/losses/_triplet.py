r"""The triplet loss with in-batch mining (batch-hard, semi-hard, random negatives).

Papers:

* Alexander Hermans, Lucas Beyer, Bastian Leibe, "In Defense of the Triplet Loss for Person
  Re-Identification", arXiv:1703.07737, 2017 (batch-hard mining on P x K batches).
* Florian Schroff, Dmitry Kalenichenko, James Philbin, "FaceNet: A Unified Embedding for Face
  Recognition and Clustering", CVPR 2015, arXiv:1503.03832 (semi-hard negatives).
* Albert Xu, Jhih-Yi Hsieh, Bhaskar Vundurthy, Nithya Kemp, Eliana Cohen, Lu Li, Howie Choset,
  "Mathematical Justification of Hard Negative Mining via Isometric Approximation Theorem",
  ICLR 2024, arXiv:2210.11173 (hard-negative mining and network collapse).

Conventions: per anchor ``a`` the positive ``p*`` is always its farthest positive in the batch
(``a`` itself excluded); ``mining`` picks the negative ``n*``; the term is
``max(d(a, p*) - d(a, n*) + margin, 0)``. The mining (an argmin/argmax) is not differentiated
through: the gradient flows through the two selected distances only, computed directly from the
selected rows (so a collapsed batch, all distances 0, has finite gradients: the subgradient 0 of
the norm at 0).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validate import check_choice, check_float, check_labels, check_tensor
from ._common import check_reduction, compute_dtype, reduce

__all__ = ["triplet_loss"]

TRIPLET_MINING = ("hard", "semi-hard", "random")
TRIPLET_DISTANCES = ("euclidean", "squared", "cosine")


def _distance_matrix(z: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "cosine":
        zn = F.normalize(z, dim=1)
        return 1.0 - zn @ zn.T
    d2 = torch.cdist(z, z).square() if z.shape[0] > 0 else z.new_zeros(0, 0)
    return d2 if distance == "squared" else d2.sqrt()


def _pair_distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "cosine":
        return 1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-12)
    d = torch.linalg.vector_norm(a - b, dim=1)  # gradient 0 (not NaN) at d = 0
    return d.square() if distance == "squared" else d


def triplet_loss(
    embeddings: Any,
    labels: Any,
    *,
    margin: float = 0.2,
    mining: str = "hard",
    distance: str = "euclidean",
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Triplet loss with in-batch mining: ``mean_a max(d(a, p*) - d(a, n*) + margin, 0)``.

    Parameters
    ----------
    embeddings : floating tensor ``(B, n)``
        One embedding per row, used as given (L2-normalise first for embeddings on the sphere).
    labels : integer tensor ``(B,)``
        Class labels; every anchor needs at least one positive (another row of its class) and
        one negative in the batch (P x K batches with K >= 2 have both).
    margin : float, default 0.2
        The margin ``alpha >= 0`` (FaceNet's 0.2, on L2-normalised embeddings).
    mining : ``"hard"`` (default) | ``"semi-hard"`` | ``"random"``
        The negative of anchor ``a``: ``"hard"`` the closest negative (batch-hard, Hermans et
        al. 2017); ``"semi-hard"`` the closest negative *farther* than ``p*``,
        ``d(a, n) > d(a, p*)``, and the farthest negative if there is none (the FaceNet rule,
        with the batch-hard positive; TensorFlow Addons' fallback); ``"random"`` one negative
        drawn uniformly (with ``generator``), the no-mining control. The positive is the
        farthest one in every mode.
    distance : ``"euclidean"`` (default) | ``"squared"`` | ``"cosine"``
        ``||u - v||``, ``||u - v||^2`` or ``1 - cos(u, v)``.
    reduction : ``"mean"`` (default) | ``"sum"`` | ``"none"``
        Over anchors (``"none"``: one term per row).
    generator : torch.Generator, optional
        For ``mining="random"``: the draws come from it (on its device), so the global RNG is
        left alone; ``None`` draws from torch's global generator.

    Returns
    -------
    Scalar tensor (or ``(B,)`` for ``reduction="none"``) in the dtype of ``embeddings``
    (half precision is evaluated in float32 and cast back).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import triplet_loss
    >>> z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [3.0, 0.0]])
    >>> round(float(triplet_loss(z, torch.tensor([0, 0, 1, 1]), margin=0.2)), 4)
    1.1912
    >>> round(float(triplet_loss(torch.zeros(4, 3), torch.tensor([0, 0, 1, 1]))), 4)  # collapsed: the margin
    0.2
    """
    z = check_tensor(embeddings, "embeddings", ndim=2, floating=True)
    if z.is_complex():
        raise TypeError(f"`embeddings` must be real, got {z.dtype}")
    b = z.shape[0]
    y = check_labels(labels, "labels", n=b).to(z.device)
    margin = check_float(margin, "margin", minimum=0.0)
    mining = check_choice(mining, "mining", TRIPLET_MINING)
    distance = check_choice(distance, "distance", TRIPLET_DISTANCES)
    reduction = check_reduction(reduction)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
    out_dtype = z.dtype
    z = z.to(compute_dtype(z.dtype))

    same = y[:, None] == y[None, :]
    eye = torch.eye(b, dtype=torch.bool, device=z.device)
    pos, neg = same & ~eye, ~same
    if not bool(pos.any(1).all()):
        bad = int((~pos.any(1)).nonzero()[0, 0])
        raise ValueError(f"`labels`: anchor {bad} has no positive in the batch (each class needs >= 2 rows)")
    if not bool(neg.any(1).all()):
        raise ValueError("`labels`: every anchor needs a negative (the batch needs >= 2 classes)")

    with torch.no_grad():
        d = _distance_matrix(z.detach(), distance)
        ip = d.masked_fill(~pos, -math.inf).argmax(1)
        if mining == "hard":
            ineg = d.masked_fill(~neg, math.inf).argmin(1)
        elif mining == "semi-hard":
            dap = d.gather(1, ip[:, None])
            outside = neg & (d > dap)
            closest_outside = d.masked_fill(~outside, math.inf).argmin(1)
            farthest = d.masked_fill(~neg, -math.inf).argmax(1)
            ineg = torch.where(outside.any(1), closest_outside, farthest)
        else:
            dev = generator.device if generator is not None else z.device
            u = torch.rand((b, b), generator=generator, device=dev).to(z.device)
            ineg = u.masked_fill(~neg, -1.0).argmax(1)  # uniform over the negatives
    d_ap = _pair_distance(z, z[ip], distance)
    d_an = _pair_distance(z, z[ineg], distance)
    loss = F.relu(d_ap - d_an + margin)
    return reduce(loss, reduction).to(out_dtype)
