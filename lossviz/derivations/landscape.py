"""Symbolic derivations for the landscape notebooks (L01): the logistic-loss gradient and its
large-step-size limit (Tyurin 2024, "From Logistic Regression to the Perceptron Algorithm:
Exploring Gradient Descent with Large Step Sizes", arXiv:2412.03177).

>>> from lossviz.derivations import landscape as dl
>>> d = dl.logistic_gradient(dim=2)
>>> d["limit"]
{'positive margin': 0, 'zero margin': 1/2, 'negative margin': 1}
"""

from __future__ import annotations

import sympy as sp

__all__ = ["logistic_gradient", "sigmoid_limit", "quadratic_local_entropy"]


def sigmoid_limit() -> dict[str, sp.Expr]:
    r"""The weight :math:`\sigma(-\gamma m)` of a sample with margin :math:`m` as :math:`\gamma\to\infty`.

    It is the Heaviside step :math:`H(-m)` with :math:`H(0) = \sigma(0) = 1/2`: a correctly
    classified sample stops contributing, a misclassified one contributes fully, a sample exactly
    on the boundary contributes one half (the tie rule of the limiting batch perceptron).
    """
    g = sp.Symbol("gamma", positive=True)
    mp = sp.Symbol("m", positive=True)
    mn = sp.Symbol("m", negative=True)
    weight = lambda m: 1 / (1 + sp.exp(g * m))  # noqa: E731  sigma(-gamma m)
    return {
        "positive margin": sp.limit(weight(mp), g, sp.oo),
        "zero margin": sp.limit(weight(sp.Integer(0)), g, sp.oo),
        "negative margin": sp.limit(weight(mn), g, sp.oo),
    }


def logistic_gradient(dim: int = 3) -> dict:
    r"""Per-sample logistic loss :math:`\ell(w) = \log(1 + e^{-y\langle x, w\rangle})`, its gradient.

    Returns a dict with the symbols ``x``, ``w``, ``y``, the expressions ``loss`` and ``grad``
    (a list), the gradient in closed form ``closed = -y x sigma(-y <x, w>)``, ``numeric`` (the
    gradient lambdified to numpy: ``numeric(x_vec, w_vec, y)``), and the large-step ``limit``
    (:func:`sigmoid_limit`).
    """
    x = sp.symbols(f"x1:{dim + 1}", real=True)
    w = sp.symbols(f"w1:{dim + 1}", real=True)
    y = sp.Symbol("y", real=True)
    margin = y * sum(xi * wi for xi, wi in zip(x, w))
    loss = sp.log(1 + sp.exp(-margin))
    grad = [sp.simplify(sp.diff(loss, wi)) for wi in w]
    closed = [-y * xi / (1 + sp.exp(margin)) for xi in x]
    numeric = sp.lambdify((x, w, y), grad, "numpy")
    return {
        "x": x,
        "w": w,
        "y": y,
        "loss": loss,
        "grad": grad,
        "closed": closed,
        "numeric": numeric,
        "limit": {k: v for k, v in sigmoid_limit().items()},
    }


def quadratic_local_entropy() -> dict:
    r"""Local entropy of a quadratic well :math:`f = a x^2/2` (Chaudhari et al., Entropy-SGD, ICLR 2017).

    With the normalisation of :func:`lossviz.landscape.local_entropy`,
    :math:`f_{\gamma,T}(x) = -T \log\int e^{-(f(x') + \gamma(x - x')^2/2)/T}\,dx' + \frac{T}{2}\log\frac{2\pi T}{\gamma}`.
    Returns the symbols, the ``energy`` (the Gaussian integral done by sympy), its ``closed`` form
    :math:`\frac{a\gamma}{2(a+\gamma)}x^2 + \frac{T}{2}\log(1 + a/\gamma)`, the ``width_penalty``
    (the value at the minimum), the ``switch_temperature`` at which two wells with curvatures
    ``a_s`` (deeper by ``gap``) and ``a_w`` tie, and ``energy_fn(x, a, gamma, T)`` lambdified.

    >>> from lossviz.derivations import landscape as dl
    >>> d = dl.quadratic_local_entropy()
    >>> import sympy as sp
    >>> sp.simplify(d["energy"] - d["closed"])
    0
    """
    x, xp = sp.symbols("x x'", real=True)
    a, g, T, gap, a_s, a_w = sp.symbols("a gamma T Delta a_s a_w", positive=True)
    integrand = sp.exp(-(a * xp**2 / 2 + g * (x - xp) ** 2 / 2) / T)
    integral = sp.integrate(integrand, (xp, -sp.oo, sp.oo), conds="none")
    energy = sp.simplify(-T * sp.log(integral) + T / 2 * sp.log(2 * sp.pi * T / g))
    energy = sp.simplify(sp.expand_log(energy, force=True))
    closed = a * g * x**2 / (2 * (a + g)) + T / 2 * sp.log(1 + a / g)
    penalty = closed.subs(x, 0)
    t_switch = sp.solve(sp.Eq(penalty.subs(a, a_s) - penalty.subs(a, a_w), gap), T)[0]
    return {
        "x": x,
        "a": a,
        "gamma": g,
        "T": T,
        "energy": energy,
        "closed": closed,
        "width_penalty": penalty,
        "switch_temperature": sp.simplify(t_switch),
        "gap": gap,
        "a_s": a_s,
        "a_w": a_w,
        "energy_fn": sp.lambdify((x, a, g, T), closed, "numpy"),
    }
