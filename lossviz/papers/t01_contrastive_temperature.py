"""The set-up of T01 (and T02): latent classes on a sphere, contrastive training of an MLP encoder.

Papers:

* Feng Wang, Huaping Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021,
  arXiv:2012.09740 (T01: hardness-aware penalties, the uniformity-tolerance dilemma).
* Zi-Hao Qiu, Quanqi Hu, Zhuoning Yuan, Denny Zhou, Lijun Zhang, Tianbao Yang, "Not All Semantics
  are Created Equal: Contrastive Self-supervised Learning with Automatic Temperature
  Individualization", ICML 2023, arXiv:2305.11965 (T02: the robust contrastive loss with
  individually learned temperatures; T02 imports this module).

:func:`latent_classes` draws the data; :func:`train_contrastive` trains an MLP encoder whose
outputs live on the unit sphere with NT-Xent at a fixed temperature or with the robust loss,
through :func:`lossviz.train.fit` (a :func:`lossviz.train.batch_loss` over two noisy views; the
per-sample temperatures take their momentum-SGD step in fit's ``grad_hook``). Every function takes
an explicit ``seed``; same seed, same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import train
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_labels, check_tensor
from ..losses import info_nce, robust_contrastive_loss, tolerance, uniformity
from ..models import MLP

__all__ = ["latent_classes", "ContrastiveRun", "train_contrastive", "hardest_negative_share"]


def latent_classes(
    counts: Sequence[int],
    dim: int = 32,
    *,
    within: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent classes: centres ``N(0, I_dim)``, points ``centre + within * N(0, I)``; sizes ``counts``.

    Drawn on the CPU from ``seed`` (the same data on every device), then moved to ``device``.

    Returns ``(x, labels)``; the labels are never shown to the contrastive learner, only used to
    measure tolerance (same-class similarity) and temperature statistics per class.
    """
    counts = [check_int(c, "counts[i]", minimum=1) for c in counts]
    dim = check_int(dim, "dim", minimum=1)
    within = check_float(within, "within", minimum=0.0)
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    centres = torch.randn(len(counts), dim, generator=g, dtype=torch.float64, device=g.device)
    y = torch.cat([torch.full((c,), k, dtype=torch.long, device=g.device) for k, c in enumerate(counts)])
    x = centres[y] + within * torch.randn(len(y), dim, generator=g, dtype=torch.float64, device=g.device)
    return x.to(dtype=dtype, device=device), y.to(device)


@dataclass(frozen=True, repr=False)
class ContrastiveRun(Result):
    """A trained contrastive encoder's embeddings and metrics.

    ``embeddings`` (n, out) L2-normalised embeddings of the clean inputs; ``labels`` (n,);
    ``uniformity`` / ``tolerance`` of the embeddings; ``losses`` per step; ``temperatures``
    (n,) the learned per-sample temperatures (robust loss) or None; settings.
    """

    tau: float
    loss: str
    embeddings: torch.Tensor
    labels: torch.Tensor
    uniformity: float
    tolerance: float
    losses: np.ndarray
    temperatures: torch.Tensor | None
    rho: float | None
    steps: int
    seed: int


def train_contrastive(
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    tau: float = 0.1,
    loss: str = "info_nce",
    hidden: Sequence[int] = (128, 128),
    out_features: int = 8,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 1e-3,
    noise: float = 0.1,
    rho: float = 0.1,
    tau_lr: float = 0.05,
    tau_momentum: float = 0.9,
    tau_range: tuple[float, float] = (0.05, 5.0),
    cosine: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> ContrastiveRun:
    """Train an MLP encoder (outputs on the unit sphere) with a contrastive loss; two views per
    sample are made by additive Gaussian noise of std ``noise`` (the only augmentation).

    ``loss="info_nce"``: NT-Xent at the fixed temperature ``tau`` (Adam, cosine schedule).
    ``loss="robust"``: the robust contrastive loss of Qiu et al. (2023) with one temperature per
    sample, initialised at ``tau``; the encoder takes Adam steps on the loss, the temperatures
    momentum-SGD steps (``tau_lr``, ``tau_momentum``) on ``dL_i / dtau_i = rho - KL(p_i || uniform)``
    and are clamped to ``tau_range``. Training is :func:`lossviz.train.fit` (Adam, optional
    cosine schedule): shuffled mini-batches of ``batch_size`` (an epoch is one permutation; full
    batch when ``batch_size >= n``), the two views drawn from fit's seeded generator.
    ``steps=0`` returns the untrained encoder (a control). ``x`` may live on any device.

    ``losses`` holds the training loss of each of the ``steps`` updates (before the update).
    """
    x = check_tensor(x, "x", ndim=2, floating=True)
    labels = check_labels(labels, "labels", n=x.shape[0])
    loss = check_choice(loss, "loss", ("info_nce", "robust"))
    tau = check_float(tau, "tau", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    noise = check_float(noise, "noise", minimum=0.0)
    rho = check_float(rho, "rho", minimum=0.0)
    lo, hi = (check_float(v, "tau_range", positive=True) for v in tau_range)
    seed = check_int(seed, "seed", minimum=0)
    n = x.shape[0]
    enc = MLP(x.shape[1], tuple(hidden), out_features, seed=seed, dtype=x.dtype, device=x.device)
    temps = torch.full((n,), tau, dtype=x.dtype, device=x.device)
    velocity = torch.zeros(n, dtype=x.dtype, device=x.device)
    current = {}

    def two_views(xb, idx, gen):
        # the only augmentation: two independent Gaussian perturbations, drawn from fit's generator
        eps = torch.randn((2, *xb.shape), generator=gen, dtype=xb.dtype, device=gen.device).to(xb.device)
        return torch.stack([xb + noise * eps[0], xb + noise * eps[1]], dim=1), idx

    def objective(model, batch):
        xb, idx = batch
        # the final step (no update) sees the clean batch: both views are the inputs themselves
        v1, v2 = (xb[:, 0], xb[:, 1]) if xb.ndim == 3 else (xb, xb)
        z1, z2 = model(v1), model(v2)
        if loss == "info_nce":
            return info_nce(z1, z2, tau)
        t = temps[idx].clone().requires_grad_(True)
        current["idx"], current["t"] = idx, t
        return robust_contrastive_loss(z1, z2, t, rho=rho)

    def temperature_step(step, model, history):
        # momentum SGD on each sampled temperature; t.grad is (rho - KL_i) / (2B): undo the mean
        idx, t = current["idx"], current["t"]
        with torch.no_grad():
            grad_t = t.grad * (2 * len(idx))
            velocity[idx] = tau_momentum * velocity[idx] + grad_t
            temps[idx] = (temps[idx] - tau_lr * velocity[idx]).clamp(lo, hi)

    history = train.fit(
        enc,
        train.batch_loss(objective),
        (x, torch.arange(n, device=x.device)),
        steps=steps,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        schedule="cosine" if cosine else None,
        transform=two_views,
        grad_hook=temperature_step if loss == "robust" else None,
        seed=seed,
        progress=progress,
        desc=f"{loss} tau={tau:g}",
    )
    losses = np.asarray(history.loss[:steps], dtype=np.float64)
    with torch.no_grad():
        emb = F.normalize(enc(x), dim=1)
    return ContrastiveRun(
        tau=tau,
        loss=loss,
        embeddings=emb,
        labels=labels,
        uniformity=uniformity(emb),
        tolerance=tolerance(emb, labels),
        losses=losses,
        temperatures=temps if loss == "robust" else None,
        rho=rho if loss == "robust" else None,
        steps=steps,
        seed=seed,
    )


def hardest_negative_share(embeddings: torch.Tensor, tau: float, *, k: int = 10) -> float:
    r"""Share of an anchor's InfoNCE gradient that goes to its ``k`` hardest negatives (mean over anchors).

    For anchor ``i`` with similarities ``s_ij`` to the other samples ``j`` (its negatives), the
    gradient of InfoNCE with respect to ``s_ij`` is proportional to the relative penalty
    ``r_ij = exp(s_ij / tau) / sum_l exp(s_il / tau)`` (Wang & Liu 2021, Eq. 4); this returns
    ``mean_i sum_{j in top-k(s_i)} r_ij``. ``k / (n - 1)`` is the share of a uniform penalty.
    Computed in float64 on L2-normalised embeddings.

    Examples
    --------
    >>> import torch
    >>> e = torch.nn.functional.normalize(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    >>> hardest_negative_share(e, 0.01, k=1) > hardest_negative_share(e, 1.0, k=1)
    True
    """
    e = check_tensor(embeddings, "embeddings", ndim=2, floating=True)
    tau = check_float(tau, "tau", positive=True)
    k = check_int(k, "k", minimum=1, maximum=e.shape[0] - 1)
    e = F.normalize(e.detach().to(torch.float64), dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(float("-inf"))  # the anchor itself is not a negative
    w = torch.softmax(sim / tau, dim=1)
    return float(w.topk(k, dim=1).values.sum(1).mean())
