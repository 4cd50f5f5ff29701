r"""The generalised Gauss-Newton matrix and the empirical Fisher as matrix-free operators.

For a loss ``L(theta) = sum_b (n_b / n) ell(f_b(theta), y_b)`` with network outputs ``f_b`` of
batch ``b`` (``ell`` = ``loss_fn``, the mean loss of a batch):

.. math::

    G = \sum_b \frac{n_b}{n} J_b^\top \big(\nabla^2_f \ell\big) J_b, \qquad
    F = \frac{1}{n} \sum_{i=1}^{n} \nabla_\theta \ell_i \, \nabla_\theta \ell_i^\top ,

with ``J_b = d f_b / d theta`` and ``ell_i`` the loss of sample ``i`` alone. ``G`` drops the
second-derivative-of-the-network term of the Hessian ``H = G + sum_k (d ell / d f_k) nabla^2 f_k``
and is positive semi-definite for a loss convex in the outputs (N. N. Schraudolph, "Fast
Curvature Matrix-Vector Products for Second-Order Gradient Descent", Neural Computation 14(7),
2002; J. Martens, "New Insights and Perspectives on the Natural Gradient Method", JMLR 2020,
arXiv:1412.1193). ``F`` is the uncentred covariance of the per-sample gradients, which is *not*
the Fisher information in general (F. Kunstner, L. Balles, P. Hennig, "Limitations of the
Empirical Fisher Approximation for Natural Gradient Descent", NeurIPS 2019, arXiv:1905.12558).

Products, per batch, with the graph of ``f`` cached:

* GGN: ``J v`` by the double-vjp trick (differentiate ``u -> J^T u`` in ``u``), ``H_f (J v)`` by
  double back-propagation through ``ell`` alone, then ``J^T (.)`` by one backward pass;
* empirical Fisher: the same with ``J`` the Jacobian of the vector of per-sample losses
  ``(ell_1, ..., ell_{n_b})`` and ``H_f`` replaced by the identity: ``F v = (1/n) J^T (J v)``.

Per-sample losses are ``loss_fn(f_i[None], y_i[None])`` (vectorised with :func:`torch.func.vmap`,
a loop if the loss does not vmap), checked once to average to the batch loss: the empirical
Fisher is defined only for a loss that is a mean of per-sample losses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._model import BatchLoss, eval_mode, loss_scalar
from .._validate import check_choice
from ._base import MATRICES
from ._operator import HessianOperator, ParamSelection

__all__ = ["GGNOperator", "EmpiricalFisherOperator", "curvature_operator"]


def _batch_stream(batches):
    """``(x, y, weight)`` per batch, for both the resident and the streamed forms of Batches."""
    stream = getattr(batches, "stream", None)
    if callable(stream):
        yield from stream()
        return
    for (x, y), w in zip(batches.batches, batches.weights):
        yield x, y, w


class _OutputCurvature(HessianOperator):
    """Shared machinery: the model's outputs per batch, a cached graph, ``J v`` and ``J^T w``.

    Subclasses :class:`HessianOperator` for its evaluation machinery (parameter selection,
    dtype, mode, buffers, data); ``matrix`` says which matrix the products are with.
    """

    matrix = "output"

    def __init__(self, model, loss_fn, data, **kwargs):
        if isinstance(loss_fn, BatchLoss):
            raise TypeError(
                f"matrix={self.matrix!r} needs `loss_fn(outputs, targets)` (it differentiates the loss in the "
                "model's outputs); a train.batch_loss computes the loss from the model itself"
            )
        super().__init__(model, loss_fn, data, **kwargs)
        self._graphs = None

    def _outputs(self, leaves, x) -> torch.Tensor:
        state = self._state(leaves)
        state.update(self._buffer_copies())
        with eval_mode(self.model, self.mode == "train"):
            forward = getattr(self.batches, "forward", None)
            out = (
                forward(self.model, x, state)
                if callable(forward)
                else torch.func.functional_call(self.model, state, (x,))
            )
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"matrix={self.matrix!r}: the model must return a tensor of outputs, got {type(out).__name__}"
            )
        return out

    def _head(self, out: torch.Tensor, y) -> torch.Tensor:
        """What ``J`` differentiates: the outputs (GGN) or the per-sample losses (Fisher)."""
        raise NotImplementedError

    def _middle(self, aux, w: torch.Tensor) -> torch.Tensor:
        """The inner matrix applied to ``J v`` (the loss Hessian in the outputs, or the identity)."""
        raise NotImplementedError

    def _graph_of(self, x, y, weight):
        leaves = self._leaves()
        with torch.enable_grad():
            out = self._outputs(leaves, x)
            head, aux = self._head(out, y)
            u = torch.zeros_like(head, requires_grad=True)
            jtu = torch.autograd.grad(head, leaves, u, create_graph=True, allow_unused=True)
        return leaves, head, u, jtu, aux, weight

    def _all_graphs(self):
        if self.cache_graph:
            if self._graphs is None:
                self._graphs = [self._graph_of(x, y, w) for x, y, w in _batch_stream(self.batches)]
            yield from self._graphs
        else:
            for x, y, w in _batch_stream(self.batches):
                yield self._graph_of(x, y, w)

    def _matmat_raw(self, V: torch.Tensor) -> torch.Tensor:
        # called by HessianOperator._matmat, which turns SDPA's missing double backward into
        # an error that says attn_implementation="eager"
        rows = []
        for i in range(V.shape[0]):
            out = None
            for leaves, head, u, jtu, aux, weight in self._all_graphs():
                live = [k for k, t in enumerate(jtu) if t is not None and t.requires_grad]
                if not live:  # outputs do not depend on the parameters
                    continue
                chunks = list(self.unflatten(V[i]).values())
                with torch.enable_grad():
                    (jv,) = torch.autograd.grad(
                        [jtu[k] for k in live], u, [chunks[k] for k in live], retain_graph=True
                    )
                    mjv = self._middle(aux, jv)
                    g = torch.autograd.grad(head, leaves, mjv, retain_graph=True, allow_unused=True)
                term = self._flat(g).detach() * self._scale(weight)
                out = term if out is None else out + term
            rows.append(torch.zeros(self.size, dtype=self.dtype, device=self.device) if out is None else out)
        self.matvecs += V.shape[0]
        return torch.stack(rows)

    def _scale(self, weight: float) -> float:
        return weight

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, dtype={self.dtype}, mode={self.mode!r}, "
            f"batches={len(self.batches)}, samples={self.batches.total}, matvecs={self.matvecs})"
        )


class GGNOperator(_OutputCurvature):
    r"""The generalised Gauss-Newton matrix ``G = sum_b (n_b/n) J_b^T (nabla_f^2 ell) J_b``.

    Same arguments as :class:`HessianOperator` (``loss_fn(outputs, targets)`` only, the model
    must return a tensor). Positive semi-definite for losses convex in the outputs (cross-entropy,
    squared error); equal to the Hessian for a network linear in its parameters. Each product
    costs about one forward-mode and one backward pass through the network per batch (the
    forward pass is cached for a single batch).
    """

    matrix = "ggn"

    def _head(self, out, y):
        f = out.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_scalar(self.loss_fn(f, y))
            (g_f,) = torch.autograd.grad(loss, f, create_graph=True)
        return out, (f, g_f)

    def _middle(self, aux, w):
        f, g_f = aux
        if not g_f.requires_grad:  # the loss is linear in the outputs
            return torch.zeros_like(w)
        (hw,) = torch.autograd.grad(g_f, f, w, retain_graph=True, allow_unused=True)
        return torch.zeros_like(w) if hw is None else hw


def _per_sample_losses(loss_fn, out: torch.Tensor, y) -> torch.Tensor:
    def one(o, t):
        return loss_fn(o.unsqueeze(0), t.unsqueeze(0))

    try:
        losses = torch.func.vmap(one)(out, y)
    except Exception:  # a loss without batching rules: one sample at a time
        losses = torch.stack([loss_scalar(one(out[i], y[i])) for i in range(out.shape[0])])
    return losses.reshape(-1)


class EmpiricalFisherOperator(_OutputCurvature):
    r"""The empirical Fisher ``F = (1/n) sum_i grad ell_i grad ell_i^T`` (per-sample gradients).

    Same arguments as :class:`HessianOperator`; ``loss_fn`` must be the mean of per-sample losses
    (checked on the first batch: ``loss_fn(f, y) == mean_i loss_fn(f_i[None], y_i[None])``).
    Positive semi-definite, rank at most ``n``. This is the uncentred covariance of the
    per-sample gradients, not the Fisher information of the model (Kunstner et al., NeurIPS 2019,
    arXiv:1905.12558). In ``mode="train"`` each ``ell_i`` is the loss of sample ``i`` in the
    batch's forward pass (BatchNorm statistics of its batch).
    """

    matrix = "fisher"

    def _head(self, out, y):
        losses = _per_sample_losses(self.loss_fn, out, y)
        if not getattr(self, "_checked", False):
            with torch.no_grad():
                mean = float(loss_scalar(self.loss_fn(out.detach(), y)))
                per = float(losses.detach().mean())
            if abs(mean - per) > 1e-4 * max(1.0, abs(mean)):
                raise ValueError(
                    "matrix='fisher' needs `loss_fn` to be the mean of per-sample losses: on the first "
                    f"batch loss_fn(outputs, targets) = {mean:.6g} but the mean of the {out.shape[0]} "
                    f"single-sample losses is {per:.6g}"
                )
            self._checked = True
        return losses, None

    def _middle(self, aux, w):
        return w

    def _scale(self, weight: float) -> float:
        return 1.0 / self.batches.total  # F = (1/n) sum over all samples


def curvature_operator(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any,
    *,
    matrix: str = "hessian",
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
    cache_graph: bool | None = None,
) -> HessianOperator:
    """The curvature matrix ``matrix`` of the sample-weighted mean loss as an operator.

    ``matrix``: ``"hessian"`` (default, :class:`HessianOperator`), ``"ggn"``
    (:class:`GGNOperator`) or ``"fisher"`` (:class:`EmpiricalFisherOperator`); the other
    arguments as for :class:`HessianOperator`. Build it once and pass it to
    :func:`top_eigenvalues`, :func:`trace` or :func:`spectral_density`.
    """
    matrix = check_choice(matrix, "matrix", MATRICES)
    cls = {"hessian": HessianOperator, "ggn": GGNOperator, "fisher": EmpiricalFisherOperator}[matrix]
    return cls(model, loss_fn, data, params=params, dtype=dtype, mode=mode, cache_graph=cache_graph)
