r"""Curvature of a loss: Hessian-vector products, eigenvalues, trace and spectral density.

Everything here is about the Hessian of the **sample-weighted mean loss**

.. math::

    L(\theta) = \sum_b \frac{n_b}{n} \, \ell_b(\theta), \qquad
    H = \nabla^2_\theta L(\theta) = \sum_b \frac{n_b}{n} \nabla^2_\theta \ell_b(\theta),

where ``loss_fn(outputs, targets)`` returns the mean loss ``ell_b`` of batch ``b`` with ``n_b``
samples. Batches are weighted by their sample count, so the Hessian does not depend on how the
data were split (the original loss-landscape code *sums* Hessian-vector products over batches,
which scales ``H`` by the number of batches; we do not).

Conventions (all explicit arguments with documented defaults):

* ``params``: which parameters ``theta`` are differentiated. ``None`` = every parameter with
  ``requires_grad=True``; a sequence of names, or a predicate ``(name, parameter) -> bool``. The
  other parameters are held fixed.
* ``dtype``: computation dtype; ``None`` = the model's dtype, ``torch.float64`` for reference
  quality. The model is never cast: copies are.
* ``mode``: ``"eval"`` (default) evaluates the model in eval mode (Dropout off, BatchNorm uses its
  running statistics); ``"train"`` evaluates in train mode, which is allowed only without active
  Dropout (a random loss has no Hessian) and makes BatchNorm use per-batch statistics (the running
  statistics of the model are never updated: the model's buffers are copied).
* Every stochastic estimate takes ``seed`` (random vectors are drawn on the CPU from a
  ``torch.Generator`` in float64, then cast, so results do not depend on the device).

The user's model is never changed (CONVENTIONS section 3): parameters are detached copies passed
to :func:`torch.func.functional_call`, mode flags are restored in ``finally``.

Algorithms and their papers
---------------------------
* :func:`top_eigenvalues`: implicitly restarted Lanczos (ARPACK, via
  :func:`scipy.sparse.linalg.eigsh` on a :class:`scipy.sparse.linalg.LinearOperator`), with the
  true residual norms ``||H v - lambda v||`` reported (they bound the eigenvalue error).
* :func:`trace`: Hutch++ -- R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal
  Stochastic Trace Estimation", SOSA 2021, arXiv:2010.09649 (default), or Hutchinson's estimator
  (M. F. Hutchinson 1989), with standard errors.
* :func:`spectral_density`: stochastic Lanczos quadrature as in B. Ghorbani, S. Krishnan, Y. Xiao,
  "An Investigation into Neural Net Optimization via Hessian Eigenvalue Density", ICML 2019,
  arXiv:1901.10159, with full re-orthogonalisation.
* :class:`SharpnessTracker`: the top eigenvalue during training (edge of stability: J. Cohen,
  S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar, "Gradient Descent on Neural Networks Typically
  Occurs at the Edge of Stability", ICLR 2021, arXiv:2103.00065), a :func:`lossviz.train.fit`
  callback.
* :func:`second_order_path`: gradient descent, Newton and saddle-free Newton on a small function
  with its exact Hessian -- Y. Dauphin, R. Pascanu, C. Gulcehre, K. Cho, S. Ganguli, Y. Bengio,
  "Identifying and attacking the saddle point problem in high-dimensional non-convex
  optimization", NeurIPS 2014, arXiv:1406.2572 (and R. Pascanu, Y. Dauphin, S. Ganguli,
  Y. Bengio, "On the saddle point problem for non-convex optimization", arXiv:1405.4604).
* :class:`ScalarNetwork`, :func:`gradient_flow_solution`: the scalar network of I. Kreisler,
  M. Shpigel Nacson, D. Soudry, Y. Carmon, "Gradient Descent Monotonically Decreases the
  Sharpness of Gradient Flow Solutions in Scalar Networks and Beyond", ICML 2023,
  arXiv:2305.13064.

Example
-------
>>> import torch
>>> from lossviz import curvature
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
>>> x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
>>> mse = torch.nn.functional.mse_loss
>>> top = curvature.top_eigenvalues(net, mse, (x, y), k=1, seed=0)
>>> H = curvature.exact_hessian(net, mse, (x, y)).matrix
>>> bool(abs(top.eigenvalues[0] - torch.linalg.eigvalsh(H)[-1]) < 1e-8)
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.linalg import lapack
from torch import nn

from ._model import Batches, buffers_of, check_model_and_loss, collate, eval_mode, model_dtype_device
from ._result import Result
from ._validate import check_choice, check_dtype, check_float, check_int, check_tensor

__all__ = [
    "HessianOperator",
    "hessian_operator",
    "hvp",
    "exact_hessian",
    "ExactHessian",
    "top_eigenvalues",
    "EigenResult",
    "trace",
    "TraceResult",
    "spectral_density",
    "SpectralDensity",
    "lanczos",
    "LanczosResult",
    "SharpnessTracker",
    "SharpnessHistory",
    "class_mean_gradients",
    "subspace_energy",
    "second_order_path",
    "OptimizationPath",
    "ScalarNetwork",
    "gradient_flow_solution",
    "plot_spectrum",
    "plot_sharpness",
    "plot_paths_2d",
]

ParamSelection = None | Sequence[str] | Callable[[str, torch.Tensor], bool]


# --------------------------------------------------------------------------------------------
# The Hessian as a linear operator
# --------------------------------------------------------------------------------------------


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


class HessianOperator:
    r"""The Hessian of the sample-weighted mean loss as a matrix-free operator ``v -> H v``.

    Parameters
    ----------
    model : nn.Module
        Never changed: evaluated with detached copies of its parameters.
    loss_fn : callable(outputs, targets) -> scalar
        Mean loss of a batch.
    data : ``(inputs, targets)`` or an iterable of such batches
        Collated once; batch ``b`` enters with weight ``n_b / n``.
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
        check_model_and_loss(model, loss_fn)
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
        self.batches: Batches = collate(data, "data").to(dtype=dtype, device=device)
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
        x, y = self.batches.batches[b]
        return self._loss_on(params, x, y)

    def _loss_on(self, params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of one batch ``(x, y)`` at ``params``: a flat vector or one tensor per parameter."""
        state = dict(self._fixed)
        if isinstance(params, torch.Tensor):
            state.update(self.unflatten(params))
        else:
            # parameter-shaped leaves enter as they are (a view would add a node to every product)
            state.update(
                {n: p if p.shape == sh else p.view(sh) for n, p, sh in zip(self.names, params, self.shapes)}
            )
        # buffers are cloned per call so train-mode BatchNorm cannot accumulate statistics
        state.update({k: v.clone() for k, v in self._buffers.items()})
        with eval_mode(self.model, self.mode == "train"):
            out = torch.func.functional_call(self.model, state, (x,))
        loss = self.loss_fn(out, y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(
                "`loss_fn` must return a scalar tensor (a mean over the batch), got "
                + (f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__)
            )
        return loss if loss.dim() == 0 else loss.reshape(())  # no view node for a 0-d loss

    def loss(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Sample-weighted mean loss at ``theta`` (flat, or one tensor per parameter; default: the model's)."""
        theta = self.theta if theta is None else theta
        if len(self.batches) == 1:  # weight 1: no extra multiply node in every product's graph
            return self._batch_loss(theta, 0)
        total = None
        for b, w in enumerate(self.batches.weights):
            lb = self._batch_loss(theta, b) * w
            total = lb if total is None else total + lb
        return total

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
    def _check_vectors(self, v: Any, name: str, ndim: int) -> torch.Tensor:
        v = check_tensor(v, name, ndim=ndim, floating=True)
        if v.shape[-1] != self.size:
            raise ValueError(
                f"`{name}` must have {self.size} entries per vector (the number of selected parameters), "
                f"got shape {tuple(v.shape)}"
            )
        return v.to(dtype=self.dtype, device=self.device)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat vector ``v`` of length ``size``."""
        v = self._check_vectors(v, "vector", 1)
        return self._matmat(v[None])[0]

    def default_block(self) -> int:
        """Products per backward pass: 1 on CPU, 32 on accelerators.

        Chosen by measurement: on CPU a vmapped backward over 33 vectors
        (``is_grads_batched=True``) was 1.2-1.5x *slower* than 33 sequential backward passes for
        the 4,482-parameter MLP of the benchmarks (benchmarks/curvature.md); on a GPU batching
        amortises kernel launches.
        """
        return 1 if self.device.type == "cpu" else 32

    def matmat(self, V: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """``H V^T`` row-wise: ``V`` has shape ``(m, size)``, the result too (rows ``H v_i``).

        Rows are processed in blocks of ``block`` (default :meth:`default_block`) with a vmapped
        backward pass.
        """
        V = self._check_vectors(V, "V", 2)
        block = self.default_block() if block is None else check_int(block, "block", minimum=1)
        return torch.cat([self._matmat(V[i : i + block]) for i in range(0, V.shape[0], block)])

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        m = V.shape[0]
        with torch.enable_grad():
            if self.cache_graph:
                leaves, g = self._cached()
                out = self._hvp(g, leaves, V)
            else:
                out = None
                for b, w in enumerate(self.batches.weights):
                    leaves = self._leaves()
                    gb = torch.autograd.grad(
                        self._batch_loss(leaves, b), leaves, create_graph=True, allow_unused=True
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

    def to_scipy(self):
        """A :class:`scipy.sparse.linalg.LinearOperator` (float64 numpy in and out)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x):
            x = np.asarray(x).reshape(-1)
            t = torch.from_numpy(np.ascontiguousarray(x)).to(dtype=self.dtype, device=self.device)
            return self._matmat(t[None])[0].to(torch.float64).cpu().numpy()

        def mm(X):
            X = np.asarray(X)
            t = torch.from_numpy(np.ascontiguousarray(X.T)).to(dtype=self.dtype, device=self.device)
            return (
                torch.cat([self._matmat(t[i : i + 32]) for i in range(0, t.shape[0], 32)])
                .to(torch.float64)
                .cpu()
                .numpy()
                .T
            )

        return LinearOperator((self.size, self.size), matvec=mv, matmat=mm, rmatvec=mv, dtype=np.float64)

    def random_vectors(self, m: int, seed: int, distribution: str = "rademacher") -> torch.Tensor:
        """``m`` random vectors (rows) from a seeded CPU generator, cast to the operator's dtype."""
        gen = torch.Generator().manual_seed(seed)
        if distribution == "rademacher":
            v = torch.randint(0, 2, (m, self.size), generator=gen, dtype=torch.float64) * 2 - 1
        else:
            v = torch.randn(m, self.size, generator=gen, dtype=torch.float64)
        return v.to(dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        return (
            f"HessianOperator(size={self.size}, dtype={self.dtype}, mode={self.mode!r}, "
            f"batches={len(self.batches)}, samples={self.batches.total}, matvecs={self.matvecs})"
        )


def hessian_operator(model, loss_fn, data, **kwargs) -> HessianOperator:
    """Build a :class:`HessianOperator` (same arguments); reuse it across estimates."""
    return HessianOperator(model, loss_fn, data, **kwargs)


def _operator(model, loss_fn, data, params, dtype, mode, cache_graph=None) -> HessianOperator:
    if isinstance(model, HessianOperator):
        if loss_fn is not None or data is not None:
            raise ValueError("pass either a HessianOperator alone or (model, loss_fn, data), not both")
        return model
    if loss_fn is None or data is None:
        raise TypeError("`loss_fn` and `data` are required when `model` is an nn.Module")
    return HessianOperator(
        model, loss_fn, data, params=params, dtype=dtype, mode=mode, cache_graph=cache_graph
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


# --------------------------------------------------------------------------------------------
# Exact Hessian
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ExactHessian(Result):
    """The dense Hessian of the mean loss (symmetrised) and how it was obtained.

    Attributes
    ----------
    matrix : torch.Tensor (n, n)
        ``(H + H^T) / 2`` of the numerically computed Hessian.
    names, shapes : parameter names and shapes, in the flattening order.
    loss : float
        The mean loss at the model's parameters.
    asymmetry : float
        ``max |H - H^T|`` before symmetrising (a numerical-accuracy diagnostic).
    """

    matrix: torch.Tensor
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    loss: float
    asymmetry: float
    dtype: torch.dtype
    mode: str

    @property
    def eigenvalues(self) -> torch.Tensor:
        """All eigenvalues in ascending order (``torch.linalg.eigvalsh``)."""
        return torch.linalg.eigvalsh(self.matrix)

    def eigh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (ascending) and orthonormal eigenvectors (columns)."""
        return torch.linalg.eigh(self.matrix)


def exact_hessian(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any = None,
    *,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
    max_params: int = 6000,
    block: int | None = None,
) -> ExactHessian:
    r"""The full Hessian ``H`` (n x n) of the sample-weighted mean loss, for small models.

    Computed column by column as ``H e_i`` (blocks of ``block`` unit vectors through a vmapped
    double backward pass; default :meth:`HessianOperator.default_block`), then symmetrised. Refuses more than ``max_params`` parameters
    (memory ``8 n^2`` bytes in float64).

    Parameters are as for :class:`HessianOperator`; pass ``dtype=torch.float64`` for a
    reference. ``model`` may also be a :class:`HessianOperator`.
    """
    op = _operator(model, loss_fn, data, params, dtype, mode)
    max_params = check_int(max_params, "max_params", minimum=1)
    if op.size > max_params:
        raise ValueError(
            f"exact_hessian: {op.size} parameters exceed `max_params`={max_params} (memory {8 * op.size**2 / 2**30:.1f} GiB "
            "in float64); select fewer with `params` or use top_eigenvalues / spectral_density"
        )
    eye = torch.eye(op.size, dtype=op.dtype, device=op.device)
    H = op.matmat(eye, block=block)
    asym = float((H - H.T).abs().max()) if op.size else 0.0
    H = (H + H.T) / 2
    loss = op._loss_value if op._loss_value is not None else float(op.loss().detach())
    return ExactHessian(H, tuple(op.names), tuple(op.shapes), loss, asym, op.dtype, op.mode)


# --------------------------------------------------------------------------------------------
# Top eigenvalues (ARPACK Lanczos on a LinearOperator)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class EigenResult(Result):
    """Extreme eigenvalues of the Hessian with diagnostics.

    Attributes
    ----------
    eigenvalues : np.ndarray (k,)
        Sorted in decreasing order for ``which="LA"``/``"LM"``, increasing for ``"SA"``.
    eigenvectors : torch.Tensor (n, k)
        Unit eigenvectors (columns), in the operator's dtype.
    residual_norms : np.ndarray (k,)
        ``||H v_i - lambda_i v_i||``, recomputed with ``k`` extra products when ``verify`` (the
        ``eigsh`` default), else the Lanczos recurrence value. For a symmetric ``H`` each
        ``lambda_i`` is within ``residual_norms[i]`` of a true eigenvalue.
    converged : np.ndarray of bool (k,)
        The method reported convergence and ``residual_norms[i] <= 10 * tol * max_j |lambda_j|``
        (``eigsh``) or ``<= 10 * tol * |lambda_i|`` (``lanczos``), or below the float noise floor.
    matvecs : int
        Hessian-vector products used (including the residual check).
    """

    eigenvalues: np.ndarray
    eigenvectors: torch.Tensor
    residual_norms: np.ndarray
    converged: np.ndarray
    matvecs: int
    which: str
    tol: float
    seed: int
    num_params: int
    method: str = "eigsh"

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))


def _default_tol(dtype: torch.dtype) -> float:
    return max(1e-10, 50 * torch.finfo(dtype).eps)


def _tridiag_eigh(alpha: list[float], beta: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal ``T(alpha, beta)``.

    LAPACK ``dstev`` directly: it runs once per Lanczos step, and the wrapper overhead of
    ``numpy.linalg.eigh`` / ``scipy.linalg.eigh_tridiagonal`` was measured at 3-5x its cost here.
    """
    m = len(alpha)
    if m == 1:
        return np.array(alpha, dtype=np.float64), np.ones((1, 1))
    d = np.array(alpha, dtype=np.float64)
    e = np.array(beta[: m - 1], dtype=np.float64)
    w, z, info = lapack.dstev(d, e, compute_v=1)
    if info != 0:  # QL did not converge (practically never): the robust MRRR path
        from scipy.linalg import eigh_tridiagonal

        return eigh_tridiagonal(d, e)
    return w, z


def _lanczos_extreme(
    op: HessianOperator,
    k: int,
    which: str,
    tol: float,
    maxiter: int | None,
    start: np.ndarray,
    stop: str = "residual",
):
    """Lanczos with full re-orthogonalisation, stopped when the ``k`` wanted Ritz pairs converge.

    Returns Ritz values (k,), Ritz vectors (n, k), residual estimates ``beta_m |s_{m,i}|`` and
    a converged flag per pair (``residual <= tol |theta|``, or an invariant Krylov space; with
    ``stop="gap"`` the error estimate ``min(r, r^2 / gap)`` replaces ``r``).
    """
    n = op.size
    steps = min(n, maxiter if maxiter is not None else 300)
    V = torch.empty(min(steps, 16), n, dtype=op.dtype, device=op.device)  # grown on demand
    q = torch.from_numpy(np.ascontiguousarray(start)).to(dtype=op.dtype, device=op.device)
    V[0] = q / q.norm()
    alpha: list[float] = []
    beta: list[float] = []
    floor = 10 * torch.finfo(op.dtype).eps

    def wanted(theta):  # theta is in ascending order
        if which == "SA":
            return np.arange(min(k, len(theta)))
        if which == "LM":
            return np.argsort(-np.abs(theta), kind="stable")[:k]
        return np.arange(len(theta) - 1, max(len(theta) - 1 - k, -1), -1)

    def estimates(theta, idx, res) -> list[float]:
        """Error estimate per wanted pair: ``r`` or, with ``stop="gap"``, ``min(r, r^2 / gap)``.

        Plain floats: it runs once per product, and numpy calls on these tiny arrays cost more
        than the arithmetic (measured in situ, benchmarks/curvature.md).
        """
        if stop != "gap" or len(theta) < 2:
            return res.tolist()
        th, out = theta.tolist(), []
        for i, r_i in zip(idx.tolist(), res.tolist()):
            gap = min(
                th[i] - th[i - 1] if i > 0 else math.inf, th[i + 1] - th[i] if i + 1 < len(th) else math.inf
            )
            out.append(min(r_i, r_i * r_i / max(gap, 1e-300)))
        return out

    theta = S = idx = None
    res = None
    for j in range(steps):
        w = op._matmat(V[j : j + 1])[0]
        Vj = V[: j + 1]
        # full re-orthogonalisation, twice (classical Gram-Schmidt); c[j] = v_j . H v_j = alpha_j
        c = Vj @ w
        w = torch.addmv(w, Vj.T, c, alpha=-1.0)
        w = torch.addmv(w, Vj.T, Vj @ w, alpha=-1.0)
        a_j, b = torch.stack([c[j], torch.linalg.vector_norm(w)]).tolist()  # one device sync
        alpha.append(a_j)
        m = j + 1
        if m >= k:
            theta, S = _tridiag_eigh(alpha, beta)
            scale = max(abs(float(theta[0])), abs(float(theta[-1])), 1e-300)  # theta ascending
            if b <= floor * scale:  # invariant subspace: the Ritz pairs are exact
                idx = wanted(theta)
                res = np.zeros(k)
                break
            idx = wanted(theta)
            res = b * np.abs(S[-1, idx])
            th = theta.tolist()
            converged = all(
                e_i <= tol * max(abs(th[i]), floor * scale)
                for i, e_i in zip(idx.tolist(), estimates(theta, idx, res))
            )
            if converged:
                break
        elif b <= floor * max(abs(a) for a in alpha):
            break
        if j + 1 < steps:
            beta.append(b)
            if j + 1 == V.shape[0]:
                V = torch.cat(
                    [
                        V,
                        torch.empty(
                            min(steps, 2 * V.shape[0]) - V.shape[0], n, dtype=V.dtype, device=V.device
                        ),
                    ]
                )
            torch.mul(w, 1.0 / b, out=V[j + 1])
    m = len(alpha)
    if theta is None or len(theta) != m:  # stopped before k Ritz values existed
        theta, S = _tridiag_eigh(alpha, beta[: m - 1])
        idx = wanted(theta)
        res = np.full(len(idx), np.inf)
    vals = np.full(k, np.nan)
    vecs = torch.full((n, k), float("nan"), dtype=op.dtype, device=op.device)
    r = np.full(k, np.nan)
    got = len(idx)
    vals[:got] = theta[idx]
    Sm = torch.from_numpy(np.ascontiguousarray(S[:, idx])).to(dtype=op.dtype, device=op.device)
    vecs[:, :got] = V[:m].T @ Sm
    r[:got] = res
    ok = np.zeros(k, dtype=bool)
    err = np.array(estimates(theta, idx, res))
    ok[:got] = err <= tol * np.maximum(np.abs(theta[idx]), 1e-300) * 10
    return vals, vecs, r, ok


def top_eigenvalues(
    model: nn.Module | HessianOperator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    data: Any = None,
    k: int = 1,
    *,
    which: str = "LA",
    method: str = "eigsh",
    tol: float | None = None,
    maxiter: int | None = None,
    ncv: int | None = None,
    v0: torch.Tensor | None = None,
    seed: int = 0,
    verify: bool | None = None,
    stop: str = "residual",
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> EigenResult:
    r"""The ``k`` extreme eigenvalues of the Hessian of the mean loss and their eigenvectors.

    Two Lanczos methods on the matrix-free Hessian, both far faster than power iteration when the
    top eigenvalues are close, and both iterating until *each* requested pair has converged (no
    silent fixed iteration count):

    * ``method="eigsh"`` (default): implicitly restarted Lanczos (ARPACK through
      :func:`scipy.sparse.linalg.eigsh` on a ``LinearOperator``) with an ``ncv``-dimensional
      Krylov space (at least ``ncv`` products): the robust choice.
    * ``method="lanczos"``: one growing Krylov space with full re-orthogonalisation, stopping as
      soon as every wanted Ritz pair has ``||H v - theta v|| <= tol |theta|`` (the residual norm is
      ``beta_m |s_{m,i}|`` from the recurrence). Uses as few products as the spectrum allows
      (e.g. 5-6 for the benchmark MLP), which suits cheap repeated estimates; at most ``maxiter``
      (default ``min(n, 300)``) steps. Like every single-vector Krylov method it finds one copy of
      a repeated eigenvalue.

    For a symmetric ``H`` a residual norm ``r`` certifies that a true eigenvalue lies within ``r``
    of ``theta``.

    Parameters
    ----------
    k : int
        Number of eigenpairs (``1 <= k < n``).
    which : ``"LA"`` (largest algebraic, default: the sharpness), ``"SA"`` (smallest algebraic:
        the most negative curvature) or ``"LM"`` (largest magnitude, which may return a negative
        eigenvalue).
    method : ``"eigsh"`` (default) or ``"lanczos"``, see above.
    tol : float, optional
        Relative tolerance on the residual; default ``max(1e-10, 50 eps(dtype))`` (about ``6e-6`` in
        float32, whose products are themselves only accurate to ~1e-7).
    maxiter, ncv : ``eigsh``: passed on (defaults: ARPACK's, ``ncv = max(2k + 1, 20)``);
        ``lanczos``: ``maxiter`` is the maximum number of steps, ``ncv`` is ignored.
    verify : bool, optional
        Recompute the residual norms with ``k`` extra products (default: on for ``eigsh``, off for
        ``lanczos``, whose recurrence residuals are accurate with full re-orthogonalisation).
    stop : ``"residual"`` (default) or ``"gap"``
        ``lanczos`` only. ``"residual"`` stops when ``||r_i|| <= tol |theta_i|``, a certificate.
        ``"gap"`` stops when the a-posteriori estimate ``min(||r_i||, ||r_i||^2 / gap_i) <= tol
        |theta_i|``, with ``gap_i`` the distance to the nearest other Ritz value (B. N. Parlett,
        *The Symmetric Eigenvalue Problem*, 1998, section 11.7): usually one or two products fewer,
        but an estimate, not a bound, because Ritz values can over-estimate the gap.
    v0 : torch.Tensor, optional
        Starting vector (e.g. the previous top eigenvector when tracking during training);
        default a Gaussian vector drawn with ``seed``.
    params, dtype, mode : see :class:`HessianOperator`.

    Returns
    -------
    EigenResult
        ``eigenvalues``, ``eigenvectors``, ``residual_norms``, ``converged``, ``matvecs``.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    >>> x, y = torch.randn(30, 2).double(), torch.randint(0, 2, (30,))
    >>> res = top_eigenvalues(net, torch.nn.functional.cross_entropy, (x, y), k=2, seed=0)
    >>> res.eigenvalues.shape, bool(res.all_converged)
    ((2,), True)
    """
    op = _operator(model, loss_fn, data, params, dtype, mode)
    n = op.size
    k = check_int(k, "k", minimum=1)
    if k >= n:
        raise ValueError(
            f"`k` must be smaller than the number of parameters ({n}); use exact_hessian for all of them"
        )
    check_choice(which, "which", ("LA", "SA", "LM"))
    seed = check_int(seed, "seed", minimum=0)
    tol = _default_tol(op.dtype) if tol is None else check_float(tol, "tol", minimum=0.0)
    if maxiter is not None:
        maxiter = check_int(maxiter, "maxiter", minimum=1)
    if ncv is not None:
        ncv = check_int(ncv, "ncv", minimum=k + 1, maximum=n)
    if v0 is None:
        start = np.random.default_rng(seed).standard_normal(n)  # 3x cheaper than torch.randn in float64
    else:
        v0 = op._check_vectors(v0, "v0", 1)
        start = v0.detach().to(torch.float64).cpu().numpy()
        if not np.linalg.norm(start) > 0:
            raise ValueError("`v0` must be a non-zero vector")
    check_choice(method, "method", ("eigsh", "lanczos"))
    check_choice(stop, "stop", ("residual", "gap"))
    verify = (method == "eigsh") if verify is None else bool(verify)
    before = op.matvecs
    arpack_ok = np.ones(k, dtype=bool)
    ritz_res = None
    if method == "lanczos":
        vals, vecs, ritz_res, arpack_ok = _lanczos_extreme(op, k, which, tol, maxiter, start, stop)
        if not arpack_ok.all():
            warnings.warn(
                f"top_eigenvalues: Lanczos did not reach tol={tol:g} for {int((~arpack_ok).sum())} of k={k} "
                "eigenpairs within `maxiter` steps (see `converged` and `residual_norms`)",
                RuntimeWarning,
                stacklevel=2,
            )
        vecs = vecs.to(torch.float64).cpu().numpy()
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        try:
            vals, vecs = eigsh(op.to_scipy(), k=k, which=which, tol=tol, maxiter=maxiter, ncv=ncv, v0=start)
        except ArpackNoConvergence as exc:
            vals, vecs = exc.eigenvalues, exc.eigenvectors
            got = len(vals)
            warnings.warn(
                f"top_eigenvalues: ARPACK converged for only {got} of k={k} eigenpairs; the rest are NaN "
                "(raise `maxiter`/`ncv` or loosen `tol`)",
                RuntimeWarning,
                stacklevel=2,
            )
            arpack_ok = np.arange(k) < got
            vals = np.concatenate([vals, np.full(k - got, np.nan)])
            vecs = np.concatenate([vecs, np.full((n, k - got), np.nan)], axis=1)
    order = np.argsort(vals) if which == "SA" else np.argsort(-np.abs(vals) if which == "LM" else -vals)
    order = np.array([i for i in order if not np.isnan(vals[i])] + [i for i in order if np.isnan(vals[i])])
    vals, vecs = vals[order], vecs[:, order]
    arpack_ok = arpack_ok[order]
    V = torch.from_numpy(np.ascontiguousarray(vecs.T)).to(dtype=op.dtype, device=op.device)
    finite = ~np.isnan(vals)
    res = np.full(k, np.nan)
    if verify and finite.any():
        HV = op.matmat(V[torch.from_numpy(finite)])
        lam = torch.as_tensor(vals[finite], dtype=op.dtype, device=op.device)
        res[finite] = (
            (HV - lam[:, None] * V[torch.from_numpy(finite)]).norm(dim=1).to(torch.float64).cpu().numpy()
        )
    elif ritz_res is not None:
        res = ritz_res[order]
    scale = np.nanmax(np.abs(vals)) if finite.any() else 0.0
    floor = 100 * torch.finfo(op.dtype).eps * max(scale, 1e-30) * math.sqrt(n)
    if method == "lanczos" and stop == "gap" and not verify:
        converged = arpack_ok & finite  # the gap estimate was checked inside the iteration
    elif method == "lanczos":
        converged = (
            arpack_ok
            & finite
            & (np.nan_to_num(res, nan=np.inf) <= np.maximum(10 * tol * np.abs(vals), floor))
        )
    else:
        converged = arpack_ok & finite & (np.nan_to_num(res, nan=np.inf) <= max(10 * tol * scale, floor))
    return EigenResult(
        eigenvalues=vals.astype(np.float64),
        eigenvectors=V.T.contiguous(),
        residual_norms=res,
        converged=converged,
        matvecs=op.matvecs - before,
        which=which,
        tol=tol,
        seed=seed,
        num_params=n,
        method=method,
    )


# --------------------------------------------------------------------------------------------
# Trace: Hutch++ and Hutchinson
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TraceResult(Result):
    r"""A stochastic estimate of ``tr(H)``.

    Attributes
    ----------
    trace : float
        The estimate.
    standard_error : float
        Standard error of the stochastic part (Hutchinson: ``std(z^T H z) / sqrt(m)``; Hutch++:
        the same for the deflated remainder, the low-rank part being exact given the sketch).
    matvecs : int
        Hessian-vector products used.
    method, distribution, seed : the settings.
    samples : np.ndarray
        The individual quadratic forms of the stochastic part.
    low_rank_part : float
        Hutch++ only: ``tr(Q^T H Q)`` of the sketch (0 for Hutchinson).
    """

    trace: float
    standard_error: float
    matvecs: int
    method: str
    distribution: str
    seed: int
    samples: np.ndarray
    low_rank_part: float
    num_params: int


def trace(
    model: nn.Module | HessianOperator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    data: Any = None,
    *,
    method: str = "hutch++",
    matvecs: int = 99,
    distribution: str = "rademacher",
    seed: int = 0,
    block: int | None = None,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> TraceResult:
    r"""Estimate ``tr(H)`` with ``matvecs`` Hessian-vector products.

    Hutchinson: ``tr(H) ~ (1/m) sum_i z_i^T H z_i`` with independent random ``z_i``
    (``E z z^T = I``); its variance is ``2 ||H||_F^2 / m`` for Rademacher vectors.

    Hutch++ (default; Meyer, Musco, Musco & Woodruff, "Hutch++: Optimal Stochastic Trace
    Estimation", SOSA 2021, arXiv:2010.09649): with ``m`` products split in thirds, sketch
    ``Q = orth(H S)`` with ``S`` of ``m/3`` random columns, then

    .. math::

        \widehat{\mathrm{tr}}(H) = \mathrm{tr}(Q^T H Q)
          + \frac{3}{m} \sum_i g_i^T (I - QQ^T) H (I - QQ^T) g_i ,

    exact on the top ``m/3`` eigen-directions and Hutchinson on the rest: error
    ``O(||H||_* / m)`` instead of ``O(||H||_F / sqrt(m))``.

    Parameters
    ----------
    method : ``"hutch++"`` (default) or ``"hutchinson"``
    matvecs : int
        Budget of Hessian-vector products (Hutch++ needs at least 3).
    distribution : ``"rademacher"`` (default) or ``"gaussian"``
    block : int, optional
        Products computed together in one vmapped backward pass (default
        :meth:`HessianOperator.default_block`: 1 on CPU, where batching was measured slower).
    """
    op = _operator(model, loss_fn, data, params, dtype, mode)
    method = check_choice(method, "method", ("hutch++", "hutchinson"))
    distribution = check_choice(distribution, "distribution", ("rademacher", "gaussian"))
    m = check_int(matvecs, "matvecs", minimum=3 if method == "hutch++" else 2)
    seed = check_int(seed, "seed", minimum=0)
    block = op.default_block() if block is None else check_int(block, "block", minimum=1)
    before = op.matvecs
    if method == "hutchinson":
        Z = op.random_vectors(m, seed, distribution)
        HZ = op.matmat(Z, block=block)
        samples = (Z * HZ).sum(1).to(torch.float64).cpu().numpy()
        low = 0.0
    else:
        s = m // 3
        g = m - 2 * s
        R = op.random_vectors(s + g, seed, distribution)
        S, G = R[:s], R[s:]
        Y = op.matmat(S, block=block)  # rows H s_i
        Q, _ = torch.linalg.qr(Y.T.to(torch.float64))  # (n, s), orthonormal in float64
        HQ = op.matmat(Q.T.to(op.dtype), block=block).to(torch.float64)  # rows H q_i
        low = float((Q.T * HQ).sum())
        G64 = G.to(torch.float64)
        Gp = G64 - (G64 @ Q) @ Q.T  # rows (I - QQ^T) g_i
        HGp = op.matmat(Gp.to(op.dtype), block=block).to(torch.float64)
        samples = (Gp * HGp).sum(1).cpu().numpy()
    est = low + float(samples.mean())
    se = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.inf
    return TraceResult(est, se, op.matvecs - before, method, distribution, seed, samples, low, op.size)


# --------------------------------------------------------------------------------------------
# Lanczos with full re-orthogonalisation, and stochastic Lanczos quadrature
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class LanczosResult(Result):
    """A Lanczos tridiagonalisation ``V^T H V = T`` started from ``v0``.

    Attributes
    ----------
    alpha, beta : np.ndarray
        Diagonal (m,) and off-diagonal (m - 1,) of ``T``.
    basis : torch.Tensor (m, n)
        Orthonormal Lanczos vectors (rows).
    orthogonality_loss : float
        ``max |V V^T - I|``.
    breakdown : bool
        The Krylov space became invariant before ``steps`` (then ``m < steps`` and the Ritz
        values are exact eigenvalues of ``H``).
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: torch.Tensor
    orthogonality_loss: float
    breakdown: bool
    matvecs: int

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values ``theta_j`` and the squared first components ``tau_j`` of T's eigenvectors."""
        from scipy.linalg import eigh_tridiagonal

        if len(self.alpha) == 1:
            return self.alpha.copy(), np.ones(1)
        theta, S = eigh_tridiagonal(self.alpha, self.beta)
        return theta, S[0] ** 2


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor] | HessianOperator,
    v0: torch.Tensor,
    steps: int,
    *,
    reorthogonalize: bool = True,
    breakdown_tol: float | None = None,
) -> LanczosResult:
    r"""``steps`` Lanczos iterations from ``v0`` with full re-orthogonalisation.

    Each new vector is orthogonalised twice against all previous ones (classical Gram-Schmidt,
    twice is enough); without it Lanczos loses orthogonality and produces spurious copies of
    the extreme eigenvalues ("ghosts"). Stops early when ``beta_j`` falls below
    ``breakdown_tol * max|alpha|`` (invariant subspace). ``matvec`` maps a vector of length ``n``
    to ``H v`` (a :class:`HessianOperator` works).
    """
    steps = check_int(steps, "steps", minimum=1)
    v0 = check_tensor(v0, "v0", ndim=1, floating=True)
    mv = matvec.matvec if isinstance(matvec, HessianOperator) else matvec
    if not callable(mv):
        raise TypeError("`matvec` must be callable(v) -> H v or a HessianOperator")
    n = v0.shape[0]
    steps = min(steps, n)
    tol = (100 * torch.finfo(v0.dtype).eps) if breakdown_tol is None else breakdown_tol
    nrm = v0.norm()
    if not nrm > 0:
        raise ValueError("`v0` must be non-zero")
    V = torch.empty(steps, n, dtype=v0.dtype, device=v0.device)
    V[0] = v0 / nrm
    alpha, beta = [], []
    count, breakdown, scale = 0, False, 0.0
    for j in range(steps):
        w = mv(V[j])
        count += 1
        a = float(torch.dot(w, V[j]))
        alpha.append(a)
        scale = max(scale, abs(a))
        if j == steps - 1:
            break
        if reorthogonalize:
            w = w - V[: j + 1].T @ (V[: j + 1] @ w)
            w = w - V[: j + 1].T @ (V[: j + 1] @ w)
        else:
            w = w - a * V[j] - (beta[-1] * V[j - 1] if j > 0 else 0)
        b = float(w.norm())
        if b <= tol * max(scale, 1e-300):
            breakdown = True
            break
        beta.append(b)
        V[j + 1] = w / b
    m = len(alpha)
    V = V[:m]
    gram = V @ V.T
    ortho = float((gram - torch.eye(m, dtype=V.dtype, device=V.device)).abs().max())
    return LanczosResult(np.array(alpha), np.array(beta[: m - 1]), V, ortho, breakdown, count)


@dataclass(frozen=True, repr=False)
class SpectralDensity(Result):
    r"""Stochastic Lanczos quadrature estimate of the Hessian's spectral density.

    The spectral measure ``mu = (1/n) sum_i delta(lambda_i)`` is approximated by the discrete
    measure with ``nodes[l]`` (Ritz values of probe ``l``) and ``weights[l]`` (squared first
    components, summing to 1 per probe), averaged over the probes.

    Attributes
    ----------
    nodes, weights : tuple of np.ndarray, one per probe
    matvecs : int
    steps : int
        Requested Lanczos steps per probe (a probe that breaks down uses fewer).
    num_params : int
    orthogonality_loss : float
        Worst ``max |V V^T - I|`` over probes.
    breakdowns : int
        Probes whose Krylov space became invariant (exact quadrature).
    trace_estimate, trace_standard_error : float
        ``n * sum_j tau_j theta_j`` averaged over probes (a Hutchinson-type trace estimate).
    seed : int
    """

    nodes: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    matvecs: int
    steps: int
    num_params: int
    orthogonality_loss: float
    breakdowns: int
    trace_estimate: float
    trace_standard_error: float
    seed: int
    settings: dict = field(default_factory=dict)

    @property
    def all_nodes(self) -> np.ndarray:
        return np.concatenate(self.nodes)

    @property
    def all_weights(self) -> np.ndarray:
        """Weights of :attr:`all_nodes`, summing to 1."""
        return np.concatenate(self.weights) / len(self.weights)

    def density(
        self, grid: np.ndarray | None = None, sigma: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""Gaussian-smoothed density ``phi(t) = sum_j w_j N(t; theta_j, sigma^2)`` on ``grid``.

        Defaults: ``sigma`` = 1% of the Ritz-value range, ``grid`` = 1000 points covering the
        range with a margin of ``5 sigma``. Returns ``(grid, density)``; the density integrates to 1.
        """
        th, w = self.all_nodes, self.all_weights
        lo, hi = float(th.min()), float(th.max())
        if sigma is None:
            sigma = 0.01 * max(hi - lo, 1e-12)
        sigma = check_float(sigma, "sigma", positive=True)
        if grid is None:
            grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, 1000)
        grid = np.asarray(grid, dtype=np.float64)
        z = (grid[:, None] - th[None, :]) / sigma
        dens = (np.exp(-0.5 * z**2) * w[None, :]).sum(1) / (sigma * math.sqrt(2 * math.pi))
        return grid, dens

    def wasserstein(self, eigenvalues: Any) -> float:
        """Wasserstein-1 distance between this quadrature measure and the empirical measure of
        ``eigenvalues`` (e.g. the exact spectrum), by :func:`scipy.stats.wasserstein_distance`."""
        from scipy.stats import wasserstein_distance

        ev = np.asarray(torch.as_tensor(eigenvalues).detach().cpu().to(torch.float64)).reshape(-1)
        return float(wasserstein_distance(self.all_nodes, ev, u_weights=self.all_weights))


def spectral_density(
    model: nn.Module | HessianOperator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    data: Any = None,
    *,
    num_probes: int = 10,
    steps: int = 90,
    seed: int = 0,
    distribution: str = "rademacher",
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> SpectralDensity:
    r"""Spectral density of the Hessian by stochastic Lanczos quadrature (SLQ).

    Ghorbani, Krishnan & Xiao, "An Investigation into Neural Net Optimization via Hessian
    Eigenvalue Density", ICML 2019, arXiv:1901.10159 (their defaults: 90 steps, 10 probes).
    For each random unit vector ``v`` (``E[n v v^T] = I``), ``m`` Lanczos steps with full
    re-orthogonalisation give ``T = S diag(theta) S^T`` and the Gauss quadrature

    .. math::

        v^T f(H) v \approx \sum_{j=1}^m \tau_j f(\theta_j), \qquad \tau_j = S_{1j}^2,

    so ``(1/n) tr f(H) = E[v^T f(H) v] ~ (1/n_v) sum_l sum_j tau_j^l f(theta_j^l)``. The extreme
    Ritz values converge first; the bulk is resolved to about ``range / m``.

    Returns a :class:`SpectralDensity`; use ``.density(grid, sigma)`` for a smoothed curve and
    ``.wasserstein(exact_eigenvalues)`` to compare with an exact spectrum.
    """
    op = _operator(model, loss_fn, data, params, dtype, mode)
    num_probes = check_int(num_probes, "num_probes", minimum=1)
    steps = check_int(steps, "steps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    distribution = check_choice(distribution, "distribution", ("rademacher", "gaussian"))
    before = op.matvecs
    Z = op.random_vectors(num_probes, seed, distribution)
    nodes, weights, ortho, breaks, traces = [], [], 0.0, 0, []
    try:
        from tqdm.auto import tqdm

        it = tqdm(range(num_probes), desc="SLQ probes", leave=False, disable=num_probes * steps < 500)
    except ImportError:  # pragma: no cover
        it = range(num_probes)
    for i in it:
        lz = lanczos(op, Z[i], steps)
        th, tau = lz.ritz()
        nodes.append(th)
        weights.append(tau / tau.sum())
        ortho = max(ortho, lz.orthogonality_loss)
        breaks += int(lz.breakdown)
        traces.append(op.size * float((tau * th).sum()))
    tr = np.array(traces)
    se = float(tr.std(ddof=1) / math.sqrt(len(tr))) if len(tr) > 1 else math.inf
    return SpectralDensity(
        tuple(nodes),
        tuple(weights),
        op.matvecs - before,
        steps,
        op.size,
        ortho,
        breaks,
        float(tr.mean()),
        se,
        seed,
        {"num_probes": num_probes, "distribution": distribution, "dtype": str(op.dtype)},
    )


# --------------------------------------------------------------------------------------------
# Class structure of the Hessian's outliers
# --------------------------------------------------------------------------------------------


def class_mean_gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any,
    *,
    cross: bool = False,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> torch.Tensor:
    r"""Per-class mean loss gradients, the directions that carry the Hessian's outliers.

    With integer labels ``y`` in ``[0, K)``: row ``c`` is
    ``g_c = (1/n_c) sum_{i: y_i = c} grad_theta loss(f(x_i), c)``; with ``cross=True`` the result
    has shape ``(K, K, n)`` and entry ``[c, c']`` is the mean over class ``c`` of the gradient of
    the loss *as if the label were* ``c'`` (V. Papyan, "Measurements of Three-Level Hierarchical
    Structure in the Outliers in the Spectrum of Deepnet Hessians", ICML 2019, arXiv:1901.08244:
    the ``K`` class means explain the top outliers, the ``K(K-1)`` cross-class means the next
    level). L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of the
    Hessian of Over-Parametrized Neural Networks", 2017, arXiv:1706.04454, observed that the number
    of outliers follows the number of classes.

    ``loss_fn`` must be a mean over the batch (so the class means are sample means). Returns a
    float tensor in the operator's dtype, parameters flattened as in :class:`HessianOperator`.
    """
    op = HessianOperator(model, loss_fn, data, params=params, dtype=dtype, mode=mode)
    x, y = op.batches.cat()
    if y.ndim != 1 or y.is_floating_point():
        raise TypeError(
            f"`data` targets must be integer class labels of shape (n,), got {y.dtype} {tuple(y.shape)}"
        )
    classes = int(y.max()) + 1
    out = torch.zeros(
        (classes, classes, op.size) if cross else (classes, op.size), dtype=op.dtype, device=op.device
    )
    for c in range(classes):
        m = y == c
        if not bool(m.any()):
            raise ValueError(
                f"`data` has no sample of class {c} (labels must be 0..K-1 with every class present)"
            )
        for c2 in range(classes) if cross else [c]:
            leaves = op._leaves()
            with torch.enable_grad():
                loss = op._loss_on(leaves, x[m], torch.full_like(y[m], c2))
                g = op._flat(torch.autograd.grad(loss, leaves, allow_unused=True)).detach()
            if cross:
                out[c, c2] = g
            else:
                out[c] = g
    return out


def subspace_energy(vectors: torch.Tensor, spanning: torch.Tensor, *, rtol: float = 1e-10) -> torch.Tensor:
    r"""Fraction of each vector's squared norm inside ``span(spanning)``.

    ``vectors`` has shape ``(n, m)`` (columns, e.g. eigenvectors), ``spanning`` shape ``(r, n)``
    (rows). Returns ``||P v_j||^2 / ||v_j||^2`` for each column, with ``P`` the orthogonal projector
    on the span (rank decided by the singular values above ``rtol`` times the largest).
    """
    V = check_tensor(vectors, "vectors", ndim=2, floating=True)
    S = check_tensor(spanning, "spanning", ndim=2, floating=True)
    if S.shape[1] != V.shape[0]:
        raise ValueError(
            f"`spanning` rows must have length {V.shape[0]} (the vectors' length), got {tuple(S.shape)}"
        )
    U, sv, _ = torch.linalg.svd(S.T.to(V.dtype), full_matrices=False)
    rank = int((sv > rtol * sv.max()).sum()) if sv.numel() else 0
    Q = U[:, :rank]
    return ((Q.T @ V) ** 2).sum(0) / (V**2).sum(0)


# --------------------------------------------------------------------------------------------
# Sharpness during training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SharpnessHistory(Result):
    """Top Hessian eigenvalues recorded during training by :class:`SharpnessTracker`.

    ``eigenvalues[t]`` (k values, decreasing) was computed at ``steps[t]``; ``converged`` and
    ``residual_norms`` are the per-call diagnostics, ``matvecs`` the total cost.
    """

    steps: np.ndarray
    eigenvalues: np.ndarray
    converged: np.ndarray
    residual_norms: np.ndarray
    losses: np.ndarray
    matvecs: int

    @property
    def sharpness(self) -> np.ndarray:
        """The top eigenvalue at each recorded step."""
        return self.eigenvalues[:, 0]


class SharpnessTracker:
    r"""Training callback recording the top Hessian eigenvalue(s) ("sharpness").

    Compatible with :func:`lossviz.train.fit` (``callback(step, model, loss, history)``); it
    records into ``history`` under ``"sharpness"`` as well and never returns ``True`` (never
    stops training). Each call warm-starts Lanczos from the previous top eigenvector, so tracking
    costs a handful of products per step once the eigenvector moves slowly. With gradient
    descent at step size ``eta`` the sharpness rises to about ``2 / eta`` and hovers there
    (Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of
    Stability", ICLR 2021, arXiv:2103.00065).

    Parameters
    ----------
    loss_fn, data : as for :class:`HessianOperator` (usually the full training set).
    every : int
        Compute at steps divisible by ``every`` (and at the final step).
    k, tol, seed, method, params, dtype, mode : as for :func:`top_eigenvalues` (``method="lanczos"``
        with ``warm_start`` needs only a few products per call once the eigenvector moves slowly).
    warm_start : bool
        Start each call from the previous top eigenvector (default ``True``). Caveat: with
        ``method="lanczos"`` a warm start can converge to (and correctly certify) the *previous*
        top eigenpair when another eigenvalue overtakes it between calls; the default ``eigsh``
        searches a 20-dimensional Krylov space and is much less exposed to that.

    Example
    -------
    >>> import torch
    >>> from lossviz import train
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> x, y = torch.randn(32, 2), torch.randn(32, 1)
    >>> tracker = SharpnessTracker(torch.nn.functional.mse_loss, (x, y), every=5)
    >>> _ = train.fit(net, torch.nn.functional.mse_loss, (x, y), steps=10, lr=0.1,
    ...               callbacks=[tracker], progress=False)
    >>> tracker.result().steps.tolist()
    [0, 5, 10]
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        *,
        every: int = 1,
        k: int = 1,
        tol: float | None = None,
        seed: int = 0,
        params: ParamSelection = None,
        dtype: torch.dtype | str | None = None,
        mode: str = "eval",
        warm_start: bool = True,
        method: str = "eigsh",
    ):
        if not callable(loss_fn):
            raise TypeError(f"`loss_fn` must be callable(outputs, targets), got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn
        self.batches = collate(data, "data")
        self.every = check_int(every, "every", minimum=1)
        self.k = check_int(k, "k", minimum=1)
        self.tol = tol
        self.seed = check_int(seed, "seed", minimum=0)
        self.params = params
        self.dtype = check_dtype(dtype, "dtype")
        self.mode = check_choice(mode, "mode", ("eval", "train"))
        self.warm_start = bool(warm_start)
        self.method = check_choice(method, "method", ("eigsh", "lanczos"))
        self._steps: list[int] = []
        self._vals: list[np.ndarray] = []
        self._conv: list[np.ndarray] = []
        self._res: list[np.ndarray] = []
        self._loss: list[float] = []
        self._matvecs = 0
        self._v0: torch.Tensor | None = None

    def __call__(
        self, step: int, model: nn.Module, loss: float | None = None, history: Any = None, final: bool = False
    ):
        if step % self.every != 0 and not final:
            return None
        if self._steps and self._steps[-1] == step:
            return None
        op = HessianOperator(
            model, self.loss_fn, self.batches, params=self.params, dtype=self.dtype, mode=self.mode
        )
        v0 = self._v0 if (self.warm_start and self._v0 is not None and self._v0.shape[0] == op.size) else None
        r = top_eigenvalues(op, k=self.k, tol=self.tol, seed=self.seed, v0=v0, method=self.method)
        if np.isfinite(r.eigenvalues[0]):
            self._v0 = r.eigenvectors[:, 0].detach().clone()
        self._steps.append(int(step))
        self._vals.append(r.eigenvalues)
        self._conv.append(r.converged)
        self._res.append(r.residual_norms)
        self._loss.append(math.nan if loss is None else float(loss))
        self._matvecs += r.matvecs
        if history is not None and hasattr(history, "record"):
            history.record("sharpness", int(step), float(r.eigenvalues[0]))
        return None

    def result(self) -> SharpnessHistory:
        """The recorded values as a frozen :class:`SharpnessHistory`."""
        k = self.k
        return SharpnessHistory(
            np.array(self._steps, dtype=int),
            np.array(self._vals).reshape(-1, k),
            np.array(self._conv, dtype=bool).reshape(-1, k),
            np.array(self._res).reshape(-1, k),
            np.array(self._loss),
            self._matvecs,
        )


# --------------------------------------------------------------------------------------------
# Gradient descent, Newton and saddle-free Newton on small functions (exact Hessian)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class OptimizationPath(Result):
    """Iterates of :func:`second_order_path`.

    Attributes
    ----------
    points : np.ndarray (T + 1, n)
    values : np.ndarray (T + 1,)
        ``f`` at each iterate.
    grad_norms : np.ndarray (T + 1,)
    min_eigenvalues : np.ndarray (T + 1,)
        Smallest Hessian eigenvalue at each iterate.
    step_sizes : np.ndarray (T,)
        The accepted step length multiplier per step (1 without line search).
    method, settings : what was run.
    stopped : str
        ``"max_steps"``, ``"gradient"`` (``|g| <= grad_tol``), ``"target"`` (``f <= target``),
        ``"diverged"`` or ``"stalled"`` (line search failed).
    """

    points: np.ndarray
    values: np.ndarray
    grad_norms: np.ndarray
    min_eigenvalues: np.ndarray
    step_sizes: np.ndarray
    method: str
    stopped: str
    settings: dict

    def steps_to(self, target: float) -> int | None:
        """First step at which ``f <= target`` (``None`` if never)."""
        hit = np.nonzero(self.values <= target)[0]
        return int(hit[0]) if len(hit) else None


def second_order_path(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: Any,
    *,
    method: str = "sfn",
    steps: int = 100,
    lr: float = 1.0,
    damping: float = 1e-4,
    line_search: bool | None = None,
    armijo: float = 1e-4,
    pinv_rtol: float = 1e-12,
    grad_tol: float = 0.0,
    divergence: float = 1e12,
    target: float | None = None,
    track_hessian: bool | None = None,
) -> OptimizationPath:
    r"""Run gradient descent, Newton or saddle-free Newton on ``f`` with its exact Hessian.

    ``f`` maps a float64 vector to a scalar tensor (it is differentiated with autograd; the
    Hessian costs ``n`` backward passes, so keep ``n`` small). With
    ``H = U diag(lambda) U^T`` and ``g`` the gradient:

    * ``"gd"``: ``x <- x - lr g``.
    * ``"newton"``: ``x <- x - lr H^+ g`` with the pseudo-inverse ignoring directions with
      ``|lambda| <= pinv_rtol max|lambda|`` (exactly flat directions); attracted to *any* critical
      point, saddles included, because it rescales each direction by ``1/lambda``.
    * ``"sfn"``: saddle-free Newton, ``x <- x - t (|H| + damping I)^{-1} g`` with
      ``|H| = U diag(|lambda|) U^T``: a descent direction that moves *away* from saddles along
      negative curvature at the Newton speed (Dauphin et al. 2014, arXiv:1406.2572).
      ``t`` from Armijo backtracking (``f(x + t d) <= f(x) + armijo t g.d``, halving from ``lr``)
      when ``line_search`` (default: on for ``"sfn"``, off otherwise).

    Stops early when ``|g| <= grad_tol`` or, if ``target`` is given, once ``f <= target``.
    ``track_hessian`` (default: on for Newton and SFN, off for GD) computes the smallest Hessian
    eigenvalue at every iterate; when off it is computed at the last iterate only (NaN elsewhere),
    which makes long GD runs cheap.

    Example
    -------
    >>> import torch
    >>> f = lambda p: p[0] ** 2 / 2 + 0.01 * (p[1] ** 4 / 4 - p[1] ** 2 / 2)
    >>> path = second_order_path(f, [1.0, 1e-4], method="newton", steps=20)
    >>> bool(abs(path.points[-1, 1]) < 1e-8)      # Newton converged to the saddle y = 0
    True
    """
    check_choice(method, "method", ("gd", "newton", "sfn"))
    steps = check_int(steps, "steps", minimum=0)
    lr = check_float(lr, "lr", positive=True)
    damping = check_float(damping, "damping", minimum=0.0)
    armijo = check_float(armijo, "armijo", minimum=0.0, maximum=1.0)
    grad_tol = check_float(grad_tol, "grad_tol", minimum=0.0)
    if not callable(f):
        raise TypeError("`f` must be callable(x: tensor) -> scalar tensor")
    x = torch.as_tensor(np.asarray(x0, dtype=np.float64) if not isinstance(x0, torch.Tensor) else x0)
    x = check_tensor(x.to(torch.float64).reshape(-1).clone(), "x0", ndim=1, floating=True)
    if line_search is None:
        line_search = method == "sfn"
    if track_hessian is None:
        track_hessian = method != "gd"

    def hessf(z):
        return torch.autograd.functional.hessian(f, z)

    def gvf(z):
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            v = f(z)
            if not isinstance(v, torch.Tensor) or v.numel() != 1:
                raise ValueError("`f` must return a scalar tensor")
            (g,) = torch.autograd.grad(v.reshape(()), z, allow_unused=True)
        g = torch.zeros_like(z) if g is None else g
        return g.detach(), v.detach()

    def fval(z):
        v = f(z)
        if not isinstance(v, torch.Tensor) or v.numel() != 1:
            raise ValueError("`f` must return a scalar tensor")
        return float(v)

    def min_eig(z):
        H = hessf(z).reshape(z.numel(), z.numel())
        return torch.linalg.eigh((H + H.T) / 2)

    pts, vals, gns, mins, ts = [], [], [], [], []
    stopped = "max_steps"
    while True:
        g, v = gvf(x)
        pts.append(x.clone())
        vals.append(float(v))
        gns.append(float(g.norm()))
        if not math.isfinite(vals[-1]) or abs(vals[-1]) > divergence:
            stopped = "diverged"
            mins.append(math.nan)
            break
        need_h = method != "gd" or track_hessian
        if need_h:
            lam, U = min_eig(x)
        mins.append(float(lam[0]) if need_h else math.nan)
        if len(ts) == steps:
            break
        if gns[-1] <= grad_tol:
            stopped = "gradient"
            break
        if target is not None and vals[-1] <= target:
            stopped = "target"
            break
        if method == "gd":
            d = -g
        elif method == "newton":
            keep = lam.abs() > pinv_rtol * lam.abs().max().clamp_min(1e-300)
            inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
            d = -(U @ (inv * (U.T @ g)))
        else:
            d = -(U @ ((U.T @ g) / (lam.abs() + damping)))
        t = lr
        if line_search:
            f0, slope = vals[-1], float(g @ d)
            while fval(x + t * d) > f0 + armijo * t * slope and t > 1e-20:
                t /= 2
            if t <= 1e-20:
                stopped = "stalled"
                break
        x = x + t * d
        ts.append(t)
    if not track_hessian and stopped != "diverged":
        mins[-1] = float(min_eig(x)[0][0])
    return OptimizationPath(
        torch.stack(pts).numpy(),
        np.array(vals),
        np.array(gns),
        np.array(mins),
        np.array(ts),
        method,
        stopped,
        {
            "lr": lr,
            "damping": damping,
            "line_search": line_search,
            "armijo": armijo,
            "steps": steps,
            "target": target,
        },
    )


# --------------------------------------------------------------------------------------------
# Scalar networks (Kreisler et al. 2023)
# --------------------------------------------------------------------------------------------


class ScalarNetwork(nn.Module):
    r"""The depth-``D`` scalar network ``f(x) = (prod_i w_i) x`` with weights ``w`` of shape (D,).

    Kreisler, Shpigel Nacson, Soudry & Carmon, "Gradient Descent Monotonically Decreases the
    Sharpness of Gradient Flow Solutions in Scalar Networks and Beyond", ICML 2023,
    arXiv:2305.13064. With the squared loss ``L = (f(x) - y)^2 / 2`` on the single point
    ``x = 1``, the Hessian on the minimiser manifold ``prod w = y`` is ``grad f grad f^T`` with
    the single non-zero eigenvalue ``y^2 sum_i 1 / w_i^2``.
    """

    def __init__(self, w: Any, *, dtype: torch.dtype | None = torch.float64):
        super().__init__()
        w = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w)
        w = check_tensor(w.reshape(-1).to(dtype or torch.get_default_dtype()), "w", ndim=1)
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.prod(self.w)


def gradient_flow_solution(w: Any, y: float) -> tuple[np.ndarray, float]:
    r"""The point where gradient flow from ``w`` converges, for the scalar network and target ``y``.

    Gradient flow on ``L = (prod_i w_i - y)^2 / 2`` conserves ``w_i^2 - w_j^2``, so its limit is
    ``sign(w) sqrt(w^2 + s)`` with the scalar ``s`` that makes the product equal ``y``; ``s`` is
    found by :func:`scipy.optimize.brentq`. Returns ``(w_star, sharpness)`` with the GFS sharpness
    ``y^2 sum_i 1 / w_star_i^2``. Requires ``sign(prod w) = sign(y)`` and no zero weight.
    """
    from scipy.optimize import brentq

    w = np.asarray(
        torch.as_tensor(w).detach().cpu().to(torch.float64) if isinstance(w, torch.Tensor) else w,
        dtype=np.float64,
    ).reshape(-1)
    y = check_float(y, "y")
    if w.size == 0 or np.any(w == 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"`w` must be finite and non-zero, got {w}")
    if y == 0 or np.sign(np.prod(w)) != np.sign(y):
        raise ValueError(
            f"gradient_flow_solution needs sign(prod w) = sign(y) != 0; got prod w = {np.prod(w)}, y = {y}"
        )
    sq, sg, target = w**2, np.sign(w), math.log(abs(y))

    def h(s):
        return 0.5 * np.sum(np.log(sq + s)) - target

    m = float(sq.min())
    if h(0.0) > 0:  # product too large: shrink, s in (-min w^2, 0); h -> -inf as s -> -min w^2
        k = 1
        while h(-m + m * 10.0**-k) > 0:
            k += 1
            if k > 300:
                raise ValueError("gradient_flow_solution: no bracket found")
        s = brentq(h, -m + m * 10.0**-k, 0.0, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    elif h(0.0) < 0:
        hi = 1.0
        while h(hi) < 0:
            hi *= 2
        s = brentq(h, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    else:
        s = 0.0
    w_star = sg * np.sqrt(sq + s)
    return w_star, float(y**2 * np.sum(1.0 / w_star**2))


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def plot_spectrum(
    density: SpectralDensity | None = None,
    exact: Any = None,
    *,
    sigma: float | None = None,
    bins: int = 80,
    backend: str = "plotly",
    log: bool = True,
    title: str | None = None,
):
    """Draw an SLQ density and/or a histogram of exact eigenvalues (density scale, log y)."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if density is None and exact is None:
        raise ValueError("give `density` (a SpectralDensity) and/or `exact` eigenvalues")
    ev = None if exact is None else np.asarray(torch.as_tensor(exact).detach().cpu().double()).reshape(-1)
    grid = dens = None
    if density is not None:
        if not isinstance(density, SpectralDensity):
            raise TypeError(f"`density` must be a SpectralDensity, got {type(density).__name__}")
        if ev is not None and sigma is None:
            sigma = 0.01 * max(float(ev.max() - ev.min()), 1e-12)
        grid, dens = density.density(sigma=sigma)
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        if ev is not None:
            ax.hist(ev, bins=bins, density=True, alpha=0.5, label="exact eigenvalues")
        if grid is not None:
            ax.plot(grid, dens, label="SLQ density")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.legend()
        if title:
            ax.set_title(title)
        fig.tight_layout()
        plt.close(fig)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    if ev is not None:
        fig.add_trace(
            go.Histogram(
                x=ev, nbinsx=bins, histnorm="probability density", name="exact eigenvalues", opacity=0.5
            )
        )
    if grid is not None:
        fig.add_trace(go.Scatter(x=grid, y=dens, mode="lines", name="SLQ density"))
    fig.update_layout(xaxis_title="eigenvalue", yaxis_title="density", title=title, template="plotly_white")
    if log:
        fig.update_yaxes(type="log")
    return fig


def plot_sharpness(history: SharpnessHistory, *, lr: float | None = None, backend: str = "plotly"):
    """Sharpness (and the loss, if recorded) against step, with the ``2 / lr`` line if ``lr`` is given."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if not isinstance(history, SharpnessHistory):
        raise TypeError(f"`history` must be a SharpnessHistory, got {type(history).__name__}")
    s = history.sharpness
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(history.steps, s, label="sharpness")
        if lr is not None:
            ax.axhline(2 / lr, ls="--", color="k", label="2 / lr")
        ax.set_xlabel("step")
        ax.set_ylabel("top Hessian eigenvalue")
        ax.legend()
        fig.tight_layout()
        plt.close(fig)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=history.steps, y=s, mode="lines", name="sharpness"))
    if lr is not None:
        fig.add_hline(y=2 / lr, line_dash="dash", annotation_text="2 / lr")
    fig.update_layout(xaxis_title="step", yaxis_title="top Hessian eigenvalue", template="plotly_white")
    return fig


def plot_paths_2d(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    paths: Mapping[str, OptimizationPath | np.ndarray],
    *,
    xlim: tuple[float, float] = (-2.0, 2.0),
    ylim: tuple[float, float] = (-1.5, 1.5),
    steps: int = 201,
    levels: int = 30,
    backend: str = "matplotlib",
    ax=None,
):
    """Contour plot of a 2-D function ``f(X, Y)`` (vectorised numpy) with optimiser paths on top.

    ``paths`` maps a label to an :class:`OptimizationPath` (or an array of points (T, 2)).
    """
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    steps = check_int(steps, "steps", minimum=2)
    xs, ys = np.linspace(*xlim, steps), np.linspace(*ylim, steps)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    Z = np.asarray(f(X, Y), dtype=np.float64)
    pts = {}
    for label, p in paths.items():
        arr = p.points if isinstance(p, OptimizationPath) else np.asarray(p)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"`paths[{label!r}]` must hold 2-D points, got shape {arr.shape}")
        pts[label] = arr
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4.5))
        else:
            fig = ax.figure
        cs = ax.contourf(X, Y, Z, levels=levels, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="f")
        for label, arr in pts.items():
            ax.plot(arr[:, 0], arr[:, 1], ".-", ms=3, lw=1, label=label)
            ax.plot(arr[-1, 0], arr[-1, 1], "x", ms=8, color=ax.lines[-1].get_color())
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        plt.close(fig)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(go.Contour(x=xs, y=ys, z=Z.T, colorscale="Viridis", ncontours=levels, name="f"))
    for label, arr in pts.items():
        fig.add_trace(go.Scatter(x=arr[:, 0], y=arr[:, 1], mode="lines+markers", marker_size=3, name=label))
    fig.update_layout(xaxis_title="x", yaxis_title="y", template="plotly_white")
    return fig
