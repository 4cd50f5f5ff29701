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

__all__ = ["logistic_gradient", "sigmoid_limit"]


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
