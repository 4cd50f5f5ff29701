r"""The Hessian of the sample-weighted mean loss as a matrix-free linear operator.

.. math::

    L(\theta) = \sum_b \frac{n_b}{n}\, \ell_b(\theta), \qquad
    H v = \nabla_\theta \big( \nabla_\theta L(\theta) \cdot v \big)

Products are computed by double back-propagation (B. A. Pearlmutter, "Fast Exact Multiplication
by the Hessian", Neural Computation 6(1), 1994): one backward pass through the cached gradient
graph per product when the data are one batch, forward + two backward passes per batch otherwise.
Batches enter with weight ``n_b / n``, so ``H`` does not depend on how the data were split.

:class:`HessianOperator` is what every estimator of :mod:`lossviz.curvature` consumes; build it
once with :func:`hessian_operator` and reuse it across estimates. :func:`hvp` is the one-off product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .._model import (
    Batches,
    batch_value,
    buffers_of,
    check_model_and_loss,
    collate,
    double_backward_hint,
    eval_mode,
    mean_loss,
    model_dtype_device,
)
from .._validate import check_choice, check_dtype, check_tensor
from ._base import MATRICES, CurvatureOperator, MatrixOperator

__all__ = [
    "ParamSelection",
    "HessianOperator",
    "hessian_operator",
    "hvp",
    "CurvatureOperator",
    "MatrixOperator",
]

ParamSelection = None | Sequence[str] | Callable[[str, torch.Tensor], bool]


def _select(model: nn.Module, params: ParamSelection) -> list[str]:
    named = dict(model.named_parameters())
    if params is None:
        names = [n for n, p in named.items() if p.requires_grad]
        if not names:
            raise ValueError(
                "`params`: the model has no parameter with requires_grad=True; name them explicitly"
            )
        return names
    if isinstance(params, str):
        raise TypeError(
            f"`params` must be a sequence of parameter names or a predicate, got the string {params!r}"
        )
    if callable(params):
        names = [n for n, p in named.items() if params(n, p)]
    else:
        try:
            names = list(params)
        except TypeError:
            raise TypeError(
                f"`params` must be None, a sequence of parameter names or a predicate (name, param) -> bool, "
                f"got {type(params).__name__}"
            ) from None
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"`params` entries must be parameter names (str), got {n!r}")
            if n not in named:
                raise ValueError(f"`params`: the model has no parameter {n!r}; it has {sorted(named)}")
        if len(set(names)) != len(names):
            raise ValueError(f"`params` lists a parameter twice: {names}")
        names = [n for n in named if n in set(names)]  # model order
    if not names:
        raise ValueError("`params` selects no parameter")
    for n in names:
        if not named[n].is_floating_point():
            raise TypeError(f"`params`: parameter {n!r} is not floating point")
    return names


def _has_active_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


class HessianOperator(CurvatureOperator):
    r"""The Hessian of the sample-weighted mean loss as a matrix-free operator ``v -> H v``.

    Parameters
    ----------
    model : nn.Module
        Never changed: evaluated with detached copies of its parameters.
    loss_fn : callable(outputs, targets) -> scalar
        Mean loss of a batch.
    data : a batch ``(inputs, targets)`` / dict, an iterable or ``DataLoader`` of batches, or :func:`lossviz.data.collate` of them
        Batch ``b`` enters with weight ``n_b / n``. Floating inputs are cast to ``dtype``;
        integer inputs (token ids) are not. In-memory data up to 256 MiB stay on the device
        (``collate(..., resident=)`` decides); larger data and loaders are streamed, one batch on
        the device per backward pass, so memory is bounded by one batch's graph.
    params : None | sequence of names | predicate
        Parameters to differentiate (default: those with ``requires_grad=True``), flattened in the
        model's parameter order.
    dtype : torch.dtype, optional
        Computation dtype (default: the model's). Parameters, buffers and floating data are cast.
    mode : ``"eval"`` | ``"train"``
        Module mode during evaluation (see the module docstring); default ``"eval"``.
    cache_graph : bool, optional
        Keep the graph of the gradient and differentiate it again for every product (one
        backward pass per product instead of forward + two backwards). Default: ``True`` for a
        single batch, ``False`` for several (memory).

    Attributes
    ----------
    size : int
        Number of differentiated parameters ``n`` (``H`` is ``n x n``).
    matvecs : int
        Number of Hessian-vector products computed so far (each column of a block counts one).
    theta : torch.Tensor
        The flattened parameters (a copy).

    Notes
    -----
    Products are computed by double back-propagation (Pearlmutter's trick):
    ``H v = grad_theta (grad_theta L . v)``.
    """

    matrix = "hessian"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        *,
        params: ParamSelection = None,
        dtype: torch.dtype | str | None = None,
        mode: str = "eval",
        cache_graph: bool | None = None,
    ):
        check_model_and_loss(model, loss_fn)  # also: finite parameters, naming the first bad one
        from .._validate import check_autograd

        check_autograd("curvature (Hessian-vector products)")
        check_choice(mode, "mode", ("eval", "train"))
        dtype = check_dtype(dtype, "dtype")
        mdtype, device = model_dtype_device(model)
        dtype = dtype or mdtype
        if not dtype.is_floating_point:
            raise TypeError(f"`dtype` must be a floating dtype, got {dtype}")
        if mode == "train" and _has_active_dropout(model):
            raise ValueError(
                "`mode`='train' with active Dropout makes the loss random, so it has no Hessian; use "
                "mode='eval' (the default) or set the dropout probability to 0"
            )
        self.model = model
        self.loss_fn = loss_fn
        self.mode = mode
        self.dtype = dtype
        self.device = device
        # bound to the computation dtype/device; resident or streamed one batch at a time
        self.batches: Batches = collate(data, "data").on(model, dtype=dtype)
        self.names = _select(model, params)
        named = dict(model.named_parameters())
        self.shapes = [tuple(named[n].shape) for n in self.names]
        self.numels = [named[n].numel() for n in self.names]
        self.size = int(sum(self.numels))
        self._fixed = {
            n: (p.detach().to(dtype) if p.is_floating_point() else p.detach())
            for n, p in named.items()
            if n not in set(self.names)
        }
        self._buffers = buffers_of(model, dtype)
        with torch.no_grad():
            self.theta = torch.cat([named[n].detach().reshape(-1).to(dtype) for n in self.names]).clone()
        if cache_graph is None:
            cache_graph = len(self.batches) == 1
        self.cache_graph = bool(cache_graph)
        self.matvecs = 0
        self._graph = None
        self._loss_value: float | None = None
        self._vin: torch.Tensor | None = None
        self._vin_views: list[torch.Tensor] = []

    # -- functional evaluation ----------------------------------------------------------------
    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector of length ``size`` into ``{name: tensor}`` with parameter shapes."""
        chunks = torch.split(flat, self.numels)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def _leaves(self) -> list[torch.Tensor]:
        """Fresh leaf tensors (one per selected parameter, in its shape) to differentiate.

        Parameter-shaped leaves keep the double-backward graph exactly as small as autograd over
        the module's own parameters: no view or split nodes are differentiated in every product
        (measured: 1-D leaves reshaped inside the graph cost ~5% per product on the benchmark MLP).
        """
        return [
            c.view(s).clone().requires_grad_(True)
            for c, s in zip(torch.split(self.theta.detach(), self.numels), self.shapes)
        ]

    def _batch_loss(self, params, b: int) -> torch.Tensor:
        for i, (x, y, _) in enumerate(self.batches.stream(weights=False)):
            if i == b:
                return self._loss_on(params, x, y)
        raise IndexError(f"batch {b} out of range")

    def _state(self, params) -> dict[str, torch.Tensor]:
        """Parameters by name: the fixed ones plus ``params`` (flat, or one tensor per parameter)."""
        state = dict(self._fixed)
        if isinstance(params, torch.Tensor):
            state.update(self.unflatten(params))
        else:
            # parameter-shaped leaves enter as they are (a view would add a node to every product)
            state.update(
                {n: p if p.shape == sh else p.view(sh) for n, p, sh in zip(self.names, params, self.shapes)}
            )
        return state

    def _buffer_copies(self) -> dict[str, torch.Tensor]:
        # buffers are cloned per evaluation so train-mode BatchNorm cannot accumulate statistics
        return {k: v.clone() for k, v in self._buffers.items()}

    def _loss_on(self, params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of one batch ``(x, y)`` at ``params``: a flat vector or one tensor per parameter.

        The loss itself is the one evaluator of lossviz (:func:`lossviz._model.batch_value`: the
        scalar check and its message, ``loss_fn(outputs, targets)`` or a ``train.batch_loss``).
        """
        state = self._state(params)
        state.update(self._buffer_copies())
        with eval_mode(self.model, self.mode == "train"):
            return batch_value(self.model, self.loss_fn, x, y, state, self.batches.output_fn, "data")

    def loss(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Sample-weighted mean loss at ``theta`` (flat, or one tensor per parameter; default: the model's)."""
        theta = self.theta if theta is None else theta
        if len(self.batches) == 1:  # weight 1: no extra multiply node in every product's graph
            return self._batch_loss(theta, 0)
        with eval_mode(self.model, self.mode == "train"):
            return mean_loss(
                self.model,
                self.loss_fn,
                self.batches,
                params=self._state(theta),
                buffers=self._buffer_copies(),
            )

    def _flat(self, parts, m: int | None = None) -> torch.Tensor:
        """Concatenate per-parameter results (``None`` = zero) into flat rows."""
        if m is None and all(h is not None for h in parts):
            return torch.cat([h.reshape(-1) for h in parts])
        rows = []
        for h, k in zip(parts, self.numels):
            if h is None:
                h = torch.zeros((k,) if m is None else (m, k), dtype=self.dtype, device=self.device)
            rows.append(h.reshape(-1) if m is None else h.reshape(m, -1))
        return torch.cat(rows, dim=-1)

    def gradient(self) -> torch.Tensor:
        """Gradient of the mean loss at the model's parameters (flat)."""
        leaves = self._leaves()
        with torch.enable_grad():
            g = torch.autograd.grad(self.loss(leaves), leaves, allow_unused=True)
        return self._flat(g).detach()

    def _cached(self):
        if self._graph is None:
            leaves = self._leaves()
            with torch.enable_grad():
                loss = self.loss(leaves)
                g = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
            self._graph = (leaves, g)
            self._loss_value = float(loss.detach())
            # one flat buffer with parameter-shaped views: a product copies its vector in once
            # instead of splitting and viewing it per parameter
            self._vin = torch.empty(self.size, dtype=self.dtype, device=self.device)
            self._vin_views = list(self.unflatten(self._vin).values())
        return self._graph

    # -- products -----------------------------------------------------------------------------
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        try:
            return self._matmat_raw(V)
        except RuntimeError as exc:
            hint = double_backward_hint(exc)
            if hint is None:
                raise
            raise RuntimeError(hint) from exc

    def _matmat_raw(self, V: torch.Tensor) -> torch.Tensor:
        m = V.shape[0]
        with torch.enable_grad():
            if self.cache_graph:
                leaves, g = self._cached()
                out = self._hvp(g, leaves, V)
            else:
                # one batch on the device at a time: H v = sum_b (n_b / n) H_b v
                out = None
                for x, y, w in self.batches.stream():
                    leaves = self._leaves()
                    gb = torch.autograd.grad(
                        self._loss_on(leaves, x, y), leaves, create_graph=True, allow_unused=True
                    )
                    hb = self._hvp(gb, leaves, V) * w
                    out = hb if out is None else out + hb
        self.matvecs += m
        return out.detach()

    def _hvp(self, g, leaves: list[torch.Tensor], V: torch.Tensor) -> torch.Tensor:
        """Rows ``H v`` for the rows of ``V`` by differentiating the gradient graph ``g`` again.

        One flat leaf per parameter (not one flat vector for all) keeps the double-backward graph
        as small as autograd over the module's own parameters.
        """
        m = V.shape[0]
        live = [i for i, gi in enumerate(g) if gi is not None and gi.requires_grad]
        if not live:  # the loss is at most linear in the parameters
            return torch.zeros_like(V)
        outputs = [g[i] for i in live] if len(live) < len(g) else list(g)
        if m == 1:
            if self.cache_graph:  # (autograd does not keep grad_outputs: the buffer is reusable)
                chunks = self._vin_views
                self._vin.copy_(V[0])
            else:
                chunks = list(self.unflatten(V[0]).values())
            gos = [chunks[i] for i in live] if len(live) < len(g) else chunks
            return self._flat(
                torch.autograd.grad(outputs, leaves, gos, retain_graph=True, allow_unused=True)
            )[None]
        chunks = torch.split(V, self.numels, dim=1)
        gos = [chunks[i].reshape(m, *self.shapes[i]) for i in live]
        try:
            h = torch.autograd.grad(
                outputs, leaves, gos, retain_graph=True, is_grads_batched=True, allow_unused=True
            )
        except RuntimeError:  # an op without a batching rule: fall back to a loop
            return torch.cat([self._hvp(g, leaves, V[i : i + 1]) for i in range(m)])
        return self._flat(h, m)

    def __repr__(self) -> str:
        return (
            f"HessianOperator(size={self.size}, dtype={self.dtype}, mode={self.mode!r}, "
            f"batches={len(self.batches)}, samples={self.batches.total}, matvecs={self.matvecs})"
        )


def hessian_operator(model, loss_fn, data, **kwargs) -> HessianOperator:
    """Build a :class:`HessianOperator` (same arguments); reuse it across estimates."""
    return HessianOperator(model, loss_fn, data, **kwargs)


def _operator(
    model, loss_fn, data, params, dtype, mode, cache_graph=None, matrix: str | None = None
) -> CurvatureOperator:
    """The operator an estimator works on: ``model`` itself if it is one, else the ``matrix``
    (``"hessian"`` when None, :data:`MATRICES`) of ``(model, loss_fn, data)``."""
    if matrix is not None:
        check_choice(matrix, "matrix", MATRICES)
    if isinstance(model, CurvatureOperator):
        if loss_fn is not None or data is not None:
            raise ValueError("pass either a curvature operator alone or (model, loss_fn, data), not both")
        if matrix is not None and matrix != model.matrix:
            raise ValueError(
                f"`matrix`={matrix!r} but the operator passed is a {model.matrix!r} operator; "
                "leave `matrix` unset when passing an operator"
            )
        return model
    if loss_fn is None or data is None:
        raise TypeError("`loss_fn` and `data` are required when `model` is an nn.Module")
    if matrix in (None, "hessian"):
        return HessianOperator(
            model, loss_fn, data, params=params, dtype=dtype, mode=mode, cache_graph=cache_graph
        )
    from ._ggn import curvature_operator

    return curvature_operator(
        model, loss_fn, data, matrix=matrix, params=params, dtype=dtype, mode=mode, cache_graph=cache_graph
    )


def hvp(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any,
    vector: torch.Tensor | Mapping[str, torch.Tensor],
    *,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> torch.Tensor | dict[str, torch.Tensor]:
    r"""Hessian-vector product ``H v`` of the sample-weighted mean loss.

    ``vector`` is flat (length = number of selected parameters, in model order) or a mapping
    ``{name: tensor}`` over exactly the selected parameters; the result has the same form.
    For many products build a :class:`HessianOperator` once.

    >>> import torch
    >>> net = torch.nn.Linear(2, 1).double()
    >>> x, y = torch.randn(8, 2).double(), torch.randn(8, 1).double()
    >>> hvp(net, torch.nn.functional.mse_loss, (x, y), torch.ones(3, dtype=torch.float64)).shape
    torch.Size([3])
    """
    op = HessianOperator(model, loss_fn, data, params=params, dtype=dtype, mode=mode)
    if isinstance(vector, Mapping):
        if set(vector) != set(op.names):
            raise ValueError(f"`vector` must have exactly the keys {op.names}, got {sorted(vector)}")
        for n, s in zip(op.names, op.shapes):
            t = check_tensor(vector[n], f"vector[{n!r}]", floating=True)
            if tuple(t.shape) != s:
                raise ValueError(f"`vector[{n!r}]` must have shape {s}, got {tuple(t.shape)}")
        flat = torch.cat([vector[n].reshape(-1).to(op.dtype) for n in op.names])
        return op.unflatten(op.matvec(flat))
    return op.matvec(vector)
