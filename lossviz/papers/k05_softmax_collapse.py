r"""K05: grokking at the edge of numerical stability (Softmax Collapse, StableMax, perpGrad).

Lucas Prieto, Melih Barsbey, Pedro A. M. Mediano, Tolga Birdal, "Grokking at the Edge of Numerical
Stability", ICLR 2025, arXiv:2501.04697.

Without regularisation, once a network fits a grokking task its gradient aligns with the weights
(*naive loss minimisation*: scaling the weights up grows the logits without changing the
predictions); the float32 softmax of the correct class then rounds to exactly 1 (Softmax Collapse)
and those samples stop contributing gradient. This module holds the notebook's paper code:

* :class:`PairEmbeddingMLP`: the one-hidden-layer MLP on one-hot pairs ``onehot(a) || onehot(b)``
  of the authors' set-up, applied by two embedding lookups (same function and gradients);
* :func:`gradient_weight_cosine`: ``cos(-grad, w)``, the NLM diagnostic;
* :func:`orthogonal_gradient_`: perpGrad (the paper's Section 5), the gradient with its component
  along the weights removed, used as a :func:`lossviz.train.fit` ``grad_hook``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .._validate import check_int, check_tensor
from ..models import MLP

__all__ = ["PairEmbeddingMLP", "flush_denormals", "gradient_weight_cosine", "orthogonal_gradient_"]


@contextlib.contextmanager
def flush_denormals():
    """Run the block with float denormals flushed to zero (``torch.set_flush_denormal``), then restore.

    Once the network fits, Adam (``eps = 1e-25``) keeps working with gradients and moment
    estimates so small that some of the arithmetic falls into float32 denormals (below ``1e-38``),
    which x86 CPUs process slowly. Flushing them to zero made K05's training 1.5-2.5x faster on the
    AMD EPYC cores we measured; K05's quick mode once took 86 s in CI where it usually took 35-50 s
    (the CPU of that run is not known). It changes nothing the notebook measures: on this toy the
    trained weights are bit-identical with and without (``tests/papers/test_k05_softmax_collapse.py``),
    and Softmax Collapse (``p_y`` rounding to exactly 1) is decided far above ``1e-38``. Where the
    CPU cannot flush denormals (``set_flush_denormal`` returns False) the block runs unchanged. The
    setting is per thread; on exit it is put back to off, PyTorch's default.

    >>> with flush_denormals():
    ...     x = torch.tensor([1e-40]) * 1.0
    >>> torch.tensor([1e-40]).item() > 0  # restored afterwards
    True
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class PairEmbeddingMLP(nn.Module):
    """A one-hidden-layer MLP on one-hot pairs ``onehot(a) || onehot(b)``, by embedding lookups.

    Computes exactly ``MLP(2 p, (hidden,), out_features, bias=False)`` applied to the one-hot
    concatenation (the grokking set-up of Power et al. 2022 and Prieto et al. 2025), but takes the
    integer pairs ``(a, b)`` (``lossviz.data.modular_arithmetic(..., encoding="index")``) and replaces
    the product with a one-hot matrix by two row lookups: ``h = phi(E[a] + E[p + b])``, where
    ``E`` (shape ``(2p, hidden)``) is the transposed first-layer weight. Same function, same
    gradients, same initialisation as that MLP for the same ``seed``; about 1.5x faster per step.

    Examples
    --------
    >>> net = PairEmbeddingMLP(7, 16, 7, seed=0)
    >>> net(torch.tensor([[1, 2], [3, 4]])).shape
    torch.Size([2, 7])
    """

    def __init__(
        self,
        num_tokens: int,
        hidden: int,
        out_features: int,
        *,
        activation: str = "relu",
        dtype: torch.dtype | None = None,
        device=None,
        seed: int | None = None,
    ):
        super().__init__()
        self.num_tokens = check_int(num_tokens, "num_tokens", minimum=1)
        ref = MLP(2 * self.num_tokens, (hidden,), out_features, activation=activation, bias=False,
                  dtype=dtype, device=device, seed=seed)  # fmt: skip
        self.embed = nn.Parameter(ref.layers[0].weight.detach().T.contiguous())
        self.head = ref.head
        self.act = ref.act

    def features(self, pairs: torch.Tensor) -> torch.Tensor:
        pairs = check_tensor(pairs, "pairs", ndim=2, floating=False)
        if pairs.shape[1] != 2:
            raise ValueError(f"`pairs` must have shape (n, 2), got {tuple(pairs.shape)}")
        if int(pairs.min()) < 0 or int(pairs.max()) >= self.num_tokens:
            raise ValueError(f"`pairs` entries must lie in [0, {self.num_tokens})")
        emb = nn.functional.embedding
        return self.act(emb(pairs[:, 0], self.embed) + emb(pairs[:, 1] + self.num_tokens, self.embed))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pairs))


def _flat_grad_and_weights(params) -> tuple[torch.Tensor, torch.Tensor, list[torch.nn.Parameter]]:
    params = [p for p in params if p.grad is not None]
    if not params:
        raise ValueError("`params` have no gradients: call backward() first")
    g = torch.cat([p.grad.reshape(-1) for p in params])
    w = torch.cat([p.detach().reshape(-1) for p in params])
    return g, w, params


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else 0.0


def gradient_weight_cosine(params) -> float:
    """``cos(-grad, w)`` over all ``params`` (with ``.grad`` set).

    Near 1 the gradient mostly rescales the weights: the "naive loss minimisation" direction of
    Prieto et al. (2025), which grows the logits without changing the predictions.

    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> w.grad = torch.tensor([-3.0, -4.0])
    >>> round(gradient_weight_cosine([w]), 6)
    1.0
    """
    g, w, _ = _flat_grad_and_weights(list(params))
    return _cosine(-g, w)


def orthogonal_gradient_(params) -> float:
    """perpGrad, in place: remove from the gradient its component along the weights.

    ``g <- g - (g . w / w . w) w`` over the concatenation of all ``params`` (Prieto et al. 2025,
    Section 5): the update can no longer just scale the weights up, which is what drives softmax
    collapse. Use it as a :func:`lossviz.train.fit` ``grad_hook``. Returns ``cos(-g, w)`` before
    the projection.

    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    >>> w.grad = torch.tensor([-3.0, 0.0], dtype=torch.float64)
    >>> round(orthogonal_gradient_([w]), 3)
    0.6
    >>> abs(float(w.grad @ w.detach())) < 1e-5
    True
    """
    g, w, params = _flat_grad_and_weights(list(params))
    cos = _cosine(-g, w)
    ww = w @ w
    if ww > 0:
        coef = (g @ w) / ww
        with torch.no_grad():
            for p in params:
                p.grad -= coef * p.detach()
    return cos
