r"""An optimiser trajectory projected onto two directions (PCA of the path, or given ones).

With the origin at the model's current parameters :math:`\theta_c` and
:math:`\delta_t = \theta_t - \theta_c`, the PCA directions are the top principal axes of the
centred matrix of the :math:`\delta_t`, and ``coords[t]`` solves
:math:`\min_c \|D^\top c - \delta_t\|`.

Reference: Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein, "Visualizing the Loss
Landscape of Neural Nets", NeurIPS 2018, arXiv:1712.09913 (Section 7, PCA directions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_int, check_module
from ._directions import Directions, _cosines, as_directions

__all__ = ["Trajectory", "trajectory"]


@dataclass(frozen=True, repr=False)
class Trajectory(Result):
    """A parameter trajectory projected onto two (or more) directions.

    ``coords[t]`` are the coordinates of ``theta_t - theta_center`` in the basis ``directions``
    (least squares; an orthonormal PCA basis makes them plain projections). ``residual[t]`` is the
    relative norm of the part of ``theta_t - theta_center`` outside their span.
    ``explained_variance`` is the fraction of the (centred) variance of the path captured by each
    PCA direction (NaN for given directions).
    """

    coords: np.ndarray
    directions: Directions
    explained_variance: np.ndarray
    residual: np.ndarray
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def extent(self, margin: float = 0.25) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((a0, a1), (b0, b1))`` covering the path and the origin with a relative margin."""
        out = []
        for k in range(2):
            lo, hi = min(0.0, float(self.coords[:, k].min())), max(0.0, float(self.coords[:, k].max()))
            pad = margin * max(hi - lo, 1e-12)
            out.append((lo - pad, hi + pad))
        return tuple(out)

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_trajectory` (``ax=``: matplotlib)."""
        from .plotting import plot_trajectory

        return plot_trajectory(self, backend=backend, ax=ax, **kw)


def _flatten_path(model, path) -> torch.Tensor:
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    if isinstance(path, torch.Tensor):
        if path.ndim != 2 or path.shape[1] != total:
            raise ValueError(f"`path` as a tensor must have shape (T, {total}), got {tuple(path.shape)}")
        return path.detach().to(torch.float64)
    if not isinstance(path, Sequence) or len(path) == 0:
        raise ValueError(
            "`path` must be a non-empty sequence of parameter dicts / flat tensors or a (T, P) tensor"
        )
    rows = []
    for t, item in enumerate(path):
        if isinstance(item, Mapping):
            missing = [k for k in params if k not in item]
            if missing:
                raise ValueError(f"`path[{t}]` lacks parameters {missing[:3]}")
            for k, p in params.items():
                if tuple(item[k].shape) != tuple(p.shape):
                    raise ValueError(
                        f"`path[{t}][{k!r}]` has shape {tuple(item[k].shape)}, expected {tuple(p.shape)}"
                    )
            rows.append(torch.cat([item[k].detach().reshape(-1).to(torch.float64) for k in params]))
        elif isinstance(item, torch.Tensor) and item.ndim == 1 and item.numel() == total:
            rows.append(item.detach().to(torch.float64))
        else:
            raise ValueError(
                f"`path[{t}]` must be a dict name -> tensor or a flat tensor with {total} entries"
            )
    return torch.stack(rows)


def trajectory(
    model: nn.Module,
    path,
    directions=None,
    *,
    n: int = 2,
    steps: Sequence[int] | None = None,
) -> Trajectory:
    r"""Project an optimiser trajectory onto its top PCA directions (Li et al. 2018) or given ones.

    The origin is the model's *current* parameters :math:`\theta_c` (usually the end of training):
    with :math:`\delta_t = \theta_t - \theta_c`, the PCA directions are the top-``n`` principal
    axes of the centred matrix of the :math:`\delta_t` (as in Li et al.'s code), unit-norm, and
    ``coords[t]`` solves :math:`\min_c \|D^\top c - \delta_t\|` (the projection for an orthonormal
    basis). Draw the path over :func:`plane` computed with ``directions=result.directions`` and
    ``extent=result.extent()``, both centred on the same model.

    Parameters
    ----------
    model : nn.Module
        Supplies parameter names and the origin; only read.
    path : sequence of dicts name -> tensor (e.g. ``state_dict`` snapshots recorded by
        :class:`lossviz.train.Recorder`; buffers are ignored), of flat tensors, or a ``(T, P)`` tensor
    directions : Directions or two dicts / flat tensors, optional (default: PCA)
    n : number of PCA directions
    steps : optional step numbers of the snapshots (kept on the result for plotting)
    """
    check_module(model, "model")
    n = check_int(n, "n", minimum=1)
    X = _flatten_path(model, path)
    params = dict(model.named_parameters())
    center = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in params.values()]).to(X.device)
    delta = X - center
    if directions is None:
        if X.shape[0] < 2:
            raise ValueError("`path` needs at least 2 snapshots for PCA directions")
        centred = delta - delta.mean(0, keepdim=True)
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        if vh.shape[0] < n:
            raise ValueError(f"`path` has only {vh.shape[0]} independent snapshots, fewer than n={n}")
        D = vh[:n]
        # sign convention: the path starts at positive coordinates
        signs = torch.sign(D @ delta[0])
        signs[signs == 0] = 1
        D = D * signs[:, None]
        var = s**2
        explained = (var[:n] / var.sum().clamp_min(1e-300)).cpu().numpy()
        vecs = []
        for k in range(n):
            out, i = {}, 0
            for name, p in params.items():
                out[name] = D[k, i : i + p.numel()].reshape(p.shape).to(device=p.device, dtype=p.dtype)
                i += p.numel()
            vecs.append(out)
        dirs = Directions(tuple(vecs), "pca", (), None, _cosines(vecs))
    else:
        dirs = as_directions(model, directions, len(directions) if hasattr(directions, "__len__") else 2)
        D = dirs.flat().to(torch.float64).to(X.device)
        explained = np.full(len(dirs), np.nan)
    coords = torch.linalg.lstsq(D.T, delta.T).solution.T
    resid = (delta - coords @ D).norm(dim=1) / delta.norm(dim=1).clamp_min(1e-300)
    step_arr = np.arange(X.shape[0]) if steps is None else np.asarray(list(steps))
    if len(step_arr) != X.shape[0]:
        raise ValueError(f"`steps` has {len(step_arr)} entries but `path` has {X.shape[0]} snapshots")
    return Trajectory(coords.cpu().numpy(), dirs, explained, resid.cpu().numpy(), step_arr)
