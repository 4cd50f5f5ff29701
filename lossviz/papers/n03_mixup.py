r"""N03: mixup and neural collapse: where the features of cross-class mixes sit.

Reference: Quinn Fisher, Haoyuan Meng & Vardan Papyan, "Pushing Boundaries: Mixup's Influence on
Neural Collapse", ICLR 2024, arXiv:2402.06171. Mixup itself: Hongyi Zhang, Moustapha Cisse,
Yann N. Dauphin & David Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018,
arXiv:1710.09412.

Mixup trains on :math:`\tilde x = \lambda x_i + (1-\lambda) x_j` with the target
:math:`\lambda e_{y_i} + (1-\lambda) e_{y_j}`, :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)`.
With cross-entropy, a cross-class mix at :math:`\lambda \approx 1/2` asks for
:math:`z_a \approx z_b` (log-odds :math:`\log\frac{\lambda}{1-\lambda}`) and :math:`z_c \ll z_a`:
the paper finds the last-layer features of such mixes on the decision boundary between the two
classes, pushed outwards beyond the midpoint of the class means; with MSE they fill the segment
between the means.

* :func:`train_mixup` trains a model with :func:`lossviz.train.fit` and a mixup ``transform``
  (:func:`mixup_transform`, built on :func:`lossviz.losses.mixup` with ``fit``'s own generator),
  AdamW and a cosine schedule, full batch;
* :func:`mixup_geometry` measures where the features of cross-class mixes sit
  (:class:`MixupGeometry`, with ``.plot()``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import _plot
from .._model import call_model, eval_mode, logits_of, model_dtype_device
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_module, check_tensor
from ..collapse import class_means, feature_extractor
from ..collapse._checks import F64, check_labels
from ..data import gaussian_mixture
from ..losses import half_mse, mixup, soft_cross_entropy
from ..models import MLP
from ..train import fit

__all__ = [
    "toy_data",
    "toy_network",
    "mixup_transform",
    "mixup_loss",
    "train_mixup",
    "MixupGeometry",
    "mixup_geometry",
    "plot_mixup_geometry",
]


def toy_data(
    seed: int,
    *,
    num_classes: int = 3,
    dim: int = 10,
    radius: float = 6.0,
    n_per_class: int = 100,
    device=None,
):
    """The N03 data: ``num_classes`` unit-noise Gaussian classes in ``dim`` dimensions whose means
    sit at ``radius`` in random directions (drawn with ``seed``). Returns a :class:`lossviz.data.Dataset`."""
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    directions = torch.randn(num_classes, dim, generator=g, dtype=F64, device=g.device)
    means = check_float(radius, "radius", positive=True) * directions / directions.norm(dim=1, keepdim=True)
    return gaussian_mixture(n_per_class, num_classes, dim, means=means, noise=1.0, seed=seed, device=device)


def toy_network(
    seed: int, *, num_classes: int = 3, dim: int = 10, width: int = 128, device=None
) -> nn.Sequential:
    """The N03 network: an MLP body ``dim -> width -> width -> 2`` (no activation on the 2-D
    bottleneck, so the last-layer features are plotted directly), then a linear head 2 -> K with
    bias. Submodule ``"1"`` is the head, so its input is the feature read by :func:`mixup_geometry`."""
    net = nn.Sequential(MLP(dim, (width, width), 2, seed=seed), MLP(2, (), num_classes, seed=seed + 1))
    return net.to(device=device)


def mixup_transform(num_classes: int, alpha: float = 1.0) -> Callable:
    """A :func:`lossviz.train.fit` ``transform``: every training batch becomes a fresh mixup batch.

    ``transform(x, y, generator) -> (mixed x, soft targets)`` with one
    :math:`\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)` per sample and a random partner, both
    drawn from ``fit``'s own seeded ``generator`` (same seed -> same run).
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    alpha = check_float(alpha, "alpha", positive=True)

    def transform(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator):
        m = mixup(xb, yb, num_classes, alpha=alpha, generator=generator)
        return m.x, m.targets

    return transform


def mixup_loss(loss: str, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss_fn(outputs, targets)`` for integer or soft targets: ``"ce"`` soft-target
    cross-entropy, ``"mse"`` :math:`\\frac12\\|z - t\\|^2` summed over classes, mean over samples."""
    check_choice(loss, "loss", ("ce", "mse"))
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    if loss == "ce":
        return soft_cross_entropy

    def mse(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return half_mse(out, t, num_classes=num_classes)

    return mse


def train_mixup(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    loss: str = "ce",
    mix: bool = True,
    alpha: float = 1.0,
    steps: int = 2000,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` **in place** full-batch with mixup (AdamW + cosine schedule), as in N03.

    One call of :func:`lossviz.train.fit` with ``transform=mixup_transform(num_classes, alpha)``
    (``mix=False``: no transform, the no-mixup control), ``optimizer="adamw"``,
    ``schedule="cosine"`` and :func:`mixup_loss` (``loss="ce"`` or ``"mse"``). Like ``fit`` this
    changes the parameters on purpose, restores ``.training`` flags and leaves no ``.grad``; the
    same ``seed`` gives the same run. Returns the training loss of every update (``steps``
    values, each on that step's mixed batch).
    """
    check_module(model, "model")
    x = check_tensor(x, "x", ndim=2, floating=True)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    y, _ = check_labels(y, x.shape[0], num_classes, "y")
    steps = check_int(steps, "steps", minimum=1)
    history = fit(
        model,
        mixup_loss(loss, num_classes),
        (x, y),
        steps=steps,
        optimizer="adamw",
        lr=check_float(lr, "lr", positive=True),
        weight_decay=check_float(weight_decay, "weight_decay", minimum=0.0),
        schedule="cosine",
        transform=mixup_transform(num_classes, alpha) if mix else None,
        seed=check_int(seed, "seed", minimum=0),
        progress=progress,
        desc=f"mixup {loss}" if mix else f"{loss}, no mixup",
    )
    return history.loss[:steps]


@dataclass(frozen=True, repr=False)
class MixupGeometry(Result):
    r"""Where the features of cross-class mixes sit relative to the class means.

    Per mix ``(i, j)`` of samples from classes ``a != b`` with weight ``lam`` on ``i``:
    ``features`` (M, d), ``logits`` (M, K), ``class_a``, ``class_b``, ``lam``;
    ``logit_gap`` :math:`|z_a - z_b|`; ``segment_distance`` the distance of the feature to the
    segment :math:`[\mu_a, \mu_b]` divided by :math:`\|\mu_a-\mu_b\|`; ``radial``
    :math:`\|h-\mu_G\|/\|(\mu_a+\mu_b)/2-\mu_G\|`. ``means`` are the class means of the clean
    features, ``accuracy`` the clean training accuracy. Medians are properties.
    """

    features: torch.Tensor
    logits: torch.Tensor
    class_a: torch.Tensor
    class_b: torch.Tensor
    lam: torch.Tensor
    logit_gap: np.ndarray
    segment_distance: np.ndarray
    radial: np.ndarray
    means: torch.Tensor
    clean_features: torch.Tensor
    accuracy: float
    lam_range: tuple[float, float]

    @property
    def median_gap(self) -> float:
        return float(np.median(self.logit_gap))

    @property
    def median_segment_distance(self) -> float:
        return float(np.median(self.segment_distance))

    @property
    def median_radial(self) -> float:
        return float(np.median(self.radial))

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Clean features, mixes coloured by lambda, class means (see :func:`plot_mixup_geometry`)."""
        return plot_mixup_geometry(self, backend=backend, ax=ax, **kw)


def mixup_geometry(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layer: str | nn.Module = "head",
    *,
    capture: str = "input",
    lam_range: tuple[float, float] = (0.4, 0.6),
    num_mixes: int = 3000,
    seed: int = 0,
    output_fn=None,
) -> MixupGeometry:
    """Measure the features of cross-class mixes ``lam x_i + (1 - lam) x_j`` (``lam`` uniform in
    ``lam_range``, classes of ``i`` and ``j`` different) against the clean class means.

    Features are read with :func:`feature_extractor` (input of ``layer`` by default) in eval
    mode; the model is left unchanged. Pairs are drawn with ``seed``. See :class:`MixupGeometry`.
    ``x`` is cast to the model's dtype and device. ``output_fn`` turns the model's output into
    logits (default :func:`lossviz._model.logits_of`: a tensor, a tuple's first element, a
    dict's / ``ModelOutput``'s ``"logits"``).
    """
    output_fn = logits_of if output_fn is None else output_fn
    if not callable(output_fn):
        raise TypeError(f"`output_fn` must be callable(output) -> tensor, got {type(output_fn).__name__}")
    check_module(model, "model")
    x = check_tensor(x, "x", ndim=2, floating=True)
    y, k = check_labels(y, x.shape[0], None, "y")
    mdtype, mdevice = model_dtype_device(model)
    x = x.to(dtype=mdtype, device=mdevice)
    y = y.to(mdevice)
    lo, hi = (check_float(v, "lam_range[i]", minimum=0.0, maximum=1.0) for v in lam_range)
    if not lo <= hi:
        raise ValueError(f"`lam_range` must be (low, high) with low <= high, got {lam_range}")
    num_mixes = check_int(num_mixes, "num_mixes", minimum=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    extract = feature_extractor(model, layer, capture=capture)
    n = x.shape[0]
    i = torch.randint(0, n, (num_mixes,), generator=gen, device=gen.device).to(x.device)
    j = torch.randint(0, n, (num_mixes,), generator=gen, device=gen.device).to(x.device)
    lam = (lo + (hi - lo) * torch.rand(num_mixes, generator=gen, dtype=F64, device=gen.device)).to(x.device)
    keep = y[i] != y[j]
    i, j, lam = i[keep], j[keep], lam[keep]
    if not len(i):
        raise ValueError("no cross-class pairs were drawn; are all labels equal?")
    xm = lam[:, None].to(x.dtype) * x[i] + (1 - lam[:, None].to(x.dtype)) * x[j]
    with eval_mode(model), torch.no_grad():
        logits_clean = call_model(model, x, None, output_fn, "x")
        logits = call_model(model, xm, None, output_fn, "x")
    h = extract(x).to(F64)
    hm = extract(xm).to(F64)
    means = class_means(h, y, k)
    mu_g = means.mean(0)
    a, b = y[i], y[j]
    za = logits.gather(1, a[:, None]).squeeze(1)
    zb = logits.gather(1, b[:, None]).squeeze(1)
    ma, mb = means[a], means[b]
    seg = mb - ma
    t = (((hm - ma) * seg).sum(1) / seg.square().sum(1)).clamp(0.0, 1.0)
    dist = (hm - (ma + t[:, None] * seg)).norm(dim=1) / seg.norm(dim=1)
    radial = (hm - mu_g).norm(dim=1) / ((ma + mb) / 2 - mu_g).norm(dim=1)
    return MixupGeometry(
        features=hm,
        logits=logits.detach(),
        class_a=a,
        class_b=b,
        lam=lam,
        logit_gap=(za - zb).abs().double().cpu().numpy(),
        segment_distance=dist.cpu().numpy(),
        radial=radial.cpu().numpy(),
        means=means,
        clean_features=h,
        accuracy=float((logits_clean.argmax(1) == y).double().mean()),
        lam_range=(lo, hi),
    )


def plot_mixup_geometry(
    geometry: MixupGeometry,
    *,
    labels: torch.Tensor | None = None,
    classifier: nn.Linear | None = None,
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    """Clean features (one colour per class, if ``labels`` are given), the cross-class mixes
    coloured by :math:`\\lambda` (with a colour bar), the class means and the segments between
    them; with a ``classifier`` (``nn.Linear`` on 2-D features) also its pairwise decision
    boundaries. Features wider than 2 are projected on the top two principal directions of the
    centred class means."""
    if not isinstance(geometry, MixupGeometry):
        raise TypeError(f"`geometry` must be a MixupGeometry, got {type(geometry).__name__}")
    backend = _plot.check_backend(backend)
    mu = geometry.means.detach().to(F64).cpu()
    h = geometry.clean_features.detach().to(F64).cpu()
    hm = geometry.features.detach().to(F64).cpu()
    d = mu.shape[1]
    if d == 2:
        basis, origin = torch.eye(2, dtype=F64, device="cpu"), torch.zeros(2, dtype=F64, device="cpu")
        names = ("feature 1", "feature 2")
    else:
        origin = mu.mean(0)
        _, _, vh = torch.linalg.svd(mu - origin, full_matrices=False)
        basis, names = vh[:2].T, ("principal direction 1", "principal direction 2")
        if classifier is not None:
            raise ValueError("decision boundaries (`classifier`) are drawn only for 2-D features")
    p_clean = ((h - origin) @ basis).numpy()
    p_mix = ((hm - origin) @ basis).numpy()
    p_mu = ((mu - origin) @ basis).numpy()
    lam = geometry.lam.detach().double().cpu().numpy()
    k = mu.shape[0]
    lab = None if labels is None else check_tensor(labels, "labels", ndim=1, floating=False).cpu().numpy()
    if lab is not None and lab.shape[0] != p_clean.shape[0]:
        raise ValueError(
            f"`labels` must have {p_clean.shape[0]} entries (the clean samples), got {lab.shape[0]}"
        )
    box = float(np.abs(np.concatenate([p_clean, p_mix])).max()) * 1.1
    bounds = []
    if classifier is not None:
        w = classifier.weight.detach().double().cpu().numpy()
        b = np.zeros(k) if classifier.bias is None else classifier.bias.detach().double().cpu().numpy()
        for a in range(k):
            for c in range(a + 1, k):
                nrm, off = w[a] - w[c], b[a] - b[c]
                if not np.any(nrm):
                    continue
                p0 = -off * nrm / (nrm @ nrm)
                u = np.array([-nrm[1], nrm[0]]) / np.linalg.norm(nrm)
                bounds.append(p0[None, :] + np.array([-3.0, 3.0])[:, None] * box * u[None, :])
    lo, hi = geometry.lam_range
    title = title or f"Cross-class mixes, lambda in [{lo:.2f}, {hi:.2f}]"
    fig, ax = _plot.new_figure(backend, ax, figsize=(5.5, 5))
    if backend == "matplotlib":
        groups = (
            [(p_clean, "clean features")]
            if lab is None
            else [(p_clean[lab == c], f"class {c}") for c in range(k)]
        )
        for i, (pts, name) in enumerate(groups):
            ax.scatter(
                *pts.T, s=6, alpha=0.5, color=_plot.color(i) if lab is not None else "gray", label=name
            )
        sc = ax.scatter(*p_mix.T, c=lam, s=3, cmap="viridis", vmin=lo, vmax=hi, label="cross-class mixes")
        fig.colorbar(sc, ax=ax).set_label("lambda (weight on the first sample)")
        ax.scatter(*p_mu.T, c="k", marker="x", s=60, label="class means")
        for a in range(k):
            for c in range(a + 1, k):
                ax.plot(*p_mu[[a, c]].T, "k:", lw=1)
        for i, pts in enumerate(bounds):
            ax.plot(*pts.T, "r-", lw=0.8, label="decision boundaries" if i == 0 else None)
        ax.set(xlim=(-box, box), ylim=(-box, box), aspect="equal")
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=names[0], ylabel=names[1])
    import plotly.graph_objects as go

    if lab is None:
        fig.add_trace(
            go.Scatter(
                x=p_clean[:, 0],
                y=p_clean[:, 1],
                mode="markers",
                name="clean features",
                marker=dict(size=4, color="gray", opacity=0.5),
            )
        )
    else:
        for c in range(k):
            pts = p_clean[lab == c]
            fig.add_trace(
                go.Scatter(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    mode="markers",
                    name=f"class {c}",
                    marker=dict(size=4, color=_plot.color(c), opacity=0.5),
                )
            )
    fig.add_trace(
        go.Scatter(
            x=p_mix[:, 0],
            y=p_mix[:, 1],
            mode="markers",
            name="cross-class mixes",
            marker=dict(
                size=3,
                color=lam,
                colorscale="Viridis",
                cmin=lo,
                cmax=hi,
                colorbar=dict(title=dict(text="lambda"), x=1.02, len=0.6, y=0.3),
            ),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=p_mu[:, 0],
            y=p_mu[:, 1],
            mode="markers",
            name="class means",
            marker=dict(size=12, symbol="x", color="black"),
        )
    )
    seg_x, seg_y = [], []
    for a in range(k):
        for c in range(a + 1, k):
            seg_x += [p_mu[a, 0], p_mu[c, 0], None]
            seg_y += [p_mu[a, 1], p_mu[c, 1], None]
    fig.add_trace(
        go.Scatter(
            x=seg_x,
            y=seg_y,
            mode="lines",
            name="segments between means",
            line=dict(color="black", dash="dot", width=1),
        )
    )
    if bounds:
        bx, by = [], []
        for pts in bounds:
            bx += [pts[0, 0], pts[1, 0], None]
            by += [pts[0, 1], pts[1, 1], None]
        fig.add_trace(
            go.Scatter(x=bx, y=by, mode="lines", name="decision boundaries", line=dict(color="red", width=1))
        )
    fig.update_xaxes(range=[-box, box])
    fig.update_yaxes(range=[-box, box], scaleanchor="x", scaleratio=1)
    fig.update_layout(height=500, width=600, legend=dict(x=1.02, y=1.0))
    return _plot.finish(fig, backend, title=title, xlabel=names[0], ylabel=names[1])
