r"""MLPs in the standard, NTK and maximal-update parametrisations, and one architecture spec.

A layer of width ``n`` computes ``m_w W x + m_b b`` with trainable ``W``, ``b`` and fixed
multipliers ``m_w``, ``m_b`` (:class:`ScaledLinear`); the parametrisations differ in the
multipliers, the initial variances and the per-tensor learning rates (table in
:func:`parametrize`). :class:`Architecture` is the one description of a fully connected network
(depth, activation, parametrisation, weight and bias scales): ``.build(width, seed=...)`` gives the
finite network and ``.analytic(x1, x2)`` its infinite-width kernels, so width, depth and activation
are stated once (the idea of neural-tangents' ``stax``, whose layers return the network and its
kernel together).

References: Arthur Jacot, Franck Gabriel, Clement Hongler, "Neural Tangent Kernel: Convergence
and Generalization in Neural Networks", NeurIPS 2018, arXiv:1806.07572 (NTK parametrisation);
Greg Yang and Edward J. Hu, "Feature Learning in Infinite-Width Neural Networks", ICML 2021,
arXiv:2011.14522 (muP, Table 3); Jascha Sohl-Dickstein, Roman Novak, Samuel S. Schoenholz, Jaehoon
Lee, "On the infinite width limit of neural networks with a standard parameterization", 2020,
arXiv:2001.07301.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import models
from .._validate import check_choice, check_dtype, check_float, check_int
from ._analytic import AnalyticNTK, analytic

__all__ = ["ScaledLinear", "ParametrizedMLP", "Architecture", "parametrize", "PARAMETRIZATIONS"]

PARAMETRIZATIONS = ("ntk", "standard", "mup")


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


class ParametrizedMLP(nn.Module):
    """A fully connected network in a named parametrisation, built by :func:`parametrize`.

    Attributes
    ----------
    layers : ``nn.ModuleList`` of :class:`ScaledLinear` (the last one is the readout)
    widths : ``(d_in, n_1, ..., n_L, d_out)``
    parametrization : ``"ntk"`` | ``"standard"`` | ``"mup"``
    lr_multipliers : dict parameter name -> float
        Multiply the base learning rate by these (see :meth:`param_groups`).
    w_std, b_std : the weight and bias scales it was built with
    architecture : the :class:`Architecture` it was built from (:meth:`analytic_kernel` uses it)
    """

    def __init__(
        self,
        layers: Sequence[ScaledLinear],
        activation: str,
        parametrization: str,
        lr_multipliers: Mapping[str, float],
        *,
        w_std: float = 1.0,
        b_std: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.activation_name = activation
        self.act = models.activation(activation)
        self.parametrization = parametrization
        self.lr_multipliers = dict(lr_multipliers)
        self.w_std, self.b_std = float(w_std), float(b_std)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.layers[0].in_features, *(layer.out_features for layer in self.layers))

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.layers) - 1

    @property
    def architecture(self) -> Architecture:
        """The :class:`Architecture` this network is an instance of (widths aside)."""
        return Architecture(
            depth=max(self.depth, 1),
            activation=self.activation_name,
            parametrization=self.parametrization,
            w_std=self.w_std,
            b_std=self.b_std,
            bias=self.layers[0].bias is not None,
            d_in=self.widths[0],
            d_out=self.widths[-1],
        )

    def analytic_kernel(self, x1: torch.Tensor, x2: torch.Tensor | None = None) -> AnalyticNTK:
        """The infinite-width kernels of this network's architecture (its own depth, activation,
        scales; for the standard parametrisation its own widths): :func:`lossviz.ntk.analytic`.

        >>> net = parametrize((3, 256, 256, 1), "ntk", w_std=2 ** 0.5, seed=0)
        >>> net.analytic_kernel(torch.randn(4, 3)).depth
        2
        """
        if self.depth < 1:
            raise ValueError("a network without hidden layers has no analytic kernel here (depth >= 1)")
        return self.architecture.analytic(x1, x2, width=self.widths[1:-1])

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

        Pass them to :func:`lossviz.train.fit` as ``optimizer=lambda ps: SGD(net.param_groups(lr))``.

        >>> net = parametrize((3, 16, 1), "mup", seed=0)
        >>> [round(g["lr"], 3) for g in net.param_groups(0.1)][:2]
        [1.6, 1.6]
        """
        lr = check_float(lr, "lr", minimum=0.0)
        return [
            {"params": [p], "lr": lr * self.lr_multipliers[name], "name": name}
            for name, p in self.named_parameters()
        ]


def _activation_name(kind: type) -> str | None:
    """The :data:`lossviz.models.ACTIVATIONS` name of an activation module class (None if none)."""
    if kind is nn.Identity:
        return "linear"
    for name, cls in models.ACTIVATIONS.items():
        if cls is kind:
            return name
    return None


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Identity, nn.Flatten)


def _widths_of(model: nn.Module, activation: str | None) -> tuple[tuple[int, ...], str, bool]:
    """Extract (widths, activation, bias) from an MLP-like model, refusing what cannot be copied."""
    if isinstance(model, ParametrizedMLP):
        return model.widths, activation or model.activation_name, model.layers[0].bias is not None
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, ScaledLinear)) or _activation_name(type(m)) is not None:
            continue
        label = f"{type(m).__name__} {name!r}" if name else type(m).__name__
        if isinstance(m, nn.modules.dropout._DropoutNd):
            raise ValueError(
                f"`model` has {label}: parametrize copies only Linear layers and one activation, "
                "so the copy would silently drop it; build the network from widths instead"
            )
        if list(m.parameters(recurse=False)) or list(m.buffers(recurse=False)):
            raise ValueError(
                f"`model` has {label} with its own parameters or buffers (e.g. BatchNorm): "
                "parametrize copies only Linear layers and one activation, so the copy would be a "
                "different network; build it from widths instead"
            )
    linears = [m for m in model.modules() if isinstance(m, (nn.Linear, ScaledLinear))]
    if not linears:
        raise ValueError("`model` has no Linear layers to take the widths from")
    for a, b in zip(linears[:-1], linears[1:]):
        if a.out_features != b.in_features:
            raise ValueError("`model` is not a simple chain of Linear layers (widths do not chain)")
    widths = (linears[0].in_features, *(m.out_features for m in linears))
    act = activation or getattr(model, "activation_name", None)
    if act is None:
        kinds = {_activation_name(type(m)) for m in model.modules()} - {None, "linear"}
        if len(kinds) > 1:
            raise ValueError(
                f"`model` uses several activations {sorted(kinds)}; parametrize builds one activation "
                "after every hidden layer: pass `activation=`"
            )
        if kinds:
            act = kinds.pop()
        elif len(linears) == 1 or (
            isinstance(model, nn.Sequential) and all(isinstance(m, _CONTAINERS + (nn.Linear,)) for m in model)
        ):
            act = "linear"  # the structure is known: really a linear network
        else:
            raise ValueError(
                f"`model` ({type(model).__name__}) has {len(linears)} Linear layers but no activation "
                "module; an activation called as a function in forward (e.g. torch.relu) cannot be "
                "seen, and guessing 'linear' would build a different network: pass `activation=` "
                "(e.g. activation='relu')"
            )
    if act not in models.ACTIVATIONS:
        raise ValueError(
            f"`model` uses activation {act!r}; parametrize supports {sorted(models.ACTIVATIONS)}"
        )
    _check_chain(model, linears, act)
    return widths, act, linears[0].bias is not None


def _check_chain(model: nn.Module, linears: list[nn.Module], act: str) -> None:
    """Refuse a model whose forward is not ``Linear -> act -> ... -> Linear``.

    The copy parametrize builds is that chain; a function called in ``forward`` (``torch.relu``
    next to a ``Tanh`` module), a residual connection or a reordering would make it a different
    network without any module to show it. The model is run once in eval mode under ``no_grad``
    on a fixed probe (its own generator: the global RNG is not touched) and compared with the
    chain built from its own Linear layers.
    """
    from .._model import eval_mode

    w = linears[0].weight
    d = linears[0].in_features
    x = torch.randn(8, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64, device="cpu")
    x = x.to(dtype=w.dtype if w.is_floating_point() else None, device=w.device)
    phi = models.activation(act)
    with eval_mode(model), torch.no_grad():
        try:
            out = model(x)
        except Exception as e:  # noqa: BLE001 - any failure means the model is not an MLP on (n, d)
            raise ValueError(
                f"`model` could not be run on (n, {d}) inputs (the first Linear layer's width) to "
                f"check it is a chain of Linear layers and {act!r}: {type(e).__name__}: {e}"
            ) from e
        h = x
        for i, m in enumerate(linears):
            h = m(h)
            if i < len(linears) - 1:
                h = phi(h)
    if isinstance(out, torch.Tensor) and out.shape == h.shape:
        scale = float(h.abs().max()) + float(torch.finfo(h.dtype).tiny)
        if float((out - h).abs().max()) <= 1e-3 * scale:
            return
    raise ValueError(
        f"`model`'s forward is not the chain Linear -> {act} -> ... -> Linear of its "
        f"{len(linears)} Linear layers (checked on a probe input): e.g. torch.relu called in forward "
        "beside an activation module, a residual connection or a normalisation. parametrize cannot "
        "parametrise such a forward and the copy would be a different network: build the network "
        "from widths (parametrize((d_in, ..., d_out), activation=...)) instead"
    )


@dataclass(frozen=True)
class Architecture:
    r"""One description of a fully connected network: builds it and gives its infinite-width kernel.

    ``x -> [Dense -> phi] x depth -> Dense``: ``depth`` hidden layers (nonlinearities), ``depth + 1``
    weight matrices, every hidden layer of the width given to :meth:`build`. Width, depth and
    activation are stated once; the finite network (:meth:`build`, via :func:`parametrize`) and the
    limit kernels (:meth:`analytic`, via :func:`lossviz.ntk.analytic`) both come from this object,
    so a wrong-depth or wrong-scale comparison cannot happen by a typo.

    Parameters
    ----------
    depth : int >= 1
        Number of hidden layers.
    activation : a name of :data:`lossviz.models.ACTIVATIONS` (analytic kernels: ``"relu"``,
        ``"erf"``, ``"linear"``)
    parametrization : ``"ntk"`` | ``"standard"`` | ``"mup"`` (``"mup"`` has no analytic NTK)
    w_std, b_std : float
        ``sigma_w`` and ``sigma_b``.
    bias : bool
    d_in : int, optional
        Input width (default: taken from the inputs of :meth:`analytic` / given to :meth:`build`).
    d_out : int
        Number of outputs (default 1).

    Examples
    --------
    >>> import torch
    >>> arch = Architecture(depth=2, w_std=2 ** 0.5, b_std=0.1, d_in=2)
    >>> net = arch.build(512, seed=0, dtype=torch.float64)
    >>> net.widths
    (2, 512, 512, 1)
    >>> x = torch.randn(6, 2, dtype=torch.float64)
    >>> lim = arch.analytic(x)          # the same depth, activation and scales
    >>> from lossviz import ntk
    >>> bool(ntk.relative_change(lim.ntk, ntk.empirical(net, x).kernel) < 0.2)
    True
    """

    depth: int
    activation: str = "relu"
    parametrization: str = "ntk"
    w_std: float = 1.0
    b_std: float = 0.0
    bias: bool = True
    d_in: int | None = None
    d_out: int = 1

    def __post_init__(self):
        check_int(self.depth, "depth", minimum=1)
        check_choice(self.activation, "activation", tuple(models.ACTIVATIONS))
        check_choice(self.parametrization, "parametrization", PARAMETRIZATIONS)
        check_float(self.w_std, "w_std", positive=True)
        check_float(self.b_std, "b_std", minimum=0.0)
        if self.d_in is not None:
            check_int(self.d_in, "d_in", minimum=1)
        check_int(self.d_out, "d_out", minimum=1)

    def hidden_widths(self, width: int | Sequence[int]) -> tuple[int, ...]:
        """``depth`` hidden widths from one width (or a sequence of ``depth`` widths)."""
        if isinstance(width, int) and not isinstance(width, bool):
            width = (width,) * self.depth
        ws = tuple(check_int(w, "width[i]", minimum=1) for w in width)
        if len(ws) != self.depth:
            raise ValueError(f"`width` must give {self.depth} hidden widths, got {len(ws)}")
        return ws

    def widths(self, width: int | Sequence[int], d_in: int | None = None) -> tuple[int, ...]:
        """``(d_in, n_1, ..., n_depth, d_out)``."""
        d_in = self.d_in if d_in is None else check_int(d_in, "d_in", minimum=1)
        if d_in is None:
            raise ValueError("`d_in` is needed (give it here or to Architecture)")
        return (d_in, *self.hidden_widths(width), self.d_out)

    def build(
        self,
        width: int | Sequence[int],
        *,
        d_in: int | None = None,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device=None,
    ) -> ParametrizedMLP:
        """The finite network at ``width`` (:func:`parametrize`), initialised from ``seed``."""
        return parametrize(
            self.widths(width, d_in),
            self.parametrization,
            activation=self.activation,
            w_std=self.w_std,
            b_std=self.b_std,
            bias=self.bias,
            seed=seed,
            dtype=dtype,
            device=device,
        )

    def analytic(
        self, x1: torch.Tensor, x2: torch.Tensor | None = None, *, width: int | Sequence[int] | None = None
    ) -> AnalyticNTK:
        """Infinite-width NNGP and NTK (:func:`lossviz.ntk.analytic`) of this architecture.

        ``width`` is needed only for the standard parametrisation (its kernel grows with width).
        """
        if self.d_in is not None and getattr(x1, "ndim", 0) == 2 and x1.shape[1] != self.d_in:
            raise ValueError(f"`x1` has {x1.shape[1]} features but the architecture has d_in={self.d_in}")
        widths = None
        if self.parametrization == "standard":
            if width is None:
                raise ValueError("`width` is needed for the analytic kernel of the standard parametrisation")
            widths = self.hidden_widths(width)
        return analytic(
            x1,
            x2,
            depth=self.depth,
            activation=self.activation,
            w_std=self.w_std,
            b_std=self.b_std,
            parametrization=self.parametrization,
            widths=widths,
            bias=self.bias,
        )


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
    activation : a name of :data:`lossviz.models.ACTIVATIONS`; default: the model's, or
        ``"relu"`` for widths. A model whose activation is a function call in ``forward`` (e.g.
        ``torch.relu``) has no activation module to read: pass ``activation=`` (a
        ``ValueError`` says so), and models with BatchNorm, Dropout or other layers besides
        Linear layers and activations are refused (the copy would be a different network).
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

    Examples
    --------
    >>> net = parametrize((16, 256, 256, 1), "mup", seed=0)
    >>> net.lr_multipliers["layers.1.weight"], net.lr_multipliers["layers.2.bias"]
    (256.0, 1.0)
    """
    check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    if isinstance(model, nn.Module):
        if activation is not None:
            check_choice(activation, "activation", tuple(models.ACTIVATIONS))
        widths, act0, bias0 = _widths_of(model, activation)
    elif isinstance(model, Sequence) and not isinstance(model, str):
        widths = tuple(check_int(w, f"model[{i}] (width)", minimum=1) for i, w in enumerate(model))
        if len(widths) < 2:
            raise ValueError(f"`model` as widths needs at least (d_in, d_out), got {widths}")
        act0, bias0 = "relu", True
    else:
        raise TypeError(f"`model` must be an nn.Module or a sequence of widths, got {type(model).__name__}")
    activation = act0 if activation is None else activation
    check_choice(activation, "activation", tuple(models.ACTIVATIONS))
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
    return ParametrizedMLP(layers, activation, parametrization, lrm, w_std=w_std, b_std=b_std)
