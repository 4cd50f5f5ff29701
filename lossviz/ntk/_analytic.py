r"""Infinite-width NNGP kernel and NTK of a fully connected network, by the layer recursion.

With ``K_0(x, x') = x . x' / d_in`` and, for ``l = 1 .. depth + 1``,

.. math::

    \Sigma^{(l)} = \sigma_w^2\, \hat E_{l-1} + \sigma_b^2, \qquad
    \hat E_{l} = \mathbb E_{(u,v)\sim N(0, \Sigma^{(l)})}[\phi(u)\phi(v)],

    \dot\Sigma^{(l+1)} = \sigma_w^2\, \mathbb E[\phi'(u)\phi'(v)], \qquad
    \Theta^{(l+1)} = c_w(l+1) \hat E_l + c_b + \dot\Sigma^{(l+1)} \Theta^{(l)}.

The two Gaussian expectations are the *dual activations*: one table, :data:`DUAL_ACTIVATIONS`,
keyed by the activation names of :data:`lossviz.models.ACTIVATIONS` ("relu": arc-cosine kernels of
degree 1 and 0, Cho & Saul 2009; "erf": Williams 1997; "linear": the identity).

References: Arthur Jacot, Franck Gabriel, Clement Hongler, "Neural Tangent Kernel: Convergence
and Generalization in Neural Networks", NeurIPS 2018, arXiv:1806.07572; Jaehoon Lee et al., "Wide
Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent", NeurIPS 2019,
arXiv:1902.06720; Youngmin Cho and Lawrence K. Saul, "Kernel Methods for Deep Learning", NeurIPS
2009; Christopher K. I. Williams, "Computing with Infinite Networks", NeurIPS 1997.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor

__all__ = ["AnalyticNTK", "analytic", "DUAL_ACTIVATIONS"]


@dataclass(frozen=True, repr=False)
class AnalyticNTK(Result):
    """Infinite-width kernels of a fully connected network (float64).

    Attributes
    ----------
    nngp : tensor ``(n1, n2)``: the output covariance at initialisation (GP prior)
    ntk : tensor ``(n1, n2)``: the limiting neural tangent kernel (per output; the full kernel
        is ``ntk (x) I_o``)
    depth : number of hidden layers; activation, w_std, b_std, parametrization, widths, bias:
        the settings used.
    """

    nngp: torch.Tensor
    ntk: torch.Tensor
    depth: int
    activation: str
    w_std: float
    b_std: float
    parametrization: str
    widths: tuple | None
    bias: bool

    @property
    def kernel(self) -> torch.Tensor:
        return self.ntk

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Heatmap of the limit NTK (:func:`lossviz.ntk.plotting.plot_kernel`)."""
        from .plotting import plot_kernel

        return plot_kernel(self, backend=backend, ax=ax, **kw)


def _dual_linear(k12, k11, k22):
    return k12, torch.ones_like(k12)


def _dual_relu(k12, k11, k22):
    # arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009), written with in-place ops:
    # e = sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi), ed = (pi - t) / (2 pi)
    prod = (k11 * k22).clamp_min_(0.0).sqrt_()
    cos = torch.div(k12, prod.clamp_min(1e-300)).clamp_(-1.0, 1.0)
    pi_minus = torch.arccos(cos).neg_().add_(math.pi)
    sin = cos.square().neg_().add_(1.0).clamp_min_(0.0).sqrt_()
    e = torch.addcmul(sin, pi_minus, cos).mul_(prod).mul_(1 / (2 * math.pi))
    return e, pi_minus.mul_(1 / (2 * math.pi))


def _dual_erf(k12, k11, k22):
    # Williams 1997
    d = (1 + 2 * k11) * (1 + 2 * k22)
    e = (2 / math.pi) * torch.arcsin((2 * k12 / torch.sqrt(d)).clamp(-1.0, 1.0))
    ed = (4 / math.pi) / torch.sqrt(torch.clamp(d - 4 * k12 * k12, min=1e-300))
    return e, ed


#: Dual activations ``(k12, k11, k22) -> (E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for
#: ``(u, v) ~ N(0, [[k11, k12], [k12, k22]])``, keyed by names of :data:`lossviz.models.ACTIVATIONS`.
#: The only activation table of the NTK family: an activation has an analytic kernel iff it is here.
DUAL_ACTIVATIONS: dict[str, Callable] = {"relu": _dual_relu, "erf": _dual_erf, "linear": _dual_linear}


def _dual(activation, k12, k11, k22):
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)]; new tensors (``"linear"`` returns ``k12`` itself)."""
    return DUAL_ACTIVATIONS[activation](k12, k11, k22)


def analytic(
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    depth: int,
    activation: str = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    parametrization: str = "ntk",
    widths: int | Sequence[int] | None = None,
    bias: bool = True,
) -> AnalyticNTK:
    r"""Infinite-width NNGP kernel and NTK of an MLP by the layer recursion, in float64.

    ``depth`` counts the **hidden layers** (nonlinearities): the network is
    ``x -> [Dense -> phi] x depth -> Dense`` with ``depth + 1`` weight matrices (the paper's
    ``L = depth + 1``). With ``K_0(x, x') = x . x' / d_in`` and, for ``l = 1 .. depth + 1``,

    .. math::

        \Sigma^{(l)} = \sigma_w^2\, \hat E_{l-1} + \sigma_b^2, \qquad
        \hat E_0 = K_0, \quad
        \hat E_{l} = \mathbb E_{(u,v)\sim N(0, \Sigma^{(l)})}[\phi(u)\phi(v)],

        \dot\Sigma^{(l+1)} = \sigma_w^2\, \mathbb E[\phi'(u)\phi'(v)], \qquad
        \Theta^{(1)} = c_w(1) \hat E_0 + c_b, \quad
        \Theta^{(l+1)} = c_w(l+1) \hat E_l + c_b + \dot\Sigma^{(l+1)} \Theta^{(l)},

    returning ``nngp = Sigma^(depth+1)`` and ``ntk = Theta^(depth+1)``. In the NTK parametrisation
    ``c_w = sigma_w^2`` and ``c_b = sigma_b^2`` (so ``Theta^(l+1) = Sigma^(l+1) + dotSigma Theta^(l)``,
    Jacot et al. 2018, Theorem 1, with the weight scale written out as in Lee et al. 2019 and
    neural-tangents); in the standard parametrisation the gradients are not width-normalised,
    ``c_w(l) = n_{l-1}`` (``n_0 = d_in``, hidden ``widths``) and ``c_b = 1`` if there are biases:
    the kernel then grows with width (Sohl-Dickstein et al. 2020, arXiv:2001.07301).

    Dual activations (:data:`DUAL_ACTIVATIONS`): ReLU uses the arc-cosine kernels (Cho & Saul 2009)
    ``E[relu relu] = sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi)``,
    ``E[relu' relu'] = (pi - t) / (2 pi)``, ``t = arccos(k12 / sqrt(k11 k22))``; erf uses
    ``E = (2/pi) arcsin(2 k12 / sqrt((1 + 2 k11)(1 + 2 k22)))`` and
    ``E' = (4/pi) / sqrt((1 + 2 k11)(1 + 2 k22) - 4 k12^2)`` (Williams 1997); ``"linear"`` is the
    identity.

    The same description builds the finite network: :class:`lossviz.ntk.Architecture` (or
    :meth:`lossviz.ntk.ParametrizedMLP.analytic_kernel`) states width, depth and activation once.

    Parameters
    ----------
    x1 : tensor ``(n1, d_in)``; x2 : tensor ``(n2, d_in)``, optional (default ``x1``)
    depth : int >= 1, number of hidden layers
    activation : ``"relu"`` | ``"erf"`` | ``"linear"`` (the keys of :data:`DUAL_ACTIVATIONS`)
    w_std : float > 0 (``sigma_w``); b_std : float >= 0 (``sigma_b``)
    parametrization : ``"ntk"`` | ``"standard"`` (needs ``widths``)
    widths : int or sequence of ``depth`` ints: hidden widths (standard parametrisation only)
    bias : bool: whether the layers have biases (matters for the standard parametrisation)

    Returns
    -------
    AnalyticNTK with ``nngp`` and ``ntk`` (float64, on ``x1``'s device).

    Examples
    --------
    >>> x = torch.randn(4, 3)
    >>> lim = analytic(x, depth=2, w_std=2 ** 0.5)
    >>> lim.ntk.shape, lim.ntk.dtype
    (torch.Size([4, 4]), torch.float64)
    """
    depth = check_int(depth, "depth", minimum=1)
    check_choice(activation, "activation", tuple(DUAL_ACTIVATIONS))
    w_std = check_float(w_std, "w_std", positive=True)
    b_std = check_float(b_std, "b_std", minimum=0.0)
    if parametrization == "mup":
        raise ValueError(
            "`parametrization` 'mup' has no finite NTK limit (the kernel vanishes with width in muP; "
            "its infinite-width limit learns features): use 'ntk' or 'standard'"
        )
    check_choice(parametrization, "parametrization", ("ntk", "standard"))
    x1 = check_tensor(x1, "x1", ndim=2, floating=True)
    if x2 is not None:
        x2 = check_tensor(x2, "x2", ndim=2, floating=True)
        if x2.shape[1] != x1.shape[1]:
            raise ValueError(
                f"`x1` and `x2` must have the same input width, got {x1.shape[1]} and {x2.shape[1]}"
            )
    if parametrization == "standard":
        if widths is None:
            raise ValueError("`widths` (hidden widths) is required for parametrization='standard'")
        if isinstance(widths, int):
            widths = (widths,) * depth
        widths = tuple(check_int(w, "widths[i]", minimum=1) for w in widths)
        if len(widths) != depth:
            raise ValueError(
                f"`widths` must give {depth} hidden widths (one per hidden layer), got {len(widths)}"
            )
    elif widths is not None:
        raise ValueError("`widths` only applies to parametrization='standard' (the NTK limit is width-free)")
    bias = bool(bias)
    a = x1.to(torch.float64)
    b = a if x2 is None else x2.to(torch.float64)
    d_in = a.shape[1]
    k11 = (a * a).sum(1) / d_in
    k22 = k11 if x2 is None else (b * b).sum(1) / d_in
    ws2, bs2 = w_std**2, (b_std**2 if bias else 0.0)
    fan_ins = (d_in, *(widths or ()))

    def cw(layer):  # layer = 1 .. depth + 1
        return ws2 if parametrization == "ntk" else float(fan_ins[layer - 1])

    cb = bs2 if parametrization == "ntk" else (1.0 if bias else 0.0)
    # variances Sigma^(l)(x, x) of every layer first (vectors), then the (x, x') recursion in
    # blocks of rows that stay in cache (the recursion is elementwise given the variances)
    s11, s22 = [k11 * ws2 + bs2], [k22 * ws2 + bs2]
    for _ in range(depth):
        e11, _ = _dual(activation, s11[-1], s11[-1], s11[-1])
        s11.append(e11 * ws2 + bs2)
        if x2 is not None:
            e22, _ = _dual(activation, s22[-1], s22[-1], s22[-1])
            s22.append(e22 * ws2 + bs2)
    if x2 is None:
        s22 = s11
    n1, n2 = a.shape[0], b.shape[0]
    nngp = torch.empty(n1, n2, dtype=torch.float64, device=a.device)
    ntk_ = torch.empty_like(nngp)
    rows = max(1, 32768 // max(n2, 1))
    for r0 in range(0, n1, rows):
        r1 = min(n1, r0 + rows)
        k12 = a[r0:r1] @ b.T / d_in
        if x2 is None:  # the diagonal is the variance exactly: cos = 1 there (arccos is ill-conditioned at 1)
            k12.diagonal(offset=r0).copy_(k11[r0:r1])
        sig12 = k12 * ws2 + bs2
        theta = k12.mul_(cw(1)).add_(cb)  # k12 is not needed any more
        for layer in range(2, depth + 2):
            e12, ed12 = _dual(activation, sig12, s11[layer - 2][r0:r1, None], s22[layer - 2][None, :])
            theta = ed12.mul_(theta).mul_(ws2).add_(e12, alpha=cw(layer)).add_(cb)
            sig12 = e12.mul_(ws2).add_(bs2)
        nngp[r0:r1] = sig12
        ntk_[r0:r1] = theta
    return AnalyticNTK(
        nngp, ntk_, depth, activation, w_std, b_std if bias else 0.0, parametrization, widths, bias
    )
