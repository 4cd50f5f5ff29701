r"""Landscapes for ParaView: :class:`Plane` and :class:`Trajectory` results as VTK XML files.

Written with `pyevtk <https://github.com/pyscience-projects/pyevtk>`_ (the optional extra
``export``: ``pip install "lossviz[export]"``), binary VTK XML that ParaView, VisIt and PyVista
open directly:

* a :class:`Plane` becomes a **structured grid** (``.vts``): point ``(i, j)`` sits at
  ``(alphas[i], betas[j], height[i, j])``, with the loss, every metric and the divergence mask as
  point data, so ParaView draws the landscape as a surface (``height="loss"``, the default), its
  logarithm (``height="log10"``) or a flat map coloured by the loss (``height=None``);
* a :class:`Trajectory` becomes one **poly line** (``.vtu``) through its first two coordinates, at
  height 0 or at the losses you pass (``loss=``, one per point, e.g. from the same plane), with the
  step and the residual as point data.

Non-finite losses (diverged points) cannot be drawn as heights: they are placed at the largest
finite height and marked by the point data ``diverged`` = 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._result import require_extra
from ._grid import Plane
from ._trajectory import Trajectory

__all__ = ["to_vtk"]


def _pyevtk_hl():
    require_extra("pyevtk", "export", "writing VTK files for ParaView")
    from pyevtk import hl

    return hl


def _stem(path) -> str:
    """pyevtk appends the extension itself: strip one the caller gave."""
    p = Path(path)
    if p.suffix in (".vts", ".vtu", ".vtk"):
        p = p.with_suffix("")
    return str(p)


def _field(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64))


def to_vtk(
    result: Plane | Trajectory,
    path: str | os.PathLike,
    *,
    height: str | None = "loss",
    loss=None,
) -> Path:
    r"""Write a landscape for ParaView (binary VTK XML) and return the path written.

    Parameters
    ----------
    result : Plane or Trajectory
    path : str or Path
        The extension is chosen by the kind of data (``.vts`` for a plane, ``.vtu`` for a
        trajectory) and appended; a ``.vts``/``.vtu``/``.vtk`` suffix given is replaced.
    height : ``"loss"`` (default), ``"log10"`` or None
        Plane only: the third coordinate of each grid point (the loss, ``log10`` of the loss, or
        0 for a flat map). The loss is point data in every case.
    loss : array of shape (len(coords),), optional
        Trajectory only: the heights of the path's points (default 0).

    Examples
    --------
    >>> import tempfile, torch
    >>> from lossviz import landscape
    >>> net = torch.nn.Linear(2, 1)
    >>> x, y = torch.randn(16, 2), torch.randn(16, 1)
    >>> res = landscape.plane(net, torch.nn.functional.mse_loss, (x, y), steps=5)
    >>> landscape.to_vtk(res, tempfile.mkdtemp() + "/plane").suffix
    '.vts'
    """
    if isinstance(result, Plane):
        if height not in ("loss", "log10", None):
            raise ValueError(f"`height` must be 'loss', 'log10' or None, got {height!r}")
        if loss is not None:
            raise ValueError("`loss` is for a Trajectory; a Plane carries its own losses")
        hl = _pyevtk_hl()
        L = np.asarray(result.loss, dtype=np.float64)
        bad = ~np.isfinite(L)
        if height is None:
            z = np.zeros_like(L)
        else:
            z = np.log10(np.where(L > 0, L, np.nan)) if height == "log10" else L.copy()
            finite = np.isfinite(z)
            z[~finite] = z[finite].max() if finite.any() else 0.0
        A, B = np.meshgrid(np.asarray(result.alphas, float), np.asarray(result.betas, float), indexing="ij")
        shape = L.shape + (1,)
        data = {
            "loss": _field(np.where(bad, np.nan, L)).reshape(shape),
            "diverged": _field(bad).reshape(shape),
        }
        for name, m in result.metrics.items():
            data[str(name)] = _field(m).reshape(shape)
        out = hl.gridToVTK(
            _stem(path),
            _field(A).reshape(shape),
            _field(B).reshape(shape),
            _field(z).reshape(shape),
            pointData=data,
        )
        return Path(out)
    if isinstance(result, Trajectory):
        if height != "loss":
            raise ValueError("`height` is for a Plane; give a Trajectory's heights with `loss=`")
        hl = _pyevtk_hl()
        c = np.asarray(result.coords, dtype=np.float64)
        T = c.shape[0]
        if loss is None:
            z = np.zeros(T)
        else:
            z = np.asarray(loss, dtype=np.float64).reshape(-1)
            if z.shape[0] != T:
                raise ValueError(f"`loss` must have one value per trajectory point ({T}), got {z.shape[0]}")
        steps = np.asarray(result.steps, dtype=np.float64)
        if steps.shape[0] != T:
            steps = np.arange(T, dtype=np.float64)
        data = {"step": _field(steps), "residual": _field(result.residual)}
        if loss is not None:
            data["loss"] = _field(z)
        out = hl.polyLinesToVTK(
            _stem(path),
            _field(c[:, 0]),
            _field(c[:, 1]),
            _field(z),
            pointsPerLine=np.array([T]),
            pointData=data,
        )
        return Path(out)
    raise TypeError(f"`result` must be a landscape Plane or Trajectory, got {type(result).__name__}")
