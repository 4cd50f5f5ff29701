"""Neural tangent kernels: empirical (finite width), analytic (infinite width) and kernel tools.

The neural tangent kernel of a network ``f(x; theta)`` with ``o`` outputs is

.. math::

    \\Theta_{ab}(x, x') = \\sum_p \\frac{\\partial f_a(x)}{\\partial \\theta_p}
                                   \\frac{\\partial f_b(x')}{\\partial \\theta_p},

an ``(o, o)`` block for every pair of inputs. Under gradient flow on a mean-squared error the
outputs of the *linearised* network move by kernel gradient descent with this kernel; as the
width grows (NTK parametrisation) it converges to a deterministic limit that stays constant
during training (Jacot, Gabriel & Hongler, "Neural Tangent Kernel: Convergence and Generalization
in Neural Networks", 2018, arXiv:1806.07572).

What lives here
---------------
* :func:`empirical`: the finite-width kernel of any ``nn.Module``, by a generic ``torch.func``
  Jacobian contraction (chunked) or a structured fast path for stacks of ``nn.Linear`` /
  :class:`ScaledLinear` layers that never forms per-sample Jacobians:
  ``K = sum_l (c_w A_l A_l'^T + c_b) * (G_l G_l'^T)`` with ``A_l`` the layer inputs and ``G_l`` the
  output gradients with respect to the layer's pre-activations.
* :func:`analytic`: the infinite-width NNGP and NTK of a fully connected network by the layer
  recursion (arc-cosine kernels for ReLU, Williams' closed form for erf), float64.
* :func:`parametrize`: MLPs in standard, NTK and maximal-update (muP) parametrisation with the
  per-tensor learning-rate multipliers each needs (Yang & Hu, "Feature Learning in
  Infinite-Width Neural Networks", 2021, arXiv:2011.14522).
* kernel tools: :func:`kernel_regression`, :func:`gradient_flow` (closed-form trajectory of the
  linearised model under MSE), :func:`eigh` (with clipping of round-off negative eigenvalues),
  :func:`alignment` (kernel-target alignment), :func:`kernel_distance`, :func:`relative_change`,
  :func:`random_features` and :func:`ridge_path` (random-feature ridge regression over a grid of
  ridges from one eigendecomposition), :class:`NTKSnapshots` (a :func:`lossviz.train.fit`
  callback for lazy-versus-rich diagnostics).
* plots: :func:`plot_kernel`, :func:`plot_kernel_slice`, :func:`plot_spectrum`,
  :func:`plot_snapshots`.

Conventions (CONVENTIONS.md section 4)
--------------------------------------
* ``output``: ``"full"`` gives ``(n1, n2, o, o)``; ``"trace_sum"`` ``sum_a Theta_aa``;
  ``"trace_mean"`` ``(1/o) sum_a Theta_aa``; ``"diagonal"`` ``(n1, n2, o)`` with ``Theta_aa``.
* The empirical kernel is taken over the parameters with ``requires_grad=True``
  (``trainable_only=True``), with the model in eval mode (its flags are restored).
* Kernel linear algebra (:func:`eigh`, :func:`kernel_regression`, :func:`gradient_flow`) is done
  in float64 on the symmetrised kernel.
* :func:`analytic` counts ``depth`` as the number of *hidden* layers (nonlinearities); the network
  has ``depth + 1`` weight matrices. Its input kernel is ``x . x' / d_in``.

Example
-------
>>> import torch
>>> from lossviz import ntk
>>> net = ntk.parametrize((2, 512, 512, 1), "ntk", w_std=2 ** 0.5, b_std=0.1, seed=0,
...                       dtype=torch.float64)
>>> x = torch.randn(8, 2, dtype=torch.float64)
>>> emp = ntk.empirical(net, x)
>>> emp.method
'structured'
>>> lim = ntk.analytic(x, depth=2, w_std=2 ** 0.5, b_std=0.1)
>>> bool(ntk.relative_change(lim.ntk, emp.kernel) < 0.2)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._model import (
    buffers_of,
    eval_mode,
    model_dtype_device,
    parameters_of,
    train_mode_batchnorm,
)
from ._result import Result
from ._validate import check_choice, check_dtype, check_float, check_int, check_module, check_tensor

__all__ = [
    "EmpiricalNTK",
    "AnalyticNTK",
    "empirical",
    "analytic",
    "ScaledLinear",
    "ParametrizedMLP",
    "parametrize",
    "CenteredTwoLayer",
    "TwoLayerRun",
    "train_two_layer",
    "KernelRegression",
    "kernel_regression",
    "GradientFlow",
    "gradient_flow",
    "KernelSpectrum",
    "eigh",
    "alignment",
    "kernel_distance",
    "relative_change",
    "random_features",
    "RidgePath",
    "ridge_path",
    "NTKSnapshots",
    "SnapshotResult",
    "plot_kernel",
    "plot_kernel_slice",
    "plot_spectrum",
    "plot_snapshots",
]

OUTPUTS = ("full", "trace_sum", "trace_mean", "diagonal")
METHODS = ("auto", "structured", "jacobian")
ACTIVATIONS = ("relu", "erf", "linear")
PARAMETRIZATIONS = ("ntk", "standard", "mup")


# ----------------------------------------------------------------------------------------------
# Layers and parametrisations
# ----------------------------------------------------------------------------------------------


class ScaledLinear(nn.Module):
    """``y = weight_multiplier * x W^T + bias_multiplier * b``: a Linear layer with constant multipliers.

    This is how the NTK and muP parametrisations are written: the trainable tensors ``W``, ``b`` are
    initialised with unit-scale (or chosen) variances and the width-dependent scale sits in a
    fixed multiplier, which changes the gradient (and so the NTK and the effective learning rate)
    without changing the function at initialisation. The structured empirical-NTK path knows the
    multipliers: the layer contributes ``(m_w^2 A A'^T + m_b^2) * (G G'^T)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        weight_multiplier: float = 1.0,
        bias_multiplier: float = 1.0,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        self.weight_multiplier = check_float(weight_multiplier, "weight_multiplier")
        self.bias_multiplier = check_float(bias_multiplier, "bias_multiplier")
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.linear(x, self.weight)
        if self.weight_multiplier != 1.0:
            y = y * self.weight_multiplier
        if self.bias is not None:
            y = y + self.bias * self.bias_multiplier
        return y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weight_multiplier={self.weight_multiplier:.4g}, "
            f"bias_multiplier={self.bias_multiplier:.4g}"
        )


class _Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)


_ACT_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "erf": _Erf,
    "linear": nn.Identity,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


class ParametrizedMLP(nn.Module):
    """A fully connected network in a named parametrisation, built by :func:`parametrize`.

    Attributes
    ----------
    layers : ``nn.ModuleList`` of :class:`ScaledLinear` (the last one is the readout)
    widths : ``(d_in, n_1, ..., n_L, d_out)``
    parametrization : ``"ntk"`` | ``"standard"`` | ``"mup"``
    lr_multipliers : dict parameter name -> float
        Multiply the base learning rate by these (see :meth:`param_groups`).
    """

    def __init__(
        self,
        layers: Sequence[ScaledLinear],
        activation: str,
        parametrization: str,
        lr_multipliers: Mapping[str, float],
    ):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.activation_name = activation
        self.act = _ACT_MODULES[activation]()
        self.parametrization = parametrization
        self.lr_multipliers = dict(lr_multipliers)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.layers[0].in_features, *(layer.out_features for layer in self.layers))

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation features of every hidden layer."""
        out = []
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
            out.append(x)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (input of the readout)."""
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[-1](self.features(x))

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups ``[{"params": [p], "lr": lr * multiplier}, ...]``.

        >>> net = parametrize((3, 16, 1), "mup", seed=0)
        >>> opt = torch.optim.SGD(net.param_groups(0.1), lr=0.1)
        """
        lr = check_float(lr, "lr", minimum=0.0)
        return [
            {"params": [p], "lr": lr * self.lr_multipliers[name], "name": name}
            for name, p in self.named_parameters()
        ]


def _widths_of(model) -> tuple[tuple[int, ...], str, bool]:
    """Extract (widths, activation, bias) from an MLP-like model."""
    if isinstance(model, ParametrizedMLP):
        return model.widths, model.activation_name, model.layers[0].bias is not None
    linears = [m for m in model.modules() if isinstance(m, (nn.Linear, ScaledLinear))]
    if not linears:
        raise ValueError("`model` has no Linear layers to take the widths from")
    for a, b in zip(linears[:-1], linears[1:]):
        if a.out_features != b.in_features:
            raise ValueError("`model` is not a simple chain of Linear layers (widths do not chain)")
    widths = (linears[0].in_features, *(m.out_features for m in linears))
    act = getattr(model, "activation_name", None)
    if act is None:
        kinds = {type(m) for m in model.modules()}
        act = "relu" if nn.ReLU in kinds else "tanh" if nn.Tanh in kinds else "linear"
    if act not in _ACT_MODULES:
        raise ValueError(f"`model` uses activation {act!r}; parametrize supports {sorted(_ACT_MODULES)}")
    return widths, act, linears[0].bias is not None


def parametrize(
    model: nn.Module | Sequence[int],
    parametrization: str = "ntk",
    *,
    activation: str | None = None,
    w_std: float = 1.0,
    b_std: float = 0.0,
    bias: bool | None = None,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
) -> ParametrizedMLP:
    """Build an MLP of the given shape in the NTK, standard or maximal-update parametrisation.

    ``model`` is either a sequence of widths ``(d_in, n_1, ..., n_L, d_out)`` or an MLP-like module
    (``lossviz.models.MLP``, an ``nn.Sequential`` of Linear layers and activations) whose widths,
    activation and bias setting are copied; the given model is not changed or reused: a *new*
    network is initialised from ``seed``.

    With ``fan_in`` the input width of a layer, ``W`` the trainable tensor and ``eta`` the base
    learning rate (plain SGD):

    ============  =========================================  ==============================
    name          forward of one layer                       init / lr multiplier
    ============  =========================================  ==============================
    ``standard``  ``W x + b``                                ``W ~ N(0, w_std^2/fan_in)``,
                                                              ``b ~ N(0, b_std^2)``; lr x 1
    ``ntk``       ``(w_std/sqrt(fan_in)) W x + b_std b``     ``W, b ~ N(0, 1)``; lr x 1
    ``mup``       as ``ntk``, readout multiplier             ``W, b ~ N(0, 1)``; lr x ``n``
                  ``w_std/fan_in`` instead of
                  ``w_std/sqrt(fan_in)``
    ============  =========================================  ==============================

    muP's learning-rate multiplier ``n`` is ``fan_out`` for the input layer and for hidden biases,
    ``fan_in`` for hidden and readout weights and 1 for the readout bias: in effective-weight terms
    this is Table 3 of Yang & Hu (SGD: input weights and biases ``eta * fan_out``, hidden ``eta``,
    readout ``eta / fan_in``, readout init variance ``1/fan_in^2``). Under NTP feature movement
    vanishes as ``1/sqrt(width)``; under muP it stays order one (Greg Yang and Edward J. Hu,
    "Feature Learning in Infinite-Width Neural Networks", 2021, arXiv:2011.14522).

    Parameters
    ----------
    model : nn.Module or sequence of int
    parametrization : ``"ntk"`` | ``"standard"`` | ``"mup"``
    activation : ``"relu"`` | ``"erf"`` | ``"linear"`` | ``"tanh"`` | ``"gelu"``; default: the
        model's, or ``"relu"`` for widths.
    w_std, b_std : float
        Weight and bias scales (``b_std = 0`` and standard parametrisation: zero-initialised but
        trainable biases; NTK/muP: bias multiplier 0, i.e. the bias has no effect).
    bias : bool, default: the model's, or True for widths.
    seed : int
        Initialisation comes from ``torch.Generator().manual_seed(seed)`` only (drawn in ``dtype``, so
        the same seed gives different draws in float32 and float64).

    Returns
    -------
    ParametrizedMLP
        With ``lr_multipliers`` and :meth:`ParametrizedMLP.param_groups`.

    Example
    -------
    >>> net = parametrize((16, 256, 256, 1), "mup", seed=0)
    >>> net.lr_multipliers["layers.1.weight"], net.lr_multipliers["layers.2.bias"]
    (256.0, 1.0)
    """
    check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    if isinstance(model, nn.Module):
        widths, act0, bias0 = _widths_of(model)
    elif isinstance(model, Sequence) and not isinstance(model, str):
        widths = tuple(check_int(w, f"model[{i}] (width)", minimum=1) for i, w in enumerate(model))
        if len(widths) < 2:
            raise ValueError(f"`model` as widths needs at least (d_in, d_out), got {widths}")
        act0, bias0 = "relu", True
    else:
        raise TypeError(f"`model` must be an nn.Module or a sequence of widths, got {type(model).__name__}")
    activation = act0 if activation is None else activation
    check_choice(activation, "activation", tuple(_ACT_MODULES))
    bias = bias0 if bias is None else bool(bias)
    w_std = check_float(w_std, "w_std", positive=True)
    b_std = check_float(b_std, "b_std", minimum=0.0)
    dtype = check_dtype(dtype)
    gen = torch.Generator(device=torch.device("cpu") if device is None else device)
    gen.manual_seed(check_int(seed, "seed", minimum=0))
    layers, lrm = [], {}
    nl = len(widths) - 1
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        readout = i == nl - 1
        if parametrization == "standard":
            wm, bm, w_init, b_init = 1.0, 1.0, w_std / math.sqrt(fan_in), b_std
            lw = lb = 1.0
        else:
            wm = w_std / (fan_in if (parametrization == "mup" and readout and nl > 1) else math.sqrt(fan_in))
            bm, w_init, b_init = b_std, 1.0, 1.0
            if parametrization == "ntk":
                lw = lb = 1.0
            elif readout:
                lw, lb = float(fan_in), 1.0
            elif i == 0:
                lw, lb = float(fan_out), float(fan_out)
            else:
                lw, lb = float(fan_in), float(fan_out)
        layer = ScaledLinear(
            fan_in, fan_out, bias=bias, weight_multiplier=wm, bias_multiplier=bm, dtype=dtype, device=device
        )
        with torch.no_grad():  # drawn in the layer's dtype (fast for wide float32 nets)
            layer.weight.normal_(0.0, w_init, generator=gen)
            if layer.bias is not None:
                layer.bias.normal_(0.0, b_init, generator=gen) if b_init > 0 else layer.bias.zero_()
        layers.append(layer)
        lrm[f"layers.{i}.weight"] = lw
        if bias:
            lrm[f"layers.{i}.bias"] = lb
    return ParametrizedMLP(layers, activation, parametrization, lrm)


class CenteredTwoLayer(nn.Module):
    """``f(x) = (alpha / N) sum_i [phi(w_i . x) - phi(w_i(0) . x)]`` with fixed unit readouts.

    The output scale ``alpha`` interpolates between rich (small ``alpha``: features must move to fit)
    and lazy (large ``alpha``: a tiny weight change fits the data, the NTK stays put) training
    (Chizat, Oyallon & Bach, "On Lazy Training in Differentiable Programming", 2019,
    arXiv:1812.07956). Subtracting the initial function ``f_0`` (kept as a buffer ``w0``) makes
    ``f = 0`` at initialisation for every ``alpha``. ``phi(h) = h + eps h^2 / 2``
    (``activation="quadratic"``) as in Kumar, Bordelon, Gershman & Pehlevan, "Grokking as the
    Transition from Lazy to Rich Training Dynamics", 2023, arXiv:2310.06110; train it with the loss
    ``(1 / (2 alpha^2)) mean(r^2)`` and learning rate ``~ N``.

    The only trainable tensor is ``layer.weight`` (an ``nn.Linear`` without bias), so
    :func:`empirical` uses the structured path. ``w_i(0) ~ N(0, weight_std^2 I)``.
    ``center=False`` drops the ``- f_0`` term (cheaper training: fit the shifted targets
    ``y + f_0(x)`` instead, which gives exactly the same gradients).
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        *,
        alpha: float = 1.0,
        eps: float = 0.1,
        activation: str = "quadratic",
        weight_std: float = 1.0,
        center: bool = True,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.center = bool(center)
        in_features = check_int(in_features, "in_features", minimum=1)
        width = check_int(width, "width", minimum=1)
        self.alpha = check_float(alpha, "alpha", positive=True)
        self.eps = check_float(eps, "eps")
        check_choice(activation, "activation", ("quadratic", "relu", "tanh"))
        self.activation = activation
        self.width = width
        self.layer = nn.Linear(in_features, width, bias=False, dtype=dtype, device=device)
        gen = torch.Generator(device=torch.device("cpu") if device is None else device)
        gen.manual_seed(check_int(seed, "seed", minimum=0))
        with torch.no_grad():
            self.layer.weight.normal_(
                0.0, check_float(weight_std, "weight_std", positive=True), generator=gen
            )
        self.register_buffer("w0", self.layer.weight.detach().clone())

    def phi(self, h: torch.Tensor) -> torch.Tensor:
        if self.activation == "quadratic":
            return h + 0.5 * self.eps * h * h
        return torch.relu(h) if self.activation == "relu" else torch.tanh(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.phi(self.layer(x))
        if self.center:
            h = h - self.phi(torch.nn.functional.linear(x, self.w0))
        return h.sum(-1) * (self.alpha / self.width)

    def initial_output(self, x: torch.Tensor) -> torch.Tensor:
        """``(alpha / N) sum_i phi(w_i(0) . x)``: the uncentred function at initialisation."""
        with torch.no_grad():
            return self.phi(torch.nn.functional.linear(x, self.w0)).sum(-1) * (self.alpha / self.width)

    def feature_matrix(self) -> torch.Tensor:
        """``W^T W - W_0^T W_0`` (D x D): how the first-layer weights changed (learned features)."""
        w = self.layer.weight.detach()
        return w.T @ w - self.w0.T @ self.w0


@dataclass(frozen=True, repr=False)
class TwoLayerRun(Result):
    """History of :func:`train_two_layer` (losses are ``(1 / (2 alpha^2)) mean(r^2)``).

    ``train_loss[t]`` is the loss after ``t`` updates (``t = 0..steps_run``); ``test_loss`` at
    ``test_steps``; ``kernels`` / ``features`` map snapshot steps to the empirical NTK on the
    training inputs (float64) and to :meth:`CenteredTwoLayer.feature_matrix`.
    """

    train_loss: np.ndarray
    test_steps: np.ndarray
    test_loss: np.ndarray | None
    kernels: dict
    features: dict
    steps_run: int
    stopped_early: bool

    def drop_step(self, which: str = "train", fraction: float = 0.5) -> int | None:
        """First step where the loss is below ``fraction`` x its initial value (None if never)."""
        if which == "train":
            steps, loss = np.arange(len(self.train_loss)), self.train_loss
        else:
            if self.test_loss is None:
                raise ValueError("no test loss was recorded")
            steps, loss = self.test_steps, self.test_loss
        below = np.nonzero(loss < fraction * loss[0])[0]
        return int(steps[below[0]]) if below.size else None


def train_two_layer(
    model: CenteredTwoLayer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    steps: int,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    test_every: int = 1,
    snapshot_at: Sequence[int] = (),
    stop_test_fraction: float | None = None,
    patience: int = 0,
    snapshot_test_fraction: float | None = None,
    progress: bool = False,
) -> TwoLayerRun:
    """Full-batch gradient descent on ``(1 / (2 alpha^2)) mean((f(x) - y)^2)`` for :class:`CenteredTwoLayer`.

    Trains ``model`` **in place** (like :func:`lossviz.train.fit`) with the closed-form gradient
    ``dL/dW = (1 / (alpha N P)) (r * phi'(X W^T))^T X`` (about 5x faster than autograd for this
    model; a unit test checks it against autograd), the initial function ``f_0`` being computed
    once. ``snapshot_at`` steps store the empirical NTK on ``x`` and the feature matrix (the
    final step is always included). ``stop_test_fraction``: stop ``patience`` steps after the
    test loss first falls below that fraction of its initial value. ``snapshot_test_fraction``:
    also take a snapshot at that moment (e.g. 0.5: at the test-loss drop, the grokking time).
    """
    if not isinstance(model, CenteredTwoLayer):
        raise TypeError(f"`model` must be a CenteredTwoLayer, got {type(model).__name__}")
    dtype, device = model_dtype_device(model)
    x = check_tensor(x, "x", ndim=2, floating=True).to(dtype=dtype, device=device)
    y = check_tensor(y, "y", ndim=1, floating=True).to(dtype=dtype, device=device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`y` has {y.shape[0]} entries but `x` has {x.shape[0]} rows")
    lr = check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    test_every = check_int(test_every, "test_every", minimum=1)
    patience = check_int(patience, "patience", minimum=0)
    have_test = x_test is not None
    if have_test:
        x_test = check_tensor(x_test, "x_test", ndim=2, floating=True).to(dtype=dtype, device=device)
        y_test = check_tensor(y_test, "y_test", ndim=1, floating=True).to(dtype=dtype, device=device)
    if (stop_test_fraction is not None or snapshot_test_fraction is not None) and not have_test:
        raise ValueError("`stop_test_fraction` and `snapshot_test_fraction` need `x_test` and `y_test`")
    snap_drop_done = False
    alpha, n_units, p = model.alpha, model.width, x.shape[0]
    scale = alpha / n_units
    w = model.layer.weight
    f0 = model.initial_output(x) if model.center else torch.zeros_like(y)
    f0t = (model.initial_output(x_test) if model.center else torch.zeros_like(y_test)) if have_test else None
    snaps = set(int(s) for s in snapshot_at)
    kernels, feats = {}, {}
    train_loss, test_steps, test_loss = [], [], []
    stop_at = None

    def dphi(h):
        if model.activation == "quadratic":
            return 1 + model.eps * h
        if model.activation == "relu":
            return (h > 0).to(h.dtype)
        return 1 - torch.tanh(h) ** 2

    def snapshot(t):
        kernels[t] = empirical(model, x).kernel.to(torch.float64)
        feats[t] = model.feature_matrix().to(torch.float64)

    from tqdm.auto import tqdm

    quad = model.activation == "quadratic"

    def output(xx, h):
        if quad:  # sum_i phi(h_i) = x . sum_i w_i + (eps/2) ||h||^2: one pass over h
            return (xx @ w.sum(0) + (0.5 * model.eps) * torch.linalg.vector_norm(h, dim=1).square()) * scale
        return model.phi(h).sum(1) * scale

    t = 0
    with torch.no_grad():
        for t in tqdm(range(steps + 1), disable=not progress, leave=False, desc=f"alpha={alpha:g}"):
            h = x @ w.T
            r = output(x, h) - f0 - y
            train_loss.append(float(0.5 / alpha**2 * (r * r).mean()))
            if have_test and (t % test_every == 0 or t == steps):
                ht = x_test @ w.T
                rt = output(x_test, ht) - f0t - y_test
                test_steps.append(t)
                test_loss.append(float(0.5 / alpha**2 * (rt * rt).mean()))
                if (
                    stop_at is None
                    and stop_test_fraction is not None
                    and test_loss[-1] < stop_test_fraction * test_loss[0]
                ):
                    stop_at = t + patience
                if (
                    not snap_drop_done
                    and snapshot_test_fraction is not None
                    and test_loss[-1] < snapshot_test_fraction * test_loss[0]
                ):
                    snaps.add(t)
                    snap_drop_done = True
            if t in snaps:
                snapshot(t)
            if t == steps or (stop_at is not None and t >= stop_at):
                break
            if quad:  # (r * (1 + eps h))^T X = 1 (r^T X) + eps (r * h)^T X
                grad = torch.addmm((r @ x).expand(n_units, -1), h.mul_(r[:, None]).T, x, alpha=model.eps)
            else:
                grad = (r[:, None] * dphi(h)).T @ x
            w.sub_(grad, alpha=lr / (alpha * n_units * p))
    if t not in kernels:
        snapshot(t)
    return TwoLayerRun(
        np.array(train_loss),
        np.array(test_steps),
        np.array(test_loss) if have_test else None,
        kernels,
        feats,
        int(t),
        bool(t < steps),
    )


# ----------------------------------------------------------------------------------------------
# Empirical NTK
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class EmpiricalNTK(Result):
    """Finite-width NTK of a model on inputs ``x1`` (rows) and ``x2`` (columns).

    Attributes
    ----------
    kernel : tensor, ``(n1, n2)`` for ``trace_sum``/``trace_mean``, ``(n1, n2, o)`` for
        ``diagonal``, ``(n1, n2, o, o)`` for ``full``; dtype of the model (or ``dtype``).
    output, method : the settings used (``method`` is the path actually taken).
    num_outputs, num_parameters : int
    diagnostics : dict
        ``requested_method``, ``fallback_reason`` (why ``auto`` did not use the structured path, or
        None), ``chunk_size`` (jacobian path), ``symmetric`` (``x2`` was None).
    """

    kernel: torch.Tensor
    output: str
    method: str
    num_outputs: int
    num_parameters: int
    diagnostics: dict = field(default_factory=dict)

    def numpy(self) -> np.ndarray:
        return self.kernel.detach().cpu().numpy()

    def plot(self, **kw):
        return plot_kernel(self, **kw)


class _Fallback(Exception):
    """The structured path does not apply (the message says why)."""


_LINEAR_TYPES = (nn.Linear, ScaledLinear)


def _linear_multipliers(m: nn.Module) -> tuple[float, float]:
    if isinstance(m, ScaledLinear):
        return m.weight_multiplier, m.bias_multiplier
    return 1.0, 1.0


def _structured_reason(model: nn.Module, mode: str, trainable_only: bool) -> str | None:
    """Why the structured path cannot be used (static checks), or None."""
    all_named = list(model.named_parameters(remove_duplicate=False))
    ids = [id(p) for _, p in all_named]
    if len(set(ids)) != len(ids):
        seen, shared = {}, []
        for n, p in all_named:
            if id(p) in seen:
                shared.append(f"{seen[id(p)]} = {n}")
            seen.setdefault(id(p), n)
        return "shared parameters (" + ", ".join(shared[:3]) + ")"
    if mode == "train":
        bn = train_mode_batchnorm(model)
        if bn or any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return "train-mode BatchNorm couples the samples of a batch"
    for name, m in model.named_modules():
        own = [
            (pn, p) for pn, p in m.named_parameters(recurse=False) if p.requires_grad or not trainable_only
        ]
        if not own:
            continue
        if isinstance(m, _LINEAR_TYPES) and type(m).forward in (nn.Linear.forward, ScaledLinear.forward):
            continue
        kind = type(m).__name__
        return (
            f"unsupported layer with parameters: {kind} {name!r} (the structured path handles "
            "nn.Linear and ScaledLinear layers only)"
        )
    return None


def _structured_parts(model, params, buffers, x, trainable_only):
    """Forward/backward once; return per-layer (A, G, c_w, c_b) with G of shape (o, n, out)."""
    linears = {id(m): (name, m) for name, m in model.named_modules() if isinstance(m, _LINEAR_TYPES)}
    records: dict[str, tuple] = {}
    handles = []

    def hook(mod, inputs, out):
        name, _ = linears[id(mod)]
        if name in records:
            raise _Fallback(f"layer {name!r} is called more than once in forward (weight sharing)")
        a = inputs[0]
        if a.ndim != 2 or out.ndim != 2:
            raise _Fallback(
                f"layer {name!r} sees input of shape {tuple(a.shape)}; the structured path needs "
                "(batch, features) inputs"
            )
        eps = torch.zeros_like(out, requires_grad=True)
        records[name] = (a.detach(), eps, mod)
        return out + eps

    try:
        for _, m in linears.values():
            handles.append(m.register_forward_hook(hook))
        with torch.enable_grad():
            out = torch.func.functional_call(model, {**params, **buffers}, (x,))
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise _Fallback(f"the model returns {type(out).__name__}, not a tensor")
    n = x.shape[0]
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(f"the model output has shape {tuple(out.shape)}; expected a batch of {n}")
    f = out.reshape(n, -1)
    o = f.shape[1]
    names = list(records)
    eps = [records[k][1] for k in names]
    grads = [[] for _ in names]
    for a in range(o):
        g = torch.autograd.grad(f[:, a].sum(), eps, retain_graph=a < o - 1, allow_unused=True)
        for i, gi in enumerate(g):
            grads[i].append(torch.zeros_like(eps[i]) if gi is None else gi)
    parts = []
    for i, k in enumerate(names):
        a_in, _, mod = records[k]
        wm, bm = _linear_multipliers(mod)
        use_w = mod.weight.requires_grad or not trainable_only
        use_b = mod.bias is not None and (mod.bias.requires_grad or not trainable_only)
        cw = wm * wm if use_w else 0.0
        cb = bm * bm if use_b else 0.0
        if cw == 0.0 and cb == 0.0:
            continue
        parts.append((a_in, torch.stack(grads[i]), cw, cb))
    return parts, o


def _contract_gg(g1, g2, output):
    """Contract gradient blocks (o, n1, k), (o, n2, k) into the requested output layout."""
    o = g1.shape[0]
    if output in ("trace_sum", "trace_mean"):
        return g1.permute(1, 0, 2).reshape(g1.shape[1], -1) @ g2.permute(1, 0, 2).reshape(g2.shape[1], -1).T
    if output == "diagonal":
        return torch.einsum("aik,ajk->ija", g1, g2)
    del o
    return torch.einsum("aik,bjk->ijab", g1, g2)


def _structured(model, params, buffers, x1, x2, output, trainable_only):
    n1 = x1.shape[0]
    x = x1 if x2 is None else torch.cat([x1, x2])
    parts, o = _structured_parts(model, params, buffers, x, trainable_only)
    kernel = None
    for a, g, cw, cb in parts:
        a1, a2 = (a, a) if x2 is None else (a[:n1], a[n1:])
        g1, g2 = (g, g) if x2 is None else (g[:, :n1], g[:, n1:])
        s = a1 @ a2.T if cw != 0.0 else torch.zeros(a1.shape[0], a2.shape[0], dtype=a.dtype, device=a.device)
        if cw != 1.0:
            s = s * cw
        if cb != 0.0:
            s = s + cb
        gg = _contract_gg(g1, g2, output)
        term = gg * s.reshape(s.shape + (1,) * (gg.ndim - 2))
        kernel = term if kernel is None else kernel + term
    if kernel is None:
        n2 = n1 if x2 is None else x2.shape[0]
        shape = {"full": (n1, n2, o, o), "diagonal": (n1, n2, o)}.get(output, (n1, n2))
        kernel = torch.zeros(shape, dtype=x.dtype, device=x.device)
    return kernel, o


def _jacobian(model, params, frozen, buffers, x, mode, chunk):
    """Per-sample Jacobians (n, o, P) of the model output w.r.t. ``params`` (flattened)."""
    names = list(params)

    def flat(jac, lead):
        return torch.cat([jac[k].reshape(*lead, -1) for k in names], dim=-1)

    if mode == "train":
        # batch-coupled (train-mode BatchNorm): Jacobian of the whole batch output at once
        def f_batch(p, b):  # buffers are an input: train-mode BatchNorm updates (cloned) stats
            out = torch.func.functional_call(model, {**p, **frozen, **b}, (x,))
            return out.reshape(x.shape[0], -1)

        bufs = {k: v.clone() for k, v in buffers.items()}
        jac = torch.func.jacrev(f_batch, argnums=0)(params, bufs)
        n, o = next(iter(jac.values())).shape[:2]
        return flat(jac, (n, o)), o

    def f_single(p, xi):
        out = torch.func.functional_call(model, {**p, **frozen, **buffers}, (xi.unsqueeze(0),))
        return out.reshape(-1)

    jfn = torch.func.vmap(torch.func.jacrev(f_single), in_dims=(None, 0))
    blocks = []
    for s in range(0, x.shape[0], chunk):
        jac = jfn(params, x[s : s + chunk])
        c, o = next(iter(jac.values())).shape[:2]
        blocks.append(flat(jac, (c, o)))
    j = torch.cat(blocks) if len(blocks) > 1 else blocks[0]
    return j, j.shape[1]


def _contract_jj(j1, j2, output):
    if output in ("trace_sum", "trace_mean"):
        return j1.reshape(j1.shape[0], -1) @ j2.reshape(j2.shape[0], -1).T
    if output == "diagonal":
        return torch.einsum("iap,jap->ija", j1, j2)
    return torch.einsum("iap,jbp->ijab", j1, j2)


def _jacobian_path(model, params, frozen, buffers, x1, x2, output, mode, chunk, cache_bytes):
    if mode == "train":
        if x2 is not None:
            raise ValueError(
                "`x2` cannot be given with mode='train': in train mode (BatchNorm batch statistics) "
                "the kernel is defined only within one batch"
            )
        j, o = _jacobian(model, params, frozen, buffers, x1, mode, chunk)
        return _contract_jj(j, j, output), o
    n1 = x1.shape[0]
    sym = x2 is None
    xc = x1 if sym else x2
    n2 = xc.shape[0]
    starts1 = list(range(0, n1, chunk))
    starts2 = list(range(0, n2, chunk))
    # columns: keep all Jacobian blocks if they fit in ``cache_bytes``, else recompute per row block
    j_first, o = _jacobian(model, params, frozen, buffers, xc[:chunk], mode, chunk)
    per_sample = j_first[0].numel() * j_first.element_size()
    keep = n2 * per_sample <= cache_bytes
    cols = {0: j_first} if keep or len(starts2) == 1 else {}

    def col(s):
        if s in cols:
            return cols[s]
        j, _ = _jacobian(model, params, frozen, buffers, xc[s : s + chunk], mode, chunk)
        if keep:
            cols[s] = j
        return j

    kernel = None
    for a in starts1:
        ja = col(a) if sym else _jacobian(model, params, frozen, buffers, x1[a : a + chunk], mode, chunk)[0]
        for b in starts2:
            if sym and b < a:
                continue
            jb = ja if (sym and b == a) else col(b)
            block = _contract_jj(ja, jb, output)
            if kernel is None:
                kernel = torch.empty((n1, n2) + block.shape[2:], dtype=block.dtype, device=block.device)
            kernel[a : a + chunk, b : b + chunk] = block
            if sym and b != a:
                kernel[b : b + chunk, a : a + chunk] = (
                    block.transpose(0, 1)
                    if block.ndim == 2
                    else (block.permute(1, 0, 3, 2) if block.ndim == 4 else block.transpose(0, 1))
                )
    return kernel, o


def _check_inputs(x1, x2, dtype, device):
    x1 = check_tensor(x1, "x1", floating=True)
    if x1.ndim < 2:
        raise ValueError(f"`x1` must have a batch dimension and features, got shape {tuple(x1.shape)}")
    if x2 is not None:
        x2 = check_tensor(x2, "x2", floating=True)
        if x2.ndim < 2:
            raise ValueError(f"`x2` must have a batch dimension and features, got shape {tuple(x2.shape)}")
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"`x1` and `x2` must have the same feature shape, got {tuple(x1.shape[1:])} and "
                f"{tuple(x2.shape[1:])}"
            )
        x2 = x2.to(dtype=dtype, device=device)
    return x1.to(dtype=dtype, device=device), x2


def empirical(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    output: str = "trace_sum",
    method: str = "auto",
    trainable_only: bool = True,
    mode: str = "eval",
    chunk_size: int | None = None,
    max_block_bytes: int = 2**28,
) -> EmpiricalNTK:
    """Finite-width (empirical) neural tangent kernel ``Theta(x1, x2)`` of ``model``.

    .. math::

        \\Theta_{ab}(x_i, x'_j) = \\sum_{p} \\partial_{\\theta_p} f_a(x_i)\\,
                                           \\partial_{\\theta_p} f_b(x'_j)

    over the trainable parameters. Two implementations, tested against each other:

    * ``"jacobian"``: per-sample Jacobians by ``torch.func.vmap(jacrev(...))`` over chunks of
      inputs, contracted block by block. Works for any per-sample model (shared weights,
      convolutions...). Memory is bounded: one block holds ``chunk_size`` samples' Jacobians (auto:
      ``max_block_bytes`` per block); column blocks are kept while they fit in
      ``2 * max_block_bytes`` and recomputed per row block otherwise.
    * ``"structured"``: for networks whose trainable parameters all live in ``nn.Linear`` (or
      :class:`ScaledLinear`) layers applied once to ``(batch, features)`` inputs. One forward and
      ``o`` backward passes give each layer's inputs ``A`` and output gradients ``G`` w.r.t. its
      pre-activations; the Jacobian of ``f_a`` w.r.t. that layer's weight is ``G_a (x) A``, so

      .. math:: \\Theta = \\sum_l (m_w^2 A_l A_l'^T + m_b^2) \\odot (G_l G_l'^T)

      (``m_w``, ``m_b`` the layer's multipliers, 1 for ``nn.Linear``). Memory: one layer's
      activations and gradients; no per-sample Jacobians.
    * ``"auto"`` (default) takes the structured path when the checks pass and otherwise falls
      back to ``"jacobian"``, recording why in ``result.diagnostics["fallback_reason"]`` (shared
      parameters, train-mode BatchNorm, parameters in other layer types, a layer called twice or
      on non-2-D inputs).

    Parameters
    ----------
    model : nn.Module
        Evaluated functionally in eval mode (``mode="eval"``) and left exactly as it was.
    x1 : tensor ``(n1, ...)``; x2 : tensor ``(n2, ...)``, optional (default: ``x1``, symmetric)
        Cast to the model's dtype and device.
    output : ``"trace_sum"`` (default) | ``"trace_mean"`` | ``"diagonal"`` | ``"full"``
    method : ``"auto"`` | ``"structured"`` | ``"jacobian"``
    trainable_only : bool
        Kernel over parameters with ``requires_grad=True`` (default) or over all parameters.
    mode : ``"eval"`` | ``"train"``
        ``"train"`` evaluates in train mode; with BatchNorm the whole-batch Jacobian is used
        (samples are coupled) and ``x2`` must be None. Dropout in train mode is random: avoid.
    chunk_size : int, optional
        Samples per Jacobian block in the jacobian path.

    Returns
    -------
    EmpiricalNTK

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))
    >>> x = torch.randn(5, 3)
    >>> k = empirical(net, x, output="full")
    >>> k.kernel.shape, k.method
    (torch.Size([5, 5, 2, 2]), 'structured')
    """
    check_module(model, "model")
    check_choice(output, "output", OUTPUTS)
    check_choice(method, "method", METHODS)
    check_choice(mode, "mode", ("eval", "train"))
    dtype, device = model_dtype_device(model)
    x1, x2 = _check_inputs(x1, x2, dtype, device)
    max_block_bytes = check_int(max_block_bytes, "max_block_bytes", minimum=1)
    all_params = parameters_of(model)
    req = {k: p.requires_grad for k, p in model.named_parameters()}
    params = {k: v for k, v in all_params.items() if req[k] or not trainable_only}
    if not params:
        raise ValueError("`model` has no trainable parameters (all have requires_grad=False)")
    frozen = {k: v for k, v in all_params.items() if k not in params}
    num_params = sum(p.numel() for p in params.values())
    buffers = buffers_of(model)
    reason = None
    kernel = None
    used = method
    chunk = None
    with eval_mode(model, mode == "train"), torch.enable_grad():  # works inside torch.no_grad() too
        if method in ("auto", "structured"):
            reason = _structured_reason(model, mode, trainable_only)
            if reason is None:
                try:
                    kernel, o = _structured(model, all_params, buffers, x1, x2, output, trainable_only)
                    used = "structured"
                except _Fallback as exc:
                    reason = str(exc)
            if reason is not None and method == "structured":
                raise ValueError(f"method='structured' does not apply to this model: {reason}")
        if kernel is None:
            used = "jacobian"
            if chunk_size is None and mode == "train":
                chunk = x1.shape[0]  # whole-batch Jacobian: samples are coupled
            elif chunk_size is None:
                with torch.no_grad():
                    probe = torch.func.functional_call(model, {**all_params, **buffers}, (x1[:1],))
                o_probe = int(probe.numel())
                per_sample = max(1, o_probe * num_params * x1.element_size())
                chunk = max(1, min(x1.shape[0], max_block_bytes // per_sample))
            else:
                chunk = check_int(chunk_size, "chunk_size", minimum=1)
            kernel, o = _jacobian_path(
                model, params, frozen, buffers, x1, x2, output, mode, chunk, 2 * max_block_bytes
            )
    if output == "trace_mean":
        kernel = kernel / o
    kernel = kernel.detach()
    diagnostics = {
        "requested_method": method,
        "fallback_reason": reason if used == "jacobian" and method == "auto" else None,
        "chunk_size": chunk,
        "symmetric": x2 is None,
        "mode": mode,
    }
    return EmpiricalNTK(kernel, output, used, int(o), int(num_params), diagnostics)


# ----------------------------------------------------------------------------------------------
# Analytic (infinite-width) NTK
# ----------------------------------------------------------------------------------------------


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

    def plot(self, **kw):
        return plot_kernel(self, **kw)


def _dual(activation, k12, k11, k22):
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Returns new tensors (for ``"linear"`` the first is ``k12`` itself); ``k11``/``k22`` broadcast.
    """
    if activation == "linear":
        return k12, torch.ones_like(k12)
    if activation == "relu":
        # arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009), written with in-place ops:
        # e = sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi), ed = (pi - t) / (2 pi)
        prod = (k11 * k22).clamp_min_(0.0).sqrt_()
        cos = torch.div(k12, prod.clamp_min(1e-300)).clamp_(-1.0, 1.0)
        pi_minus = torch.arccos(cos).neg_().add_(math.pi)
        sin = cos.square().neg_().add_(1.0).clamp_min_(0.0).sqrt_()
        e = torch.addcmul(sin, pi_minus, cos).mul_(prod).mul_(1 / (2 * math.pi))
        return e, pi_minus.mul_(1 / (2 * math.pi))
    # erf (Williams 1997)
    d = (1 + 2 * k11) * (1 + 2 * k22)
    e = (2 / math.pi) * torch.arcsin((2 * k12 / torch.sqrt(d)).clamp(-1.0, 1.0))
    ed = (4 / math.pi) / torch.sqrt(torch.clamp(d - 4 * k12 * k12, min=1e-300))
    return e, ed


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
    """Infinite-width NNGP kernel and NTK of an MLP by the layer recursion, in float64.

    ``depth`` counts the **hidden layers** (nonlinearities): the network is
    ``x -> [Dense -> phi] x depth -> Dense`` with ``depth + 1`` weight matrices (the paper's
    ``L = depth + 1``). With ``K_0(x, x') = x . x' / d_in`` and, for ``l = 1 .. depth + 1``,

    .. math::

        \\Sigma^{(l)} = \\sigma_w^2\\, \\hat E_{l-1} + \\sigma_b^2, \\qquad
        \\hat E_0 = K_0, \\quad
        \\hat E_{l} = \\mathbb E_{(u,v)\\sim N(0, \\Sigma^{(l)})}[\\phi(u)\\phi(v)],

        \\dot\\Sigma^{(l+1)} = \\sigma_w^2\\, \\mathbb E[\\phi'(u)\\phi'(v)], \\qquad
        \\Theta^{(1)} = c_w(1) \\hat E_0 + c_b, \\quad
        \\Theta^{(l+1)} = c_w(l+1) \\hat E_l + c_b + \\dot\\Sigma^{(l+1)} \\Theta^{(l)},

    returning ``nngp = Sigma^(depth+1)`` and ``ntk = Theta^(depth+1)``. In the NTK parametrisation
    ``c_w = sigma_w^2`` and ``c_b = sigma_b^2`` (so ``Theta^(l+1) = Sigma^(l+1) + dotSigma Theta^(l)``,
    Jacot et al. 2018, Theorem 1, with the weight scale written out as in Lee et al. 2019 and
    neural-tangents); in the standard parametrisation the gradients are not width-normalised,
    ``c_w(l) = n_{l-1}`` (``n_0 = d_in``, hidden ``widths``) and ``c_b = 1`` if there are biases:
    the kernel then grows with width (Sohl-Dickstein et al. 2020, arXiv:2001.07301).

    Dual activations: ReLU uses the arc-cosine kernels (Cho & Saul 2009)
    ``E[relu relu] = sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi)``,
    ``E[relu' relu'] = (pi - t) / (2 pi)``, ``t = arccos(k12 / sqrt(k11 k22))``; erf uses
    ``E = (2/pi) arcsin(2 k12 / sqrt((1 + 2 k11)(1 + 2 k22)))`` and
    ``E' = (4/pi) / sqrt((1 + 2 k11)(1 + 2 k22) - 4 k12^2)`` (Williams 1997); ``"linear"`` is the
    identity.

    References: Arthur Jacot, Franck Gabriel, Clement Hongler, "Neural Tangent Kernel: Convergence
    and Generalization in Neural Networks", 2018, arXiv:1806.07572; Jaehoon Lee et al., "Wide
    Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent", 2019,
    arXiv:1902.06720.

    Parameters
    ----------
    x1 : tensor ``(n1, d_in)``; x2 : tensor ``(n2, d_in)``, optional (default ``x1``)
    depth : int >= 1, number of hidden layers
    activation : ``"relu"`` | ``"erf"`` | ``"linear"``
    w_std : float > 0 (``sigma_w``); b_std : float >= 0 (``sigma_b``)
    parametrization : ``"ntk"`` | ``"standard"`` (needs ``widths``)
    widths : int or sequence of ``depth`` ints: hidden widths (standard parametrisation only)
    bias : bool: whether the layers have biases (matters for the standard parametrisation)

    Returns
    -------
    AnalyticNTK with ``nngp`` and ``ntk`` (float64, on ``x1``'s device).

    Example
    -------
    >>> x = torch.randn(4, 3)
    >>> lim = analytic(x, depth=2, w_std=2 ** 0.5)
    >>> lim.ntk.shape, lim.ntk.dtype
    (torch.Size([4, 4]), torch.float64)
    """
    depth = check_int(depth, "depth", minimum=1)
    check_choice(activation, "activation", ACTIVATIONS)
    w_std = check_float(w_std, "w_std", positive=True)
    b_std = check_float(b_std, "b_std", minimum=0.0)
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
        sig12 = k12 * ws2 + bs2
        theta = k12.mul_(cw(1)).add_(cb)  # k12 is not needed any more
        for layer in range(2, depth + 2):
            e12, ed12 = _dual(activation, sig12, s11[layer - 2][r0:r1, None], s22[layer - 2][None, :])
            theta = ed12.mul_(theta).mul_(ws2).add_(e12, alpha=cw(layer)).add_(cb)
            sig12 = e12.mul_(ws2).add_(bs2)
        nngp[r0:r1] = sig12
        ntk_[r0:r1] = theta
    sig12, theta = nngp, ntk_
    return AnalyticNTK(
        sig12, theta, depth, activation, w_std, b_std if bias else 0.0, parametrization, widths, bias
    )


# ----------------------------------------------------------------------------------------------
# Kernel linear algebra
# ----------------------------------------------------------------------------------------------


def _kernel_matrix(kernel, name="kernel") -> torch.Tensor:
    """A float64 2-D kernel matrix from a tensor/array/result; (n, n, o, o) -> (n o, n o)."""
    if isinstance(kernel, (EmpiricalNTK, AnalyticNTK)):
        kernel = kernel.kernel
    if isinstance(kernel, np.ndarray):
        kernel = torch.from_numpy(kernel)
    k = check_tensor(kernel, name, ndim=(2, 4), floating=True)
    if k.ndim == 4:
        n1, n2, o1, o2 = k.shape
        k = k.permute(0, 2, 1, 3).reshape(n1 * o1, n2 * o2)
    return k.to(torch.float64)


def _square(kernel, name) -> torch.Tensor:
    k = _kernel_matrix(kernel, name)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"`{name}` must be square, got shape {tuple(k.shape)}")
    return (k + k.T) / 2


@dataclass(frozen=True, repr=False)
class KernelSpectrum(Result):
    """Eigen-decomposition of a symmetric PSD kernel (float64, eigenvalues descending).

    ``num_clipped`` eigenvalues in ``[-tol, 0)`` were set to 0; ``min_raw`` is the most negative
    raw eigenvalue; ``psd`` is False when some eigenvalue was below ``-tol`` (then nothing is
    clipped and the kernel is not a valid NTK/Gram matrix).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    num_clipped: int
    min_raw: float
    tol: float
    psd: bool

    def plot(self, **kw):
        return plot_spectrum(self, **kw)


def eigh(kernel, *, rtol: float | None = None) -> KernelSpectrum:
    """Eigen-decomposition of a kernel matrix, symmetrised, in float64, with clipping.

    Round-off makes tiny eigenvalues of a PSD kernel slightly negative; those with
    ``|lambda| <= tol = rtol * max|lambda|`` (default ``rtol = n * eps_float64 * 10``, or the
    kernel's own dtype's eps if it came in lower precision) are clipped to 0 and counted.

    ``kernel``: ``(n, n)`` or ``(n, n, o, o)`` (flattened to ``(n o, n o)``), tensor, array or an
    :class:`EmpiricalNTK`/:class:`AnalyticNTK` result.
    """
    raw = kernel.kernel if isinstance(kernel, (EmpiricalNTK, AnalyticNTK)) else kernel
    in_dtype = raw.dtype if isinstance(raw, torch.Tensor) else torch.float64
    k = _square(kernel, "kernel")
    n = k.shape[0]
    if rtol is None:
        eps = torch.finfo(in_dtype if in_dtype.is_floating_point else torch.float64).eps
        rtol = 10 * n * eps
    rtol = check_float(rtol, "rtol", minimum=0.0)
    evals, evecs = torch.linalg.eigh(k)
    evals, evecs = evals.flip(0), evecs.flip(1)
    top = float(evals.abs().max()) if n else 0.0
    tol = rtol * top
    min_raw = float(evals.min())
    psd = min_raw >= -tol
    neg = (evals < 0) & (evals >= -tol)
    if psd:
        evals = torch.where(neg, torch.zeros_like(evals), evals)
    return KernelSpectrum(evals, evecs, int(neg.sum()) if psd else 0, min_raw, tol, bool(psd))


def _targets(y, n, name="y_train") -> torch.Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    y = check_tensor(y, name, ndim=(1, 2), floating=True)
    if y.shape[0] != n:
        raise ValueError(f"`{name}` has {y.shape[0]} rows but the kernel has {n}")
    return y.to(torch.float64).reshape(n, -1)


@dataclass(frozen=True, repr=False)
class KernelRegression(Result):
    """Kernel (ridge) regression ``f(x) = K(x, X) (K(X, X) + ridge I)^+ y`` in float64."""

    coef: torch.Tensor
    train_predictions: torch.Tensor
    predictions: torch.Tensor | None
    ridge: float
    residual: float
    rank: int


def kernel_regression(
    k_train, y_train, k_test_train=None, *, ridge: float = 0.0, rcond: float | None = None
) -> KernelRegression:
    """Kernel ridge regression (the ``t -> inf`` limit of kernel gradient flow from ``f_0 = 0``).

    .. math:: f(x) = K(x, X)\\,(K(X, X) + \\lambda I)^{+} y

    with the ridge ``lambda`` added to the diagonal as given (no ``n`` factor). Solved by a
    symmetric eigendecomposition in float64, so ``ridge = 0`` with a singular kernel gives the
    minimum-norm interpolant (eigenvalues below ``rcond * max`` dropped; default
    ``n * eps_float64 * 10``, raise it for float32 kernels).

    Parameters
    ----------
    k_train : ``(n, n)`` kernel on the training inputs (or ``(n, n, o, o)``)
    y_train : ``(n,)`` or ``(n, o)`` targets
    k_test_train : ``(m, n)`` kernel between test and training inputs, optional
    """
    k = _square(k_train, "k_train")
    n = k.shape[0]
    y = _targets(y_train, n)
    ridge = check_float(ridge, "ridge", minimum=0.0)
    spec = torch.linalg.eigh(k + ridge * torch.eye(n, dtype=k.dtype, device=k.device))
    lam, v = spec
    rcond = (
        10 * n * torch.finfo(torch.float64).eps if rcond is None else check_float(rcond, "rcond", minimum=0.0)
    )
    keep = lam > rcond * lam.abs().max()
    inv = torch.where(keep, 1 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    coef = v @ (inv[:, None] * (v.T @ y))
    train_pred = k @ coef
    pred = None
    if k_test_train is not None:
        kt = _kernel_matrix(k_test_train, "k_test_train")
        if kt.shape[1] != n:
            raise ValueError(
                f"`k_test_train` must have {n} columns (training points), got shape {tuple(kt.shape)}"
            )
        pred = kt @ coef
    resid = float(torch.linalg.norm(train_pred + ridge * coef - y) / max(float(torch.linalg.norm(y)), 1e-300))
    return KernelRegression(coef, train_pred, pred, ridge, resid, int(keep.sum()))


@dataclass(frozen=True, repr=False)
class GradientFlow(Result):
    """Closed-form trajectory of a linearised model trained with MSE (float64).

    ``train`` has shape ``(T, n, o)``, ``test`` ``(T, m, o)`` (or None); ``times`` are continuous
    times ``t = lr * steps`` for gradient flow or step counts for ``discrete=True``.
    """

    times: np.ndarray
    train: torch.Tensor
    test: torch.Tensor | None
    eigenvalues: torch.Tensor
    lr: float
    loss: str
    discrete: bool


def gradient_flow(
    k_train,
    y_train,
    times,
    *,
    f0_train=None,
    k_test_train=None,
    f0_test=None,
    lr: float = 1.0,
    loss: str = "mean",
    discrete: bool = False,
) -> GradientFlow:
    """Predictions of the linearised model at any time under gradient descent on the MSE.

    Loss ``L = (c/2) sum_i ||f(x_i) - y_i||^2`` with ``c = 1/n`` (``loss="mean"``, i.e.
    ``0.5 * mean`` over samples of the squared error summed over outputs) or ``c = 1``
    (``loss="sum"``). Gradient flow with learning rate ``eta`` on the parameters of the
    linearised model moves the training outputs by ``df/dt = -eta c K (f - y)``, so

    .. math::

        f_t(X) = y + e^{-\\eta c K t}(f_0(X) - y), \\qquad
        f_t(x) = f_0(x) - K(x, X) K^{-1}(I - e^{-\\eta c K t})(f_0(X) - y).

    With ``discrete=True``, ``times`` are numbers of gradient-descent steps and the exponential
    becomes ``(I - eta c K)^t``. Computed from one eigendecomposition; ``(1 - e^{-eta c lambda t})
    / lambda`` is evaluated stably (-> ``eta c t`` for ``lambda -> 0``, so singular kernels are
    fine). Lee et al. 2019 (arXiv:1902.06720), eq. (9); neural-tangents'
    ``predict.gradient_descent_mse``.

    Parameters
    ----------
    k_train : ``(n, n)`` kernel (applied to each output column) or ``(n, n, o, o)`` full kernel
    y_train : ``(n,)`` or ``(n, o)``
    times : sequence of float (or int steps when ``discrete``)
    f0_train, f0_test : initial outputs (default 0)
    k_test_train : ``(m, n)`` (or ``(m, n, o, o)``)
    """
    check_choice(loss, "loss", ("mean", "sum"))
    lr = check_float(lr, "lr", positive=True)
    raw = k_train.kernel if isinstance(k_train, (EmpiricalNTK, AnalyticNTK)) else k_train
    full = getattr(raw, "ndim", 2) == 4
    k = _square(k_train, "k_train")
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("`times` must be a 1-D sequence of finite non-negative numbers")
    if full:
        n, o = raw.shape[0], raw.shape[2]
        y = _targets(y_train, n).reshape(n * o, 1)
    else:
        n = k.shape[0]
        y = _targets(y_train, n)
        o = y.shape[1]
    f0 = torch.zeros_like(y) if f0_train is None else _targets(f0_train, n, "f0_train").reshape(y.shape)
    c = lr / (n if loss == "mean" else 1)
    lam, v = torch.linalg.eigh(k)
    lam = lam.clamp(min=0.0)
    r0 = v.T @ (f0 - y)  # residual in the eigenbasis
    t = torch.as_tensor(times, dtype=torch.float64, device=k.device)[:, None]
    if discrete:
        decay = (1 - c * lam[None, :]) ** t
        # (1 - (1 - c lam)^t) / lam, stable for small lam
        small = lam < 1e-12
        gain = torch.where(
            small[None, :],
            c * t.expand(-1, lam.shape[0]),
            (1 - decay) / torch.where(small, torch.ones_like(lam), lam)[None, :],
        )
    else:
        x = c * lam[None, :] * t
        decay = torch.exp(-x)
        gain = torch.where(
            lam[None, :] > 0,
            -torch.expm1(-x) / torch.where(lam > 0, lam, torch.ones_like(lam))[None, :],
            c * t.expand(-1, lam.shape[0]),
        )
    train = y[None] + torch.einsum("pk,tk,kj->tpj", v, decay, r0)
    test = None
    if k_test_train is not None:
        kt = _kernel_matrix(k_test_train, "k_test_train")
        if kt.shape[1] != k.shape[0]:
            raise ValueError(f"`k_test_train` must have {k.shape[0]} columns, got shape {tuple(kt.shape)}")
        m = kt.shape[0]
        ft0 = (
            torch.zeros(m, y.shape[1], dtype=torch.float64, device=k.device)
            if f0_test is None
            else _targets(f0_test, m // (o if full else 1), "f0_test").reshape(m, -1)
        )
        kv = kt @ v
        test = ft0[None] - torch.einsum("mk,tk,kj->tmj", kv, gain, r0)
        if full:
            test = test.reshape(len(times), m // o, o)
    if full:
        train = train.reshape(len(times), n, o)
    return GradientFlow(times, train, test, lam.flip(0), lr, loss, bool(discrete))


def _flat_pair(k1, k2):
    a = _kernel_matrix(k1, "k1")
    b = _kernel_matrix(k2, "k2")
    if a.shape != b.shape:
        raise ValueError(f"`k1` and `k2` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def alignment(kernel, y, *, centered: bool = False) -> float:
    """Kernel-target alignment ``A(K, y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)``.

    Cristianini, Shawe-Taylor, Elisseeff & Kandola, "On Kernel-Target Alignment", NeurIPS 2001.
    ``centered=True`` centres both ``K`` and ``Y Y^T`` with ``H = I - 11^T/n`` first (Cortes, Mohri
    & Rostamizadeh, "Algorithms for Learning Kernels Based on Centered Alignment", 2012,
    arXiv:1203.0550). ``y`` is ``(n,)`` or ``(n, o)``. In ``[-1, 1]`` (``[0, 1]`` for PSD ``K``).
    """
    k = _square(kernel, "kernel")
    n = k.shape[0]
    yy = _targets(y, n, "y")
    t = yy @ yy.T
    if centered:
        h = torch.eye(n, dtype=k.dtype, device=k.device) - 1.0 / n
        k, t = h @ k @ h, h @ t @ h
    denom = float(torch.linalg.norm(k) * torch.linalg.norm(t))
    if denom == 0.0:
        raise ValueError("alignment is undefined for a zero kernel or zero targets")
    return float((k * t).sum()) / denom


def kernel_distance(k1, k2) -> float:
    """Kernel distance ``1 - <K1, K2>_F / (||K1||_F ||K2||_F)`` (scale-invariant, in [0, 2]).

    As used by Fort et al., "Deep learning versus kernel learning: an empirical study of loss
    landscape geometry and the time evolution of the Neural Tangent Kernel", 2020, arXiv:2010.15110.
    """
    a, b = _flat_pair(k1, k2)
    denom = float(torch.linalg.norm(a) * torch.linalg.norm(b))
    if denom == 0.0:
        raise ValueError("kernel_distance is undefined for a zero kernel")
    return 1.0 - float((a * b).sum()) / denom


def relative_change(k_ref, k) -> float:
    """Relative Frobenius change ``||K - K_ref||_F / ||K_ref||_F`` (scale-dependent)."""
    a, b = _flat_pair(k_ref, k)
    den = float(torch.linalg.norm(a))
    if den == 0.0:
        raise ValueError("relative_change is undefined for a zero reference kernel")
    return float(torch.linalg.norm(b - a)) / den


# ----------------------------------------------------------------------------------------------
# Random features and ridge paths
# ----------------------------------------------------------------------------------------------


def random_features(
    x: torch.Tensor,
    num_features: int,
    *,
    activation: str = "relu",
    weight_std: float | None = None,
    seed: int = 0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random features ``phi(x) = act(x W^T) / sqrt(F)`` with ``W ~ N(0, weight_std^2 I)``.

    Default ``weight_std = 1/sqrt(d)`` (``W ~ N(0, I/d)``). As ``F -> inf`` the Gram matrix
    ``phi phi^T`` tends to the NNGP kernel of a one-hidden-layer network. Give ``weights`` (F, d)
    to reuse a draw (e.g. on test inputs); otherwise they come from ``seed``. Float64 unless
    ``x`` is lower precision (the dtype of ``x`` is kept).
    """
    x = check_tensor(x, "x", ndim=2, floating=True)
    d = x.shape[1]
    if weights is None:
        num_features = check_int(num_features, "num_features", minimum=1)
        std = 1 / math.sqrt(d) if weight_std is None else check_float(weight_std, "weight_std", positive=True)
        gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
        weights = (torch.randn(num_features, d, generator=gen, dtype=torch.float64) * std).to(
            x.device, x.dtype
        )
    else:
        weights = check_tensor(weights, "weights", ndim=2, floating=True)
        if weights.shape[1] != d:
            raise ValueError(
                f"`weights` must have {d} columns (input width), got shape {tuple(weights.shape)}"
            )
    check_choice(activation, "activation", ("relu", "erf", "linear"))
    h = x @ weights.to(x.dtype).T
    h = {"relu": torch.relu, "erf": torch.erf, "linear": lambda t: t}[activation](h)
    return h / math.sqrt(weights.shape[0])


@dataclass(frozen=True, repr=False)
class RidgePath(Result):
    """Ridge regression on features over a grid of ridges (one eigendecomposition).

    ``train_risk[r]`` and ``test_risk[r]`` are mean squared errors (averaged over samples and
    outputs) at ``ridges[r]``; ``best`` is the index of the smallest test risk.
    """

    ridges: np.ndarray
    train_risk: np.ndarray
    test_risk: np.ndarray | None
    num_features: int
    num_samples: int

    @property
    def best(self) -> int:
        if self.test_risk is None:
            raise ValueError("no test data was given")
        return int(np.nanargmin(self.test_risk))


def ridge_path(phi_train, y_train, phi_test=None, y_test=None, *, ridges) -> RidgePath:
    """Ridge regression ``w = (Phi^T Phi + lambda I)^+ Phi^T y`` for every ``lambda`` in ``ridges``.

    One float64 eigendecomposition of the smaller Gram matrix (``Phi Phi^T`` if ``n <= F``, else
    ``Phi^T Phi``) serves the whole grid. ``lambda = 0`` is the minimum-norm least-squares solution
    (pseudo-inverse; eigenvalues below ``n F eps max`` are dropped). The ridge is added as given,
    with no sample-count factor. Used for the random-feature experiments of Simon et al., "More is
    Better in Modern Machine Learning: when Infinite Overparameterization is Optimal and
    Overfitting is Obligatory", 2023, arXiv:2311.14646.
    """
    p = check_tensor(phi_train, "phi_train", ndim=2, floating=True).to(torch.float64)
    n, f = p.shape
    y = _targets(y_train, n)
    ridges = np.atleast_1d(np.asarray(ridges, dtype=np.float64))
    if ridges.ndim != 1 or np.any(~np.isfinite(ridges)) or np.any(ridges < 0):
        raise ValueError("`ridges` must be a 1-D sequence of finite non-negative numbers")
    if phi_test is not None:
        pt = check_tensor(phi_test, "phi_test", ndim=2, floating=True).to(torch.float64)
        if pt.shape[1] != f:
            raise ValueError(f"`phi_test` must have {f} columns, got {pt.shape[1]}")
        if y_test is None:
            raise ValueError("`y_test` is needed with `phi_test`")
        yt = _targets(y_test, pt.shape[0], "y_test")
    if n <= f:
        lam, u = torch.linalg.eigh(p @ p.T)  # Phi = U S V^T with lam = s^2
        uy = u.T @ y
        cut = lam.max().clamp(min=0) * max(n, f) * torch.finfo(torch.float64).eps * 10
        # predictions on train: U diag(lam/(lam+r)) U^T y ; coefficients in sample space
        # alpha = U diag(1/(lam + r)) U^T y, w = Phi^T alpha
        basis_test = (pt @ p.T @ u) if phi_test is not None else None  # (m, n)
    else:
        lam, v = torch.linalg.eigh(p.T @ p)
        cut = lam.max().clamp(min=0) * max(n, f) * torch.finfo(torch.float64).eps * 10
        pv = p @ v  # (n, F) = U S
        uy = pv.T @ y  # S U^T y
        basis_test = (pt @ v) if phi_test is not None else None
    keep = lam > cut
    train_risk, test_risk = [], []
    for r in ridges:
        denom = lam + r
        inv = torch.where(keep, 1 / torch.where(keep, denom, torch.ones_like(denom)), torch.zeros_like(denom))
        if n <= f:
            coef = inv[:, None] * uy  # alpha in U basis
            train_pred = u @ (lam[:, None] * coef)
            test_pred = basis_test @ coef if basis_test is not None else None
        else:
            coef = inv[:, None] * uy  # w in V basis
            train_pred = pv @ coef
            test_pred = basis_test @ coef if basis_test is not None else None
        train_risk.append(float(((train_pred - y) ** 2).mean()))
        if test_pred is not None:
            test_risk.append(float(((test_pred - yt) ** 2).mean()))
    return RidgePath(ridges, np.array(train_risk), np.array(test_risk) if test_risk else None, f, n)


# ----------------------------------------------------------------------------------------------
# Training callback
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SnapshotResult(Result):
    """Empirical-NTK snapshots over training with lazy-versus-rich diagnostics.

    ``kernels`` ``(S, n, n)`` float64; ``relative_change[s] = ||K_s - K_0|| / ||K_0||``;
    ``distance[s] = kernel_distance(K_0, K_s)``; ``alignment[s] = A(K_s, y)`` (if targets given);
    ``change_alignment[s] = A(K_s - K_0, y)`` (target alignment of the kernel change).
    """

    steps: np.ndarray
    kernels: torch.Tensor
    relative_change: np.ndarray
    distance: np.ndarray
    alignment: np.ndarray | None
    change_alignment: np.ndarray | None

    def plot(self, **kw):
        return plot_snapshots(self, **kw)


class NTKSnapshots:
    """A :func:`lossviz.train.fit` callback that stores the empirical NTK on fixed inputs.

    Called as ``cb(step, model, loss, history)``; at steps ``0, every, 2 every, ...`` (and the
    steps in ``at``) it computes ``empirical(model, x, output=output)`` (the model is not changed)
    and records it under ``history.records[name]``. :meth:`result` summarises the snapshots:
    kernel change relative to the first snapshot (large in the rich regime, small in the lazy
    regime) and kernel-target alignment. A ``model_fn(model)`` can map the trained module to the
    function whose NTK is wanted (e.g. to subtract a fixed ``f_0``).

    >>> import lossviz
    >>> snaps = NTKSnapshots(torch.randn(16, 2), every=5, targets=torch.randn(16))
    >>> # lossviz.train.fit(net, loss_fn, data, steps=20, callbacks=[snaps]); snaps.result()
    """

    def __init__(
        self,
        x: torch.Tensor,
        *,
        every: int = 1,
        at: Sequence[int] = (),
        targets: torch.Tensor | None = None,
        output: str = "trace_sum",
        method: str = "auto",
        name: str = "ntk",
    ):
        self.x = check_tensor(x, "x", floating=True)
        self.every = check_int(every, "every", minimum=1)
        self.at = {check_int(s, "at[i]", minimum=0) for s in at}
        check_choice(output, "output", ("trace_sum", "trace_mean"))
        check_choice(method, "method", METHODS)
        self.targets = None if targets is None else _targets(targets, self.x.shape[0], "targets")
        self.output, self.method, self.name = output, method, name
        self.steps: list[int] = []
        self.kernels: list[torch.Tensor] = []

    def __call__(self, step: int, model: nn.Module, loss: float = float("nan"), history: Any = None, **_):
        if not (step % self.every == 0 or step in self.at) or (self.steps and self.steps[-1] == step):
            return None
        k = empirical(model, self.x, output=self.output, method=self.method).kernel.to(torch.float64).cpu()
        self.steps.append(int(step))
        self.kernels.append(k)
        if history is not None and hasattr(history, "record"):
            history.record(self.name, int(step), k)
        return None

    def result(self) -> SnapshotResult:
        if not self.kernels:
            raise ValueError("no snapshots were taken (was the callback passed to fit?)")
        k0 = self.kernels[0]
        rel = np.array([relative_change(k0, k) for k in self.kernels])
        dist = np.array([kernel_distance(k0, k) for k in self.kernels])
        al = ca = None
        if self.targets is not None:
            al = np.array([alignment(k, self.targets) for k in self.kernels])
            ca = np.array(
                [np.nan]
                + [
                    alignment(k - k0, self.targets) if float(torch.linalg.norm(k - k0)) > 0 else np.nan
                    for k in self.kernels[1:]
                ]
            )
        return SnapshotResult(np.array(self.steps), torch.stack(self.kernels), rel, dist, al, ca)


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def _as_numpy_kernel(kernel):
    if isinstance(kernel, (EmpiricalNTK, AnalyticNTK)):
        kernel = kernel.kernel
    if isinstance(kernel, torch.Tensor):
        kernel = kernel.detach().cpu().numpy()
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 4:
        n1, n2, o1, o2 = k.shape
        k = k.transpose(0, 2, 1, 3).reshape(n1 * o1, n2 * o2)
    if k.ndim == 3:
        k = k.sum(-1)
    if k.ndim != 2:
        raise ValueError(f"cannot draw a kernel of shape {k.shape}")
    return k


def plot_kernel(kernel, *, title: str = "kernel", backend: str = "plotly", colorscale: str = "Viridis"):
    """Heatmap of a kernel matrix (tensor, array or NTK result). Returns a figure (not shown)."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    k = _as_numpy_kernel(kernel)
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        im = ax.imshow(k, cmap="viridis")
        fig.colorbar(im, ax=ax)
        ax.set_title(title)
        ax.set_xlabel("j")
        ax.set_ylabel("i")
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=k, colorscale=colorscale))
    fig.update_layout(title=title, yaxis={"autorange": "reversed"}, width=460, height=420)
    return fig


def plot_kernel_slice(
    curves: Mapping[str, Any],
    grid,
    *,
    xlabel: str = "angle",
    title: str = "Theta(x0, x)",
    backend: str = "plotly",
):
    """Lines ``Theta(x0, x(s))`` along a 1-D family of inputs ``x(s)``, one per entry of ``curves``.

    ``curves``: ``{label: values}`` with values of shape ``(len(grid),)`` or ``(k, len(grid))``
    (several networks: drawn thin, with their mean thick).
    """
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    s = np.asarray(grid, dtype=np.float64)
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        for i, (label, v) in enumerate(curves.items()):
            v = np.atleast_2d(np.asarray(v, dtype=np.float64))
            color = f"C{i}"
            if v.shape[0] > 1:
                for row in v:
                    ax.plot(s, row, color=color, alpha=0.3, lw=0.8)
            ax.plot(s, v.mean(0), color=color, lw=2, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (label, v) in enumerate(curves.items()):
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        color = _COLORS[i % len(_COLORS)]
        if v.shape[0] > 1:
            for row in v:
                fig.add_trace(
                    go.Scatter(
                        x=s,
                        y=row,
                        mode="lines",
                        line={"color": color, "width": 0.7},
                        opacity=0.35,
                        showlegend=False,
                        hoverinfo="skip",
                    )
                )
        fig.add_trace(
            go.Scatter(x=s, y=v.mean(0), mode="lines", name=label, line={"color": color, "width": 2.5})
        )
    fig.update_layout(title=title, xaxis_title=xlabel, width=700, height=420)
    return fig


_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def plot_spectrum(
    spectra, *, labels: Sequence[str] | None = None, title: str = "kernel spectrum", backend: str = "plotly"
):
    """Eigenvalues (descending, log scale) of one or several kernels / :class:`KernelSpectrum`."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if isinstance(spectra, (KernelSpectrum, EmpiricalNTK, AnalyticNTK, torch.Tensor, np.ndarray)):
        spectra = [spectra]
    vals = []
    for s in spectra:
        if not isinstance(s, KernelSpectrum):
            s = eigh(s)
        vals.append(s.eigenvalues.cpu().numpy())
    labels = list(labels) if labels is not None else [f"kernel {i}" for i in range(len(vals))]
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.6))
        for v, lab in zip(vals, labels):
            ax.semilogy(np.arange(1, len(v) + 1), np.clip(v, 1e-300, None), marker=".", label=lab)
        ax.set_xlabel("index")
        ax.set_ylabel("eigenvalue")
        ax.set_title(title)
        ax.legend(fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for v, lab in zip(vals, labels):
        fig.add_trace(
            go.Scatter(x=np.arange(1, len(v) + 1), y=np.clip(v, 1e-300, None), mode="lines+markers", name=lab)
        )
    fig.update_layout(
        title=title, xaxis_title="index", yaxis_title="eigenvalue", yaxis_type="log", width=600, height=400
    )
    return fig


def plot_snapshots(
    results: SnapshotResult | Mapping[str, SnapshotResult],
    *,
    title: str = "NTK over training",
    backend: str = "plotly",
):
    """Kernel change (relative to step 0) and kernel-target alignment over training."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if isinstance(results, SnapshotResult):
        results = {"run": results}
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for lab, r in results.items():
            axes[0].plot(r.steps, r.relative_change, marker=".", label=lab)
            if r.alignment is not None:
                axes[1].plot(r.steps, r.alignment, marker=".", label=lab)
        axes[0].set_title("||K_t - K_0|| / ||K_0||")
        axes[1].set_title("kernel-target alignment")
        for ax in axes:
            ax.set_xlabel("step")
            ax.legend(fontsize=8)
        fig.suptitle(title)
        return fig
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("||K_t - K_0|| / ||K_0||", "kernel-target alignment"))
    for i, (lab, r) in enumerate(results.items()):
        color = _COLORS[i % len(_COLORS)]
        fig.add_trace(go.Scatter(x=r.steps, y=r.relative_change, name=lab, line={"color": color}), 1, 1)
        if r.alignment is not None:
            fig.add_trace(
                go.Scatter(x=r.steps, y=r.alignment, name=lab, line={"color": color}, showlegend=False), 1, 2
            )
    fig.update_layout(title=title, width=900, height=380)
    fig.update_xaxes(title_text="step")
    return fig
