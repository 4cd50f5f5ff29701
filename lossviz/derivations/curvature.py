r"""Symbolic curvature derivations for notebooks L03 and L06 (sympy, lambdified for drawing).

* :func:`scalar_network`: the Hessian of ``L(w) = (prod_i w_i - y)^2 / 2`` and its form on the
  minimiser manifold ``prod_i w_i = y``: ``H = grad f grad f^T``, one non-zero eigenvalue
  ``y^2 sum_i 1/w_i^2`` (the "sharpness of the gradient flow solution" of Kreisler et al. 2023,
  arXiv:2305.13064).
* :func:`saddle_2d`: ``f(x, y) = x^2/2 + eps (y^4/4 - y^2/2)``, its critical points and Hessian
  eigenvalues, and the per-step escape factors of gradient descent and (saddle-free) Newton near
  the saddle (Dauphin et al. 2014, arXiv:1406.2572; Pascanu et al. 2014, arXiv:1405.4604).

The unit tests (tests/test_derivations_curvature.py) check each symbolic result against the
numeric lossviz implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

__all__ = ["ScalarNetworkDerivation", "scalar_network", "SaddleDerivation", "saddle_2d"]


@dataclass(frozen=True)
class ScalarNetworkDerivation:
    """Symbols, expressions and lambdified functions for the depth-``D`` scalar network.

    Attributes
    ----------
    w : tuple of sympy symbols ``w_1..w_D``; ``y`` the target symbol.
    loss : ``(prod w - y)^2 / 2``.
    hessian : the ``D x D`` sympy Hessian of ``loss``.
    hessian_on_manifold : ``hessian`` with ``prod w`` replaced by ``y``.
    sharpness_on_manifold : ``y^2 sum 1/w_i^2``.
    hessian_fn, sharpness_fn : ``lambdify``'d ``(w_1, ..., w_D, y) -> value``.
    """

    w: tuple[Any, ...]
    y: Any
    loss: Any
    hessian: Any
    hessian_on_manifold: Any
    sharpness_on_manifold: Any
    hessian_fn: Any
    sharpness_fn: Any


def scalar_network(depth: int) -> ScalarNetworkDerivation:
    r"""Hessian of the scalar-network loss and its top eigenvalue on the minimiser manifold.

    With ``f = prod_i w_i``: ``d^2 L / dw_i dw_j = (f/w_i)(f/w_j) + (f - y) d^2 f / dw_i dw_j``;
    on ``f = y`` the second term vanishes, leaving the rank-one ``g g^T`` with ``g_i = y / w_i``
    and eigenvalue ``|g|^2 = y^2 sum_i 1/w_i^2``.

    >>> d = scalar_network(3)
    >>> float(d.sharpness_fn(1.0, 1.0, 5.0, 5.0))
    51.0
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"`depth` must be a positive integer, got {depth!r}")
    w = sp.symbols(f"w1:{depth + 1}", nonzero=True, real=True)
    y = sp.Symbol("y", nonzero=True, real=True)
    f = sp.Mul(*w)
    loss = (f - y) ** 2 / 2
    H = sp.hessian(loss, w)
    # on the manifold, substitute f -> y: write H as g g^T + (f - y) Hf and drop the second term
    g = sp.Matrix([f / wi for wi in w])
    Hf = sp.hessian(f, w)
    assert sp.simplify(H - (g * g.T + (f - y) * Hf)) == sp.zeros(depth, depth)
    g_on = sp.Matrix([y / wi for wi in w])
    H_on = g_on * g_on.T
    sharp = sp.simplify(y**2 * sum(1 / wi**2 for wi in w))
    return ScalarNetworkDerivation(
        w=tuple(w),
        y=y,
        loss=loss,
        hessian=H,
        hessian_on_manifold=H_on,
        sharpness_on_manifold=sharp,
        hessian_fn=sp.lambdify((*w, y), H, "numpy"),
        sharpness_fn=sp.lambdify((*w, y), sharp, "numpy"),
    )


@dataclass(frozen=True)
class SaddleDerivation:
    """The 2-D saddle ``f = x^2/2 + eps (y^4/4 - y^2/2)``.

    Attributes
    ----------
    x, y, eps : symbols; ``f``, ``gradient`` (2-vector), ``hessian`` (2x2).
    critical_points : list of dicts ``{x: ..., y: ...}``.
    eigenvalues : list (per critical point) of Hessian eigenvalues.
    gd_escape_factor : ``y_{t+1} / y_t`` of gradient descent with step ``lr`` linearised at the
        saddle: ``1 + lr eps``.
    sfn_escape_factor : the same for saddle-free Newton with damping ``delta``:
        ``1 + eps / (eps + delta)`` (``-> 2``: the distance to the saddle doubles every step).
    newton_factor : for Newton: ``0`` (it jumps onto the saddle in the linearisation).
    f_fn, gradient_fn, hessian_fn : ``lambdify``'d ``(x, y, eps) -> value`` (numpy, vectorised).
    """

    x: Any
    y: Any
    eps: Any
    f: Any
    gradient: Any
    hessian: Any
    critical_points: list
    eigenvalues: list
    gd_escape_factor: Any
    sfn_escape_factor: Any
    newton_factor: Any
    lr: Any
    delta: Any
    f_fn: Any
    gradient_fn: Any
    hessian_fn: Any


def saddle_2d() -> SaddleDerivation:
    r"""Critical points, curvature and escape rates of ``f = x^2/2 + eps (y^4/4 - y^2/2)``.

    Critical points: the saddle ``(0, 0)`` with eigenvalues ``(1, -eps)`` and the minima
    ``(0, +-1)`` with ``(1, 2 eps)`` and ``f = -eps/4``. Near the saddle, ``y`` evolves linearly:
    GD multiplies it by ``1 + lr eps`` per step (and ``lr < 2`` is forced by the ``x`` curvature
    1), so escaping from ``|y_0|`` to ``O(1)`` takes about ``log(1/|y_0|) / log(1 + 2 eps)``
    steps; saddle-free Newton multiplies it by about 2; Newton maps it to 0.

    >>> d = saddle_2d()
    >>> d.critical_points[0], d.eigenvalues[0]
    ({x: 0, y: 0}, {1: 1, -epsilon: 1})
    """
    x, y = sp.symbols("x y", real=True)
    eps, lr, delta = sp.symbols("epsilon eta delta", positive=True)
    f = x**2 / 2 + eps * (y**4 / 4 - y**2 / 2)
    grad = sp.Matrix([sp.diff(f, x), sp.diff(f, y)])
    H = sp.hessian(f, (x, y))
    crit = sp.solve(list(grad), [x, y], dict=True)
    crit = sorted(crit, key=lambda c: float(c[y]))
    crit = [crit[1], crit[0], crit[2]]  # saddle first, then y = -1, y = +1
    eigs = [H.subs(c).eigenvals() for c in crit]
    gy = sp.diff(f, y)
    hyy = sp.diff(f, y, 2)
    # linearise y -> y + step(y) around y = 0: the factor is d(y_next)/dy at 0
    gd_next = y - lr * gy
    sfn_next = y - gy / (sp.Abs(hyy) + delta)
    newton_next = y - gy / hyy
    at0 = {y: 0}
    gd_factor = sp.simplify(sp.diff(gd_next, y).subs(at0))
    sfn_factor = sp.simplify(sp.diff(sfn_next.subs(sp.Abs(hyy), -hyy), y).subs(at0))  # |hyy| = -hyy near 0
    newton_factor = sp.simplify(sp.diff(newton_next, y).subs(at0))
    return SaddleDerivation(
        x=x,
        y=y,
        eps=eps,
        f=f,
        gradient=grad,
        hessian=H,
        critical_points=crit,
        eigenvalues=eigs,
        gd_escape_factor=gd_factor,
        sfn_escape_factor=sfn_factor,
        newton_factor=newton_factor,
        lr=lr,
        delta=delta,
        f_fn=sp.lambdify((x, y, eps), f, "numpy"),
        gradient_fn=sp.lambdify((x, y, eps), grad, "numpy"),
        hessian_fn=sp.lambdify((x, y, eps), H, "numpy"),
    )
