r"""TempNet: a per-input temperature learned with the KL-constrained DRO loss.

Zi-Hao Qiu, Siqi Guo, Mao Xu, Tuo Zhao, Lijun Zhang & Tianbao Yang, *To Cool or not to Cool?
Temperature Network Meets Large Foundation Models via DRO*, ICML 2024, arXiv:2404.04575.

For logits ``h`` (one row per input, ``V`` classes or tokens) and target ``y`` the per-input
DRO loss of the paper is

.. math:: F(\tau) = \tau \log \tfrac1V \sum_k e^{(h_k - h_y)/\tau} + \tau\rho

(the authors' code: ``tau * CE(h / tau, y) + (rho - log V) * tau``). Its derivative in ``tau`` is
``rho - KL(softmax(h / tau) || uniform)`` (:func:`kl_to_uniform`): the minimiser puts the tempered
distribution at ``KL = rho`` from uniform and does not depend on ``y``
(:func:`dro_optimal_temperature` finds it for one row). :class:`TempNet` predicts ``tau(h)``
and is trained on :func:`kl_dro_loss` with the model that produced ``h`` frozen.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._validate import check_float, check_int, check_labels, check_tensor

__all__ = ["TempNet", "kl_dro_loss", "kl_to_uniform"]


def _row_tau(tau: Any, logits: torch.Tensor) -> torch.Tensor:
    """``tau`` as a (rows, 1) tensor on the logits' device and dtype, checked positive and finite."""
    if isinstance(tau, torch.Tensor):
        if tau.ndim > 1 or (tau.ndim == 1 and tau.shape[0] != logits.shape[0]):
            raise ValueError(
                f"`tau` must be a scalar or one value per row ({logits.shape[0]}), got shape {tuple(tau.shape)}"
            )
        t = tau.to(device=logits.device, dtype=logits.dtype)
        if not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
            raise ValueError("`tau` must be positive and finite")
        return t.reshape(-1, 1) if t.ndim == 1 else t.reshape(1, 1)
    t = check_float(tau, "tau", positive=True)
    return torch.full((1, 1), t, dtype=logits.dtype, device=logits.device)


def kl_dro_loss(
    logits: torch.Tensor, targets: torch.Tensor, tau: Any, rho: float, *, reduction: str = "none"
) -> torch.Tensor:
    r"""The KL-constrained DRO loss ``tau (logsumexp((h - h_y)/tau) - log V) + tau rho`` per row.

    Parameters
    ----------
    logits : (B, V) floating tensor
    targets : (B,) integer class indices
    tau : positive float, or a (B,) tensor (one temperature per row, e.g. a :class:`TempNet`'s output)
    rho : the KL radius, ``>= 0``
    reduction : ``"none"`` (default, one value per row), ``"mean"`` or ``"sum"``

    Examples
    --------
    >>> import torch
    >>> h = torch.tensor([[2.0, 0.0, 0.0]]); y = torch.tensor([0])
    >>> round(float(kl_dro_loss(h, y, 1.0, 0.0)), 4)  # log((1 + 2 e^-2) / 3)
    -0.8591
    """
    logits = check_tensor(logits, "logits", ndim=2, floating=True)
    targets = check_labels(targets, "targets", n=logits.shape[0], num_classes=logits.shape[1])
    rho = check_float(rho, "rho", minimum=0.0)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"`reduction` must be 'none', 'mean' or 'sum', got {reduction!r}")
    t = _row_tau(tau, logits)
    a = logits - logits.gather(1, targets.reshape(-1, 1).to(logits.device))
    out = (t * (torch.logsumexp(a / t, dim=1, keepdim=True) - math.log(logits.shape[1])) + t * rho).squeeze(1)
    return out if reduction == "none" else (out.mean() if reduction == "mean" else out.sum())


def kl_to_uniform(logits: torch.Tensor, tau: Any = 1.0) -> torch.Tensor:
    """``KL(softmax(logits / tau) || uniform)`` per row (``tau`` a scalar or one per row), in nats.

    Examples
    --------
    >>> import torch
    >>> float(kl_to_uniform(torch.zeros(1, 4)))
    0.0
    """
    logits = check_tensor(logits, "logits", ndim=2, floating=True)
    t = _row_tau(tau, logits)
    logp = torch.log_softmax(logits / t, dim=1)
    return (logp.exp() * (logp + math.log(logits.shape[1]))).sum(1)


class TempNet(nn.Module):
    """A temperature network: logits ``h`` (B, V) -> ``tau(h)`` (B,) in ``[tau_min, tau_max]``.

    The authors' architecture at a chosen width: the logits minus their row maximum, L2-normalised
    (so ``tau`` depends on the *shape* of the distribution, not on a shift or a positive scale of
    the logits), ``Linear(V, hidden) - Sigmoid - Dropout - Linear(hidden, hidden)``, a softmax over
    the hidden units weighting the difference of two learned vectors ``u - v`` plus a bias, and a
    sigmoid into ``[tau_min, tau_max]``. ``u``, ``v`` and the bias start at zero, so every input
    starts at ``tau = (tau_min + tau_max) / 2``.

    Parameters
    ----------
    vocab : V, the number of logits per row (``>= 2``)
    hidden : width (default 64)
    tau_min, tau_max : the output range (defaults 0.05 and 5.0)
    dropout : dropout probability after the sigmoid (default 0.5, the authors')
    device, dtype : of the parameters (as for torch's own modules)
    """

    def __init__(
        self,
        vocab: int,
        hidden: int = 64,
        *,
        tau_min: float = 0.05,
        tau_max: float = 5.0,
        dropout: float = 0.5,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.tau_min = check_float(tau_min, "tau_min", positive=True)
        self.tau_max = check_float(tau_max, "tau_max", positive=True)
        if not self.tau_max > self.tau_min:
            raise ValueError(f"`tau_max` must exceed `tau_min`, got {tau_max} <= {tau_min}")
        vocab = check_int(vocab, "vocab", minimum=2)
        hidden = check_int(hidden, "hidden", minimum=1)
        dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0)
        kw = {"device": device, "dtype": dtype}
        self.vocab = vocab
        self.proj = nn.Sequential(
            nn.Linear(vocab, hidden, **kw),
            nn.Sigmoid(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden, **kw),
        )
        self.u = nn.Parameter(torch.zeros(hidden, **kw))
        self.v = nn.Parameter(torch.zeros(hidden, **kw))
        self.bias = nn.Parameter(torch.zeros((), **kw))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # noqa: D102  (documented on the class)
        if h.ndim != 2 or h.shape[1] != self.vocab:
            raise ValueError(f"`h` must be (B, {self.vocab}) logits, got shape {tuple(h.shape)}")
        x = h - h.max(dim=1, keepdim=True).values
        x = nn.functional.normalize(x, dim=1)
        w = torch.softmax(self.proj(x), dim=1)
        raw = (w * (self.u - self.v)).sum(1) + self.bias
        return self.tau_min + (self.tau_max - self.tau_min) * torch.sigmoid(raw)
