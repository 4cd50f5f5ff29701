r"""Residual MLPs in Depth-muP (branch multiplier ``a / sqrt(L)``) or with unscaled branches.

A residual network with one layer per block, muP in width (the conventions of
:func:`lossviz.ntk.parametrize` with ``parametrization="mup"``: unit-variance trainable tensors,
the width scale in fixed multipliers of :class:`lossviz.ntk.ScaledLinear`, per-tensor learning
rates x width):

.. math::

    h_0 = \frac{1}{\sqrt{d}} W_{\mathrm{in}} x, \qquad
    h_{l+1} = h_l + m_L \, \frac{1}{\sqrt{n}} W_l \, \phi(h_l) \quad (l = 0..L-1), \qquad
    f(x) = \frac{1}{n} v^\top h_L,

with all of ``W_in``, ``W_l``, ``v`` drawn from ``N(0, 1)``. The *branch multiplier* ``m_L`` is
what the depth parametrisation decides:

=============  ==================  ==================================================
name           ``m_L``             learning rate in depth (on top of muP's x width)
=============  ==================  ==================================================
``depth_mup``  ``a / sqrt(L)``     SGD: not scaled; Adam: block weights x ``L^{-1/2}``
``standard``   ``a`` (unscaled)    not scaled
=============  ==================  ==================================================

(``a`` = ``block_multiplier``, default 1). With unscaled branches the residual stream's second
moment grows like ``(1 + a^2 E[phi(z)^2] / E[z^2])^L`` at initialisation (``1.5^L`` for ReLU), so
features explode with depth and the best learning rate shrinks with ``L``; with ``a / sqrt(L)``
the product ``(1 + c / L)^L -> e^c`` stays order one, and Depth-muP is the parametrisation in which
every block still learns features maximally as ``L -> infinity`` and the learning rate transfers
across depth (Greg Yang, Dingli Yu, Chen Zhu, Soufiane Hayou, "Tensor Programs VI: Feature
Learning in Infinite-Depth Neural Networks", ICLR 2024, arXiv:2310.02244; the SGD/Adam learning-rate
rules are their Depth-muP table for blocks of one layer).

Depth-muP is not an option of :func:`lossviz.ntk.parametrize`: that builds (and checks for) plain
chains ``Linear -> phi -> ... -> Linear``, and a residual connection would be a different network.
:class:`ResidualMLP` reuses its building block (:class:`ScaledLinear`) and its interface
(``lr_multipliers``, :meth:`ResidualMLP.param_groups`, ``features``/``hidden``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import models
from .._validate import check_choice, check_dtype, check_float, check_int
from ._parametrization import ScaledLinear

__all__ = ["ResidualMLP", "DEPTH_PARAMETRIZATIONS", "branch_multiplier"]

DEPTH_PARAMETRIZATIONS = ("depth_mup", "standard")
_OPTIMIZERS = ("sgd", "adam")


def branch_multiplier(depth: int, parametrization: str = "depth_mup", block_multiplier: float = 1.0) -> float:
    """The residual-branch multiplier ``m_L``: ``a / sqrt(L)`` (``"depth_mup"``) or ``a`` (``"standard"``).

    >>> branch_multiplier(16), branch_multiplier(16, "standard")
    (0.25, 1.0)
    """
    depth = check_int(depth, "depth", minimum=1)
    check_choice(parametrization, "parametrization", DEPTH_PARAMETRIZATIONS)
    a = check_float(block_multiplier, "block_multiplier", positive=True)
    return a / math.sqrt(depth) if parametrization == "depth_mup" else a


class ResidualMLP(nn.Module):
    r"""A residual MLP (one layer per block) in Depth-muP or with unscaled branches, muP in width.

    ``x -> h_0 = W_in x / sqrt(d_in) -> [h += m_L W_l phi(h) / sqrt(n)] x depth -> f = v . h / n``
    (the module docstring has the table). Every trainable tensor is drawn from ``N(0, 1)`` (biases
    zero, multiplier ``b_std``), the scales sit in the :class:`lossviz.ntk.ScaledLinear`
    multipliers, and :attr:`lr_multipliers` follow muP in width (x ``width`` on every weight, as
    :func:`lossviz.ntk.parametrize` does for ``"mup"``: input weights x ``fan_out``, hidden and
    readout weights x ``fan_in``, hidden biases x ``fan_out``, readout bias x 1) and, for Adam under
    Depth-muP, x ``L^{-1/2}`` on the block tensors (:meth:`param_groups`).

    Parameters
    ----------
    d_in, width, depth : int >= 1
        Input dimension ``d``, hidden width ``n`` and number of residual blocks ``L``.
    d_out : int
        Number of outputs (default 1).
    parametrization : ``"depth_mup"`` (default) | ``"standard"``
        Branch multiplier ``block_multiplier / sqrt(depth)`` or ``block_multiplier``.
    activation : a name of :data:`lossviz.models.ACTIVATIONS` (default ``"relu"``), applied before
        each block's layer (pre-activation: ``h + m_L W phi(h)``).
    block_multiplier : float > 0
        The constant ``a`` (default 1).
    bias : bool
        Trainable biases (default False: the paper's blocks have none); they start at zero and
        enter with multiplier ``b_std``.
    b_std : float >= 0
        Bias multiplier (default 1; only with ``bias=True``).
    seed : int
        The weights come from ``torch.Generator().manual_seed(seed)`` only (the global RNG is not
        used), drawn in ``dtype`` on ``device``.

    Attributes
    ----------
    input_layer, blocks (``nn.ModuleList``), readout : :class:`lossviz.ntk.ScaledLinear`
    branch_multiplier : float
    lr_multipliers : dict parameter name -> float (SGD)

    Examples
    --------
    >>> net = ResidualMLP(16, 64, 8, seed=0)
    >>> round(net.branch_multiplier, 4)  # 1 / sqrt(8)
    0.3536
    >>> net(torch.randn(5, 16)).shape
    torch.Size([5, 1])
    >>> [g["lr"] for g in net.param_groups(0.5)][:2]
    [32.0, 32.0]
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        depth: int,
        d_out: int = 1,
        *,
        parametrization: str = "depth_mup",
        activation: str = "relu",
        block_multiplier: float = 1.0,
        bias: bool = False,
        b_std: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        d_in = check_int(d_in, "d_in", minimum=1)
        width = check_int(width, "width", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        d_out = check_int(d_out, "d_out", minimum=1)
        check_choice(parametrization, "parametrization", DEPTH_PARAMETRIZATIONS)
        check_choice(activation, "activation", tuple(models.ACTIVATIONS))
        b_std = check_float(b_std, "b_std", minimum=0.0)
        if not isinstance(bias, bool):
            raise TypeError(f"`bias` must be a bool, got {type(bias).__name__}")
        dtype = check_dtype(dtype)
        seed = check_int(seed, "seed", minimum=0)
        self.parametrization = parametrization
        self.activation_name = activation
        self.act = models.activation(activation)
        self.block_multiplier = check_float(block_multiplier, "block_multiplier", positive=True)
        self.branch_multiplier = branch_multiplier(depth, parametrization, self.block_multiplier)
        self.width, self.depth, self.d_in, self.d_out = width, depth, d_in, d_out
        kw = dict(bias=bias, bias_multiplier=b_std, dtype=dtype, device=device)
        self.input_layer = ScaledLinear(d_in, width, weight_multiplier=1 / math.sqrt(d_in), **kw)
        self.blocks = nn.ModuleList(
            ScaledLinear(width, width, weight_multiplier=1 / math.sqrt(width), **kw) for _ in range(depth)
        )
        self.readout = ScaledLinear(width, d_out, weight_multiplier=1 / width, **kw)
        gen = torch.Generator(device=torch.device("cpu") if device is None else device).manual_seed(seed)
        with torch.no_grad():
            for layer in (self.input_layer, *self.blocks, self.readout):
                layer.weight.normal_(0.0, 1.0, generator=gen)
                if layer.bias is not None:
                    layer.bias.zero_()
        lrm = {"input_layer.weight": float(width)}
        if bias:
            lrm["input_layer.bias"] = float(width)
        for i in range(depth):
            lrm[f"blocks.{i}.weight"] = float(width)
            if bias:
                lrm[f"blocks.{i}.bias"] = float(width)
        lrm["readout.weight"] = float(width)
        if bias:
            lrm["readout.bias"] = 1.0
        self.lr_multipliers = lrm

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream ``[h_0, h_1, ..., h_L]``, each ``(batch, width)``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"`x` must have shape (batch, {self.d_in}), got {tuple(x.shape)}")
        h = self.input_layer(x)
        out = [h]
        for block in self.blocks:
            h = h + self.branch_multiplier * block(self.act(h))
            out.append(h)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last residual stream ``h_L`` (input of the readout)."""
        return self.hidden(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x))

    def param_groups(self, lr: float, *, optimizer: str = "sgd") -> list[dict]:
        """Optimizer parameter groups ``[{"params": [p], "lr": lr * multiplier, "name": name}, ...]``.

        ``optimizer="sgd"``: :attr:`lr_multipliers` (muP in width; Depth-muP does not scale the SGD
        learning rate with depth). ``optimizer="adam"``: Adam's muP in width (hidden and readout
        weights ``1 / fan_in``, input weights and biases 1) and, under Depth-muP, the block tensors
        x ``L^{-1/2}``. Pass them to :func:`lossviz.train.fit` as
        ``optimizer=lambda ps: torch.optim.SGD(net.param_groups(lr))``.
        """
        lr = check_float(lr, "lr", minimum=0.0)
        check_choice(optimizer, "optimizer", _OPTIMIZERS)
        groups = []
        for name, p in self.named_parameters():
            if optimizer == "sgd":
                m = self.lr_multipliers[name]
            else:
                m = 1.0 / self.width if name.endswith("weight") and not name.startswith("input") else 1.0
                if self.parametrization == "depth_mup" and name.startswith("blocks."):
                    m /= math.sqrt(self.depth)
            groups.append({"params": [p], "lr": lr * m, "name": name})
        return groups

    def extra_repr(self) -> str:
        return (
            f"parametrization={self.parametrization!r}, depth={self.depth}, width={self.width}, "
            f"branch_multiplier={self.branch_multiplier:.4g}"
        )
