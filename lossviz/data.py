"""Seeded synthetic data sets and sklearn's bundled digits, as tensors.

Every generator takes ``seed`` (same seed -> same data, independent of global RNG state),
``dtype`` (floating dtype of the inputs; default ``torch.get_default_dtype()``) and ``device``
(default: CPU; notebooks pass ``lossviz.device()``). Class labels are ``int64`` in
``[0, num_classes)``. Nothing is downloaded.

:func:`collate` (from :mod:`lossviz._model`) is how any data reaches a lossviz family: tuples,
Hugging Face style dict batches, lists or ``DataLoader`` s of batches, with ``split=``,
``output_fn=``, ``label_key=`` and ``resident=`` to say how a batch becomes (inputs, targets),
how the model's output becomes logits and whether batches stay on the device. :class:`PKBatches`
samples class-balanced P x K batches (metric learning) from a private generator.

>>> from lossviz import data
>>> x, y = data.two_moons(100, seed=0)
>>> x.shape, y.shape
(torch.Size([100, 2]), torch.Size([100]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._model import Batches, collate, logits_of
from ._validate import check_choice, check_dtype, check_float, check_int, check_labels, check_tensor

__all__ = [
    "collate",
    "Batches",
    "logits_of",
    "Dataset",
    "Split",
    "imbalanced_counts",
    "gaussian_mixture",
    "blobs",
    "two_moons",
    "spirals",
    "circle",
    "sphere",
    "modular_arithmetic",
    "teacher_student",
    "digits",
    "copy_task",
    "train_test_split",
    "PKBatches",
]


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` (n, d), targets ``y`` and generator-specific extras in ``info``.

    Unpacks as ``x, y = dataset`` and can be passed anywhere lossviz takes ``data``.
    """

    x: torch.Tensor
    y: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return (self.x, self.y)[i]

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Split:
    """A train/test split; unpacks as ``x_train, y_train, x_test, y_test``."""

    train: Dataset
    test: Dataset

    def __iter__(self):
        return iter((self.train.x, self.train.y, self.test.x, self.test.y))


def _setup(seed, dtype, device):
    seed = check_int(seed, "seed", minimum=0)
    dtype = check_dtype(dtype) or torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"`device` must be a torch.device or a string, got {device!r}")
    if isinstance(device, str):
        from ._runtime import device as _device

        device = _device(device)
    return torch.Generator().manual_seed(seed), dtype, device


def _out(x: torch.Tensor, y: torch.Tensor, dtype, device, **info) -> Dataset:
    y = y.to(device=device)
    return Dataset(x.to(device=device, dtype=dtype), y, info)


def imbalanced_counts(
    n_max: int, num_classes: int, ratio: float = 1.0, profile: str = "exponential"
) -> list[int]:
    """Class sizes from ``n_max`` down to ``n_max / ratio``.

    ``profile="exponential"``: ``n_k = round(n_max * ratio ** (-k / (K - 1)))`` (long-tailed, as in
    Cao et al. 2019); ``"step"``: the first half of the classes have ``n_max``, the rest
    ``n_max / ratio``. Every class keeps at least one sample.
    """
    n_max = check_int(n_max, "n_max", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    ratio = check_float(ratio, "ratio", minimum=1.0)
    check_choice(profile, "profile", ("exponential", "step"))
    if profile == "exponential":
        counts = [n_max * ratio ** (-k / (num_classes - 1)) for k in range(num_classes)]
    else:
        half = num_classes // 2 if num_classes > 2 else 1
        counts = [n_max if k < half else n_max / ratio for k in range(num_classes)]
    return [max(1, int(round(c))) for c in counts]


def gaussian_mixture(
    n_per_class: int = 50,
    num_classes: int = 3,
    dim: int = 2,
    *,
    imbalance: float = 1.0,
    counts: list[int] | None = None,
    separation: float = 3.0,
    noise: float = 1.0,
    means: torch.Tensor | None = None,
    orthogonal_means: bool = False,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """Isotropic Gaussian classes ``x = mu_k + noise * N(0, I)``.

    Class sizes: ``counts`` if given, else :func:`imbalanced_counts` with ``n_max=n_per_class``
    and ``ratio=imbalance`` (1 = balanced). Means: ``means`` if given, else
    ``separation * N(0, I_dim)`` (or ``separation`` times rows of a random orthonormal matrix with
    ``orthogonal_means=True``, which needs ``num_classes <= dim``: equidistant classes).
    ``info`` holds ``means`` and ``counts``.
    """
    gen, dtype, device = _setup(seed, dtype, device)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    dim = check_int(dim, "dim", minimum=1)
    noise = check_float(noise, "noise", minimum=0.0)
    separation = check_float(separation, "separation", minimum=0.0)
    if counts is None:
        imbalance = check_float(imbalance, "imbalance", minimum=1.0)
        counts = imbalanced_counts(check_int(n_per_class, "n_per_class", minimum=1), num_classes, imbalance)
    else:
        if len(counts) != num_classes:
            raise ValueError(f"`counts` must have num_classes={num_classes} entries, got {len(counts)}")
        counts = [check_int(c, "counts[i]", minimum=1) for c in counts]
    if means is None:
        if orthogonal_means:
            if num_classes > dim:
                raise ValueError(f"`orthogonal_means` needs num_classes <= dim, got {num_classes} > {dim}")
            q, _ = torch.linalg.qr(
                torch.randn(dim, dim, generator=gen, dtype=torch.float64, device=gen.device)
            )
            means = separation * q[:num_classes]
        else:
            means = separation * torch.randn(
                num_classes, dim, generator=gen, dtype=torch.float64, device=gen.device
            )
    else:
        means = check_tensor(means, "means", ndim=2, floating=True).to(torch.float64).cpu()
        if tuple(means.shape) != (num_classes, dim):
            raise ValueError(f"`means` must have shape ({num_classes}, {dim}), got {tuple(means.shape)}")
    y = torch.cat([torch.full((c,), k, dtype=torch.long, device=gen.device) for k, c in enumerate(counts)])
    x = means[y] + noise * torch.randn(len(y), dim, generator=gen, dtype=torch.float64, device=gen.device)
    return _out(x, y, dtype, device, means=means.to(dtype=dtype, device=device), counts=list(counts))


def blobs(
    n: int = 200,
    dim: int = 2,
    *,
    margin: float = 0.5,
    spread: float = 2.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """Two linearly separable classes with a guaranteed margin.

    Points ``x ~ spread * N(0, I)`` are labelled by the side of a random unit normal ``w`` and
    pushed ``margin / 2`` away from the hyperplane, so the max-margin gap is at least ``margin``.
    ``info`` holds the separating direction ``w``.
    """
    gen, dtype, device = _setup(seed, dtype, device)
    n = check_int(n, "n", minimum=2)
    dim = check_int(dim, "dim", minimum=1)
    margin = check_float(margin, "margin", minimum=0.0)
    spread = check_float(spread, "spread", positive=True)
    w = torch.randn(dim, generator=gen, dtype=torch.float64, device=gen.device)
    w = w / w.norm()
    x = spread * torch.randn(n, dim, generator=gen, dtype=torch.float64, device=gen.device)
    s = x @ w
    y = (s > 0).long()
    # make sure both classes exist
    y[0], y[1] = 0, 1
    sign = 2.0 * y.to(torch.float64) - 1.0
    x = x - torch.outer(s, w) + torch.outer(sign * (s.abs() + margin / 2), w)
    return _out(x, y, dtype, device, w=w.to(dtype))


def two_moons(
    n: int = 200, *, noise: float = 0.1, seed: int = 0, dtype: torch.dtype | None = None, device=None
) -> Dataset:
    """Two interleaving half circles (as sklearn's ``make_moons``), ``n // 2`` per class."""
    gen, dtype, device = _setup(seed, dtype, device)
    n = check_int(n, "n", minimum=2)
    noise = check_float(noise, "noise", minimum=0.0)
    n0 = n // 2
    n1 = n - n0
    t0 = torch.linspace(0, math.pi, n0, dtype=torch.float64, device=gen.device)
    t1 = torch.linspace(0, math.pi, n1, dtype=torch.float64, device=gen.device)
    a = torch.stack([torch.cos(t0), torch.sin(t0)], 1)
    b = torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], 1)
    x = torch.cat([a, b]) + noise * torch.randn(n, 2, generator=gen, dtype=torch.float64, device=gen.device)
    y = torch.cat(
        [
            torch.zeros(n0, dtype=torch.long, device=gen.device),
            torch.ones(n1, dtype=torch.long, device=gen.device),
        ]
    )
    perm = torch.randperm(n, generator=gen, device=gen.device)
    return _out(x[perm], y[perm], dtype, device)


def spirals(
    n: int = 300,
    num_classes: int = 2,
    *,
    turns: float = 1.5,
    noise: float = 0.05,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """``num_classes`` interleaved Archimedean spirals in the plane (radius from 0 to 1)."""
    gen, dtype, device = _setup(seed, dtype, device)
    n = check_int(n, "n", minimum=2)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    turns = check_float(turns, "turns", positive=True)
    noise = check_float(noise, "noise", minimum=0.0)
    y = torch.arange(n, device=gen.device) % num_classes
    r = torch.rand(n, generator=gen, dtype=torch.float64, device=gen.device)
    theta = 2 * math.pi * (turns * r + y.to(torch.float64) / num_classes)
    x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1)
    x = x + noise * torch.randn(n, 2, generator=gen, dtype=torch.float64, device=gen.device)
    return _out(x, y.long(), dtype, device)


def circle(
    n: int = 32,
    *,
    radius: float = 1.0,
    random: bool = False,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """Points on a circle; ``y`` holds the angles in ``[0, 2 pi)`` (evenly spaced unless random)."""
    gen, dtype, device = _setup(seed, dtype, device)
    n = check_int(n, "n", minimum=1)
    radius = check_float(radius, "radius", positive=True)
    if random:
        theta = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64, device=gen.device)
    else:
        theta = torch.arange(n, dtype=torch.float64, device=gen.device) * (2 * math.pi / n)
    x = radius * torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    return Dataset(x.to(device=device, dtype=dtype), theta.to(device=device, dtype=dtype), {})


def sphere(
    n: int = 100,
    dim: int = 3,
    *,
    radius: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """Uniform points on the sphere of radius ``radius`` in ``R^dim``; ``y`` is the last coordinate."""
    gen, dtype, device = _setup(seed, dtype, device)
    n = check_int(n, "n", minimum=1)
    dim = check_int(dim, "dim", minimum=2)
    radius = check_float(radius, "radius", positive=True)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64, device=gen.device)
    x = radius * x / x.norm(dim=1, keepdim=True)
    return Dataset(x.to(device=device, dtype=dtype), x[:, -1].to(device=device, dtype=dtype), {})


_OPS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * pow_mod_inverse(b, p)) % p,
}


def pow_mod_inverse(b: torch.Tensor, p: int) -> torch.Tensor:
    """Modular inverse ``b^(p-2) mod p`` for prime ``p`` (elementwise, ``b != 0``)."""
    out = torch.ones_like(b)
    base = b % p
    e = p - 2
    while e:
        if e & 1:
            out = (out * base) % p
        base = (base * base) % p
        e >>= 1
    return out


def modular_arithmetic(
    p: int = 31,
    op: str = "add",
    *,
    train_fraction: float = 0.7,
    encoding: str = "onehot",
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Split:
    """The table ``c = a op b (mod p)`` for all pairs, split at random into train and test.

    ``encoding="onehot"`` gives inputs ``onehot(a) || onehot(b)`` of width ``2p`` (as in
    "Grokking at the Edge of Numerical Stability", Prieto et al. 2025); ``"index"`` gives the
    integer pair ``(a, b)``. ``op`` in ``add``, ``sub``, ``mul``, ``div`` (``div`` needs a prime
    ``p`` and skips ``b = 0``).
    """
    gen, dtype, device = _setup(seed, dtype, device)
    p = check_int(p, "p", minimum=2)
    check_choice(op, "op", tuple(_OPS))
    check_choice(encoding, "encoding", ("onehot", "index"))
    train_fraction = check_float(train_fraction, "train_fraction", minimum=0.0, maximum=1.0)
    a, b = torch.meshgrid(torch.arange(p, device="cpu"), torch.arange(p, device="cpu"), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    if op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    c = _OPS[op](a, b, p)
    if encoding == "onehot":
        x = torch.cat([torch.nn.functional.one_hot(a, p), torch.nn.functional.one_hot(b, p)], 1).to(dtype)
    else:
        x = torch.stack([a, b], 1)
    perm = torch.randperm(len(c), generator=gen, device=gen.device)
    n_train = int(round(train_fraction * len(c)))
    if not 0 < n_train < len(c):
        raise ValueError(f"`train_fraction`={train_fraction} leaves an empty train or test set")
    tr, te = perm[:n_train], perm[n_train:]
    info = {"p": p, "op": op}
    return Split(
        Dataset(x[tr].to(device), c[tr].to(device), dict(info, pairs=torch.stack([a[tr], b[tr]], 1))),
        Dataset(x[te].to(device), c[te].to(device), dict(info, pairs=torch.stack([a[te], b[te]], 1))),
    )


def teacher_student(
    n: int = 256,
    dim: int = 16,
    *,
    teacher: str | torch.nn.Module = "linear",
    hidden: int = 32,
    noise: float = 0.0,
    outputs: int = 1,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """Regression data ``y = teacher(x) + noise * eps`` with ``x ~ N(0, I_dim)``.

    ``teacher``: ``"linear"`` (``x @ beta / sqrt(dim)``), ``"relu"`` (a random 1-hidden-layer ReLU
    net of width ``hidden``, outputs scaled to unit variance at init), ``"quadratic"``
    (``(beta . x)^2 / (2 dim)``) or any module mapping ``(n, dim) -> (n, outputs)``. The teacher's
    randomness comes from ``seed``. ``y`` has shape ``(n, outputs)``. A module teacher is evaluated
    in eval mode under ``no_grad`` (Dropout off, BatchNorm statistics read, not updated), so it is
    left unchanged and the same ``seed`` gives the same targets.
    """
    gen, dtype, device = _setup(seed, dtype, device)
    n = check_int(n, "n", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    outputs = check_int(outputs, "outputs", minimum=1)
    noise = check_float(noise, "noise", minimum=0.0)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64, device=gen.device)
    info: dict[str, Any] = {}
    if isinstance(teacher, torch.nn.Module):
        from ._model import eval_mode

        p = next(teacher.parameters(), None)
        tdtype = p.dtype if p is not None and p.is_floating_point() else dtype
        xt = x.to(dtype=tdtype, device=p.device if p is not None else None)
        # eval mode (Dropout off, BatchNorm uses its running statistics and is not updated) under
        # no_grad: the teacher is left exactly as it was and the targets depend on `seed` only
        with eval_mode(teacher), torch.no_grad():
            try:
                y = teacher(xt)
            except RuntimeError as e:
                raise ValueError(
                    f"`teacher` failed on inputs of shape ({n}, {dim}) (`dim`={dim}); it must map "
                    f"(n, dim) -> (n, outputs): {e}"
                ) from e
        try:  # a tuple (first element) or a dict / ModelOutput ("logits") gives its tensor
            y = logits_of(y)
        except TypeError as e:
            raise TypeError(f"`teacher` must return a tensor (or a tuple/dict with one): {e}") from None
        y = y.to(torch.float64).cpu()
        if y.ndim == 1:
            y = y[:, None]
    else:
        check_choice(teacher, "teacher", ("linear", "relu", "quadratic"))
        beta = torch.randn(dim, outputs, generator=gen, dtype=torch.float64, device=gen.device)
        info["beta"] = beta
        if teacher == "linear":
            y = x @ beta / math.sqrt(dim)
        elif teacher == "quadratic":
            y = (x @ beta) ** 2 / (2 * dim)
        else:
            w1 = torch.randn(dim, hidden, generator=gen, dtype=torch.float64, device=gen.device) / math.sqrt(
                dim
            )
            w2 = torch.randn(
                hidden, outputs, generator=gen, dtype=torch.float64, device=gen.device
            ) * math.sqrt(2.0 / hidden)
            y = torch.relu(x @ w1) @ w2
            info.update(w1=w1, w2=w2)
    y = y + noise * torch.randn(y.shape, generator=gen, dtype=torch.float64, device=gen.device)
    return Dataset(x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype), info)


def digits(
    classes=None,
    *,
    standardize: bool = True,
    dtype: torch.dtype | None = None,
    device=None,
) -> Dataset:
    """sklearn's bundled 8x8 digits (1,797 images, 64 features; no download).

    ``classes``: keep only these digit labels (relabelled ``0..len(classes)-1`` in the given order;
    ``info["classes"]`` keeps the original labels). ``standardize`` centres and scales each pixel
    (pixels that are constant get scale 1).
    """
    from sklearn.datasets import load_digits

    _, dtype, device = _setup(0, dtype, device)
    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    if classes is not None:
        classes = [check_int(c, "classes[i]", minimum=0, maximum=9) for c in classes]
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(f"`classes` must be at least two distinct digits, got {classes}")
        keep = np.isin(y, classes)
        x, y = x[keep], y[keep]
        remap = {c: i for i, c in enumerate(classes)}
        y = np.array([remap[v] for v in y], dtype=np.int64)
    else:
        classes = list(range(10))
    if standardize:
        mu, sd = x.mean(0), x.std(0)
        sd[sd == 0] = 1.0
        x = (x - mu) / sd
    return Dataset(
        torch.from_numpy(x).to(device=device, dtype=dtype),
        torch.from_numpy(y).to(device=device),
        {"classes": classes},
    )


def copy_task(
    n: int,
    length: int = 8,
    vocab_size: int = 32,
    *,
    ignore_index: int = -100,
    seed: int = 0,
    device=None,
) -> Dataset:
    r"""The copy task for a causal language model: sequences ``a || a`` of i.i.d. uniform tokens.

    ``a`` has ``length`` tokens drawn uniformly from ``[0, vocab_size)``; the model reads the
    first ``2 length - 1`` tokens of ``s = a || a`` and predicts the next token at every
    position (``x = s[:, :-1]``, ``y = s[:, 1:]``). The first ``length - 1`` targets are
    unpredictable and set to ``ignore_index``; the last ``length`` targets are copies of ``a``
    (a model that copies reaches loss 0, chance is :math:`\log V`). As used by Wortsman et al.
    (2023)'s small-scale proxies for Transformer instabilities only in spirit: they train on
    text; the copy task is this package's noise-free stand-in.

    Returns a :class:`Dataset` with int64 ``x`` and ``y`` of shape ``(n, 2 length - 1)`` on
    ``device``; ``info`` holds ``sequences`` ``(n, 2 length)``, ``length``, ``vocab_size`` and
    ``ignore_index``.

    Examples
    --------
    >>> from lossviz import data
    >>> ds = data.copy_task(2, length=3, vocab_size=5, seed=0)
    >>> ds.x.shape, ds.y.shape
    (torch.Size([2, 5]), torch.Size([2, 5]))
    >>> bool((ds.y[:, :2] == -100).all()), bool((ds.y[:, 2:] == ds.info["sequences"][:, :3]).all())
    (True, True)
    """
    n = check_int(n, "n", minimum=1)
    length = check_int(length, "length", minimum=1)
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    ignore_index = check_int(ignore_index, "ignore_index")
    if 0 <= ignore_index < vocab_size:
        raise ValueError(f"`ignore_index` ({ignore_index}) must not be a token id in [0, {vocab_size})")
    gen, _, device = _setup(seed, None, device)
    a = torch.randint(0, vocab_size, (n, length), generator=gen, device=gen.device)
    s = torch.cat([a, a], 1)
    y = s[:, 1:].clone()
    y[:, : length - 1] = ignore_index
    info = {
        "sequences": s.to(device=device),
        "length": length,
        "vocab_size": vocab_size,
        "ignore_index": ignore_index,
    }
    return Dataset(s[:, :-1].to(device=device), y.to(device=device), info)


def train_test_split(data, test_fraction: float = 0.25, *, stratify: bool = True, seed: int = 0) -> Split:
    """Split ``(x, y)`` at random (stratified by integer labels by default)."""
    if not isinstance(data, (tuple, list, Dataset)) or len(tuple(data)) != 2:
        raise TypeError(f"`data` must be a pair (x, y) or a Dataset, got {type(data).__name__}")
    x, y = data
    x = check_tensor(x, "x", nonempty=True)
    y = check_tensor(y, "y", nonempty=True)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`data` has {x.shape[0]} inputs but {y.shape[0]} targets")
    test_fraction = check_float(test_fraction, "test_fraction", minimum=0.0, maximum=1.0)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    n = x.shape[0]
    if stratify and not y.is_floating_point() and y.ndim == 1:
        test_idx = []
        for c in torch.unique(y).tolist():
            idx = torch.nonzero(y.cpu() == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=gen, device=gen.device)]
            test_idx.append(idx[: int(round(test_fraction * len(idx)))])
        test = torch.cat(test_idx)
    else:
        test = torch.randperm(n, generator=gen, device=gen.device)[: int(round(test_fraction * n))]
    mask = torch.zeros(n, dtype=torch.bool, device=gen.device)
    mask[test] = True
    if mask.all() or not mask.any():
        raise ValueError(f"`test_fraction`={test_fraction} leaves an empty train or test set")
    mask = mask.to(x.device)
    return Split(Dataset(x[~mask], y[~mask.to(y.device)]), Dataset(x[mask], y[mask.to(y.device)]))


class PKBatches:
    """Re-iterable class-balanced P x K batches (metric learning): P = B / K classes, K points each.

    Every batch draws ``batch_size / k`` distinct classes and ``k`` distinct points of each
    (without replacement) from a generator seeded with ``seed``; one pass yields ``per_epoch``
    batches ``(x[idx], y[idx])``, so it can be passed as ``data`` to :func:`lossviz.train.fit`. The
    generator is created here (the global RNG is not used), so one object gives one reproducible
    stream; batches are on the device of ``y``. As in FaceNet/batch-hard triplet training
    (Hermans, Beyer & Leibe, *In Defense of the Triplet Loss*, 2017, arXiv:1703.07737).

    Examples
    --------
    >>> import torch
    >>> from lossviz import data
    >>> x, y = torch.randn(60, 3), torch.arange(6).repeat_interleave(10)
    >>> xb, yb = next(iter(data.PKBatches(x, y, 8, k=4, seed=0)))
    >>> xb.shape, sorted(torch.bincount(yb)[torch.bincount(yb) > 0].tolist())
    (torch.Size([8, 3]), [4, 4])
    """

    def __init__(self, x, y, batch_size: int, *, k: int = 4, per_epoch: int = 50, seed: int = 0):
        x = check_tensor(x, "x", ndim=2)
        y = check_labels(y, "y", n=x.shape[0])
        self.k = check_int(k, "k", minimum=2)
        b = check_int(batch_size, "batch_size", minimum=2 * self.k)
        if b % self.k:
            raise ValueError(f"`batch_size` must be a multiple of k = {self.k}, got {b}")
        classes, counts = torch.unique(y, return_counts=True)
        if b // self.k > len(classes):
            raise ValueError(f"`batch_size` = {b} needs {b // self.k} classes, the data has {len(classes)}")
        if int(counts.min()) < self.k:
            raise ValueError(
                f"`y`: every class needs >= k = {self.k} points, the smallest has {int(counts.min())}"
            )
        # not `.x`/`.y`: train.fit would read an object with tensor `.x` and `.y` as one batch
        self.inputs, self.targets, self.p = x, y, b // self.k
        self.per_epoch = check_int(per_epoch, "per_epoch", minimum=1)
        self.members = [torch.nonzero(y == c).flatten().cpu() for c in classes]
        self.gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))

    def __len__(self) -> int:
        return self.per_epoch

    def indices(self) -> torch.Tensor:
        """The indices of one batch (P classes x K points)."""
        cls = torch.randperm(len(self.members), generator=self.gen, device="cpu")[: self.p]
        parts = []
        for c in cls.tolist():
            m = self.members[c]
            parts.append(m[torch.randperm(len(m), generator=self.gen, device="cpu")[: self.k]])
        return torch.cat(parts).to(self.targets.device)

    def __iter__(self):
        for _ in range(self.per_epoch):
            idx = self.indices()
            yield self.inputs[idx], self.targets[idx]
