r"""Random calibrated margin losses (EnsLoss): a fresh convex calibrated loss for every batch.

Paper: Ben Dai and co-authors, "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing
Overfitting in Classification" (code: github.com/statmlben/ensLoss; arXiv id not verified here).

Background: a convex margin loss ``phi(z)`` (``z = y f(x)``, ``y`` in ``{-1, +1}``) is
classification-calibrated iff ``phi'(0) < 0`` (Bartlett, Jordan, McAuliffe 2006). So a
calibrated convex loss can be drawn through its DERIVATIVE: any non-decreasing function that is
negative (at 0, and here everywhere, so the loss is also decreasing).

Conventions (the authors' ``losses.py``):

* ``margins`` is a 1-D floating tensor of ``z = y f``; the derivative values ``g`` are drawn
  as ``g = max(sort(-exp(N(0, 1)_B)), clip)`` (``clip`` default ``-1``, so every value lies in
  ``[clip, 0)``: the lower half of the batch's margins gets ``clip`` in expectation, the rest
  values between ``clip`` and 0), assigned by the RANK of the margin (smallest margin -> most
  negative value), then ``g /= z`` where ``z > 1`` (so the derivative decays like ``1/z`` for
  confident points). Like BCE's ``-sigmoid(-z)``, the derivative is bounded by ``|clip|``. The result is negative and
  non-decreasing in ``z``: the piecewise-linear loss it integrates to is convex, decreasing and
  calibrated.
* ``ensloss`` returns ``reduce(g.detach() * z)``: its gradient in ``z`` is ``g``.
* Randomness only from the ``generator`` argument (a ``torch.Generator``; the global RNG is never
  touched); values are drawn on the generator's device and moved to the margins' device/dtype.
"""

from __future__ import annotations

from typing import Any

import torch

from .._validate import check_choice, check_float

__all__ = ["ensloss", "ensloss_derivatives", "integrate_derivatives"]


def _check_margins(margins: Any) -> torch.Tensor:
    if not isinstance(margins, torch.Tensor):
        raise TypeError(f"`margins` must be a torch.Tensor; got {type(margins).__name__}")
    if margins.ndim != 1 or margins.numel() == 0:
        raise ValueError(f"`margins` must be a non-empty 1-D tensor; got shape {tuple(margins.shape)}")
    if not margins.is_floating_point():
        raise ValueError(f"`margins` must be floating point; got {margins.dtype}")
    return margins


def _check_generator(generator: Any) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator; got {type(generator).__name__}")
    return generator


def ensloss_derivatives(
    margins: torch.Tensor, *, generator: torch.Generator, clip: float = -1.0
) -> torch.Tensor:
    """One random calibrated derivative ``phi'(z_i)`` per margin (no gradient).

    ``margins``: 1-D floating tensor of ``z = y f``. ``generator``: the only source of
    randomness. ``clip`` (< 0, default ``-1``): every drawn value is at least ``clip`` (at most
    ``|clip|`` in size) before the ``1/z`` step for ``z > 1``. Returns a tensor like ``margins``: negative and
    non-decreasing in the margin.
    """
    z = _check_margins(margins).detach()
    gen = _check_generator(generator)
    clip = check_float(clip, "clip")
    if not clip < 0:
        raise ValueError(f"`clip` must be negative (phi'(0) < 0 is the calibration condition); got {clip}")
    n = z.numel()
    draw = torch.randn(n, generator=gen, device=gen.device, dtype=torch.float64)
    g = torch.sort(-torch.exp(draw)).values.clamp(min=clip)
    g = g.to(device=z.device, dtype=z.dtype)
    order = torch.argsort(z, stable=True)
    out = torch.empty_like(z)
    out[order] = g
    big = z > 1
    out = torch.where(big, out / torch.where(big, z, torch.ones_like(z)), out)
    return out


def ensloss(
    margins: torch.Tensor,
    *,
    generator: torch.Generator,
    clip: float = -1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """EnsLoss of a batch: ``reduce(g.detach() * z)`` with ``g = ensloss_derivatives(z)``.

    Its gradient with respect to ``margins`` is ``g`` (divided by ``n`` for ``"mean"``).
    ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    g = ensloss_derivatives(margins, generator=generator, clip=clip)
    per = g * margins
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    return per


def integrate_derivatives(
    margins: torch.Tensor, derivatives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The piecewise-linear loss implied by derivative values at the margins.

    Sorts the margins, integrates the derivative (trapezoid rule) from the smallest margin,
    and shifts the loss so that it is ``0`` at the largest margin. Returns ``(z_sorted,
    phi)``: with EnsLoss derivatives ``phi`` is convex and decreasing (for the plots).
    """
    z = _check_margins(margins).detach()
    if not isinstance(derivatives, torch.Tensor) or derivatives.shape != z.shape:
        raise ValueError("`derivatives` must be a tensor of the margins' shape")
    order = torch.argsort(z, stable=True)
    zs, gs = z[order], derivatives.detach().to(z.dtype)[order]
    steps = 0.5 * (gs[1:] + gs[:-1]) * (zs[1:] - zs[:-1])
    phi = torch.cat([torch.zeros(1, dtype=z.dtype, device=z.device), torch.cumsum(steps, 0)])
    return zs, phi - phi[-1]
