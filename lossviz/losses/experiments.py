"""Small training experiments behind the track-T notebooks (seeded, CPU-sized).

* :func:`latent_classes` + :func:`train_contrastive` (T01, T02): an MLP encoder on the unit
  sphere trained with NT-Xent (fixed temperature) or with the DRO-based robust contrastive loss
  with individually learned temperatures (Qiu et al. 2023, arXiv:2305.11965).
* :func:`noisy_digits` + :func:`train_classifier` (T03, T04): sklearn digits with symmetric
  label noise on the training split, an MLP trained with any ``loss_fn(logits, targets)``.

Every function takes an explicit ``seed`` and returns a frozen result; models are created here
(nothing of the caller's is modified).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .._result import Result
from .._validate import check_choice, check_float, check_int, check_labels, check_tensor
from .contrastive import info_nce, robust_contrastive_loss, tolerance, uniformity

__all__ = [
    "latent_classes",
    "ContrastiveRun",
    "train_contrastive",
    "NoisyDigits",
    "noisy_digits",
    "ClassifierRun",
    "train_classifier",
]


def latent_classes(
    counts: Sequence[int],
    dim: int = 32,
    *,
    within: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent classes: centres ``N(0, I_dim)``, points ``centre + within * N(0, I)``; sizes ``counts``.

    Returns ``(x, labels)``; the labels are never shown to the contrastive learner, only used to
    measure tolerance (same-class similarity) and temperature statistics per class.
    """
    counts = [check_int(c, "counts[i]", minimum=1) for c in counts]
    dim = check_int(dim, "dim", minimum=1)
    within = check_float(within, "within", minimum=0.0)
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    centres = torch.randn(len(counts), dim, generator=g, dtype=torch.float64)
    y = torch.cat([torch.full((c,), k, dtype=torch.long) for k, c in enumerate(counts)])
    x = centres[y] + within * torch.randn(len(y), dim, generator=g, dtype=torch.float64)
    return x.to(dtype), y


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
    and are clamped to ``tau_range``. Batches are random subsets of ``batch_size`` samples (all
    samples when ``batch_size >= n``).
    """
    from tqdm.auto import tqdm

    from ..models import MLP

    x = check_tensor(x, "x", ndim=2, floating=True)
    labels = check_labels(labels, "labels", n=x.shape[0])
    loss = check_choice(loss, "loss", ("info_nce", "robust"))
    tau = check_float(tau, "tau", positive=True)
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    noise = check_float(noise, "noise", minimum=0.0)
    rho = check_float(rho, "rho", minimum=0.0)
    lo, hi = (check_float(v, "tau_range", positive=True) for v in tau_range)
    seed = check_int(seed, "seed", minimum=0)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    enc = MLP(x.shape[1], tuple(hidden), out_features, seed=seed, dtype=x.dtype)
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cosine else None
    temps = torch.full((n,), tau, dtype=x.dtype)
    velocity = torch.zeros(n, dtype=x.dtype)
    losses = np.empty(steps)
    for step in tqdm(range(steps), disable=not progress, desc=f"{loss} tau={tau:g}", leave=False):
        idx = torch.randperm(n, generator=g)[:batch_size] if batch_size < n else torch.arange(n)
        xb = x[idx]
        v1 = xb + noise * torch.randn(xb.shape, generator=g, dtype=x.dtype)
        v2 = xb + noise * torch.randn(xb.shape, generator=g, dtype=x.dtype)
        z1, z2 = enc(v1), enc(v2)
        if loss == "info_nce":
            value = info_nce(z1, z2, tau)
        else:
            t = temps[idx].clone().requires_grad_(True)
            value = robust_contrastive_loss(z1, z2, t, rho=rho)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if loss == "robust":
            with torch.no_grad():
                # per-sample gradient of the per-anchor losses (undo the mean over 2B anchors)
                grad_t = t.grad * (2 * len(idx))
                velocity[idx] = tau_momentum * velocity[idx] + grad_t
                temps[idx] = (temps[idx] - tau_lr * velocity[idx]).clamp(lo, hi)
        losses[step] = float(value.detach())
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


def noisy_digits(noise: float = 0.4, *, train_fraction: float = 2 / 3, seed: int = 0) -> NoisyDigits:
    """sklearn digits (standardised), a random ``train_fraction`` split and symmetric label noise.

    Symmetric noise: each training label is, with probability ``noise``, replaced by one of the
    *other* 9 classes uniformly at random (so exactly the flipped ones are wrong).
    """
    from ..data import digits

    noise = check_float(noise, "noise", minimum=0.0, maximum=1.0)
    train_fraction = check_float(train_fraction, "train_fraction", minimum=0.0, maximum=1.0)
    seed = check_int(seed, "seed", minimum=0)
    x, y = digits(dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    n_train = int(round(train_fraction * len(y)))
    tr, te = perm[:n_train], perm[n_train:]
    y_clean = y[tr].clone()
    flip = torch.rand(n_train, generator=g) < noise
    shift = torch.randint(1, 10, (n_train,), generator=g)
    y_noisy = torch.where(flip, (y_clean + shift) % 10, y_clean)
    return NoisyDigits(
        x_train=x[tr],
        y_train=y_noisy,
        y_train_clean=y_clean,
        x_test=x[te],
        y_test=y[te],
        noise=noise,
        flipped=flip,
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


def _acc(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


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
    Recorded at epoch 0 and every ``record_every`` epochs and at the end.
    """
    from ..models import MLP

    if not isinstance(data, NoisyDigits):
        raise TypeError(f"`data` must be NoisyDigits, got {type(data).__name__}")
    if not callable(loss_fn):
        raise TypeError("`loss_fn` must be callable(logits, targets)")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    optimizer = check_choice(optimizer, "optimizer", ("adam", "sgd"))
    record_every = check_int(record_every, "record_every", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    model = MLP(64, tuple(hidden), 10, seed=seed)
    params = list(model.parameters())
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed + 1)
    x, y = data.x_train, data.y_train
    n = len(y)
    rec_e, rec_test, rec_train = [], [], []

    def record(e):
        model.eval()
        rec_e.append(e)
        rec_test.append(_acc(model, data.x_test, data.y_test))
        rec_train.append(_acc(model, x, y))
        model.train()

    record(0)
    for e in range(1, epochs + 1):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if e % record_every == 0 or e == epochs:
            record(e)
    test = np.array(rec_test)
    return ClassifierRun(
        epochs=np.array(rec_e),
        test_accuracy=test,
        train_accuracy_noisy=np.array(rec_train),
        final_test_accuracy=float(test[-1]),
        best_test_accuracy=float(test.max()),
        loss_name=loss_name or getattr(loss_fn, "__name__", "loss"),
        seed=seed,
    )
