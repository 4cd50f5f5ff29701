"""Symbolic derivations for the NTK track (sympy).

* :func:`arccos_kernels` derives the ReLU dual activations (arc-cosine kernels of degree 1 and 0,
  Cho & Saul, "Kernel Methods for Deep Learning", NeurIPS 2009) by integrating over the plane in
  polar coordinates, for unit variances and correlation ``cos(theta)``:
  ``E[relu(u) relu(v)] = (sin t + (pi - t) cos t) / (2 pi)`` and ``E[relu'(u) relu'(v)] = (pi - t) / (2 pi)``.
* :func:`circle_kernels` composes them into the NNGP and NTK of a deep ReLU network (NTK
  parametrisation, ``depth`` hidden layers) for inputs on the unit circle as functions of the angle
  ``gamma`` between them, and turns them into numpy functions (``lambdify``) for drawing; the unit tests check these against
  :func:`lossviz.ntk.analytic`.
* :func:`feature_update_scaling`: power counting for how much one SGD step moves a hidden feature
  as a function of width in the NTK, standard and maximal-update parametrisations.

Example
-------
>>> from lossviz.derivations import ntk as dn
>>> e, ed, t = dn.arccos_kernels()
>>> import sympy as sp
>>> sp.simplify(e.subs(t, 0))  # E[relu(u)^2] = 1/2 for unit variance
1/2
"""

from __future__ import annotations

import functools

import sympy as sp

__all__ = ["arccos_kernels", "circle_kernels", "feature_update_scaling"]


@functools.lru_cache(maxsize=1)
def arccos_kernels() -> tuple[sp.Expr, sp.Expr, sp.Symbol]:
    """Derive ``(E[relu relu], E[relu' relu'], theta)`` for unit-variance Gaussians with correlation cos(theta).

    Write ``u = z1``, ``v = cos(t) z1 + sin(t) z2`` with ``(z1, z2) = r (cos p, sin p)``: then
    ``u = r cos p`` and ``v = r cos(p - t)``, both positive for ``p`` in ``(t - pi/2, pi/2)``.
    The radial integrals are ``int r^3 e^{-r^2/2} dr = 2`` and ``int r e^{-r^2/2} dr = 1``.
    """
    t, p, r = sp.symbols("theta phi r", nonnegative=True)
    radial3 = sp.integrate(r**3 * sp.exp(-(r**2) / 2), (r, 0, sp.oo))
    radial1 = sp.integrate(r * sp.exp(-(r**2) / 2), (r, 0, sp.oo))
    angular = sp.integrate(sp.cos(p) * sp.cos(p - t), (p, t - sp.pi / 2, sp.pi / 2))
    e = sp.simplify(radial3 * angular / (2 * sp.pi))
    ed = sp.simplify(radial1 * (sp.pi / 2 - (t - sp.pi / 2)) / (2 * sp.pi))
    return e, ed, t


def circle_kernels(depth: int, w_std=None, b_std=None):
    """NNGP and NTK of a depth-``depth`` ReLU MLP (NTK parametrisation) on the unit circle.

    Inputs ``x = (cos a, sin a)`` (``d_in = 2``, input kernel ``x . x' / 2``); the kernels depend only on
    the angle ``gamma`` between the two inputs. Returns ``(nngp, ntk, gamma, f_nngp, f_ntk)`` with
    sympy expressions and their numpy ``lambdify``'d versions. Defaults: ``w_std = sqrt(2)``,
    ``b_std = 1/10`` (Jacot et al. 2018, Figure 1).
    """
    w_std = sp.sqrt(2) if w_std is None else w_std
    b_std = sp.Rational(1, 10) if b_std is None else b_std
    if int(depth) < 1:
        raise ValueError(f"`depth` must be >= 1, got {depth}")
    e, ed, t = arccos_kernels()
    g = sp.Symbol("gamma", real=True)
    w2, b2 = sp.sympify(w_std) ** 2, sp.sympify(b_std) ** 2
    q12, q11 = sp.cos(g) / 2, sp.Rational(1, 2)
    s12, s11 = w2 * q12 + b2, w2 * q11 + b2
    th = s12
    for _ in range(int(depth)):
        theta = sp.acos(s12 / s11)
        e12 = s11 * e.subs(t, theta)  # scaled to variance s11 (equal on the circle)
        ed12 = ed.subs(t, theta)
        th = w2 * e12 + b2 + w2 * ed12 * th
        s12 = w2 * e12 + b2
        s11 = w2 * s11 / 2 + b2  # E[relu(u)^2] = s11 / 2
    f_nngp = sp.lambdify(g, s12, "numpy")
    f_ntk = sp.lambdify(g, th, "numpy")
    return s12, th, g, f_nngp, f_ntk


def feature_update_scaling(parametrization: str):
    """Width scaling of one SGD step's change of a first-hidden-layer feature, per coordinate.

    Heuristic power counting (Yang & Hu, "Feature Learning in Infinite-Width Neural Networks",
    2021, arXiv:2011.14522) for ``f = m_out v . h_2``, ``h_2 = phi(m W h_1)``, width ``n``, all
    trainable tensors with O(1) entries and learning-rate multiplier ``c`` on the input layer:

    * ``df/dh_2`` has coordinates of size ``m_out``;
    * back through ``m W^T`` (``m = n^{-1/2}``, ``n`` random-sign terms): ``df/dh_1 ~ m_out``;
    * the input-layer update ``c eta (df/dh_1) x^T`` changes ``h_1`` by ``c m_out`` per coordinate.

    Returns ``(expr, n)``: ``expr = c * m_out`` as a power of the width symbol ``n``
    (NTK: ``n^{-1/2}``; muP: ``n * n^{-1} = 1``; standard: ``m_out = 1`` on unnormalised weights but
    ``n^{-1/2}`` weights, i.e. ``n^{-1/2}`` too at a fixed learning rate).
    """
    n = sp.Symbol("n", positive=True)
    if parametrization == "ntk":
        c, m_out = sp.Integer(1), 1 / sp.sqrt(n)
    elif parametrization == "mup":
        c, m_out = n, 1 / n
    elif parametrization == "standard":
        c, m_out = sp.Integer(1), 1 / sp.sqrt(n)
    else:
        raise ValueError(f"`parametrization` must be 'ntk', 'mup' or 'standard', got {parametrization!r}")
    return sp.powsimp(c * m_out), n
