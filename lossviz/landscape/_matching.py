r"""Permutation alignment of hidden units and channels (weight matching, Git Re-Basin).

A *permutation spec* names every permutation symmetry of a network: each group (the hidden units
of a layer, the channels of a convolution, the residual stream shared by the blocks of a ResNet
stage) maps to the (parameter or buffer name, axis) pairs it permutes. Permuting every group
consistently leaves the function unchanged; weight matching searches these permutations for the
copy of model B whose weights are closest to model A's.

Reference: Samuel K. Ainsworth, Jonathan Hayase, Siddhartha Srinivasa, "Git Re-Basin: Merging
Models modulo Permutation Symmetries", ICLR 2023, arXiv:2209.04836 (section 3 and appendix A: the
permutation specs of MLPs, VGG-style conv nets and ResNets; Algorithm 1, weight matching). See also
Akira Ito, Masanori Yamada, Atsutoshi Kumagai, "Analysis of Linear Mode Connectivity via
Permutation-Based Weight Matching", ICLR 2025, arXiv:2402.04051, and for the BatchNorm statistics
after merging Keller Jordan et al., "REPAIR", ICLR 2023, arXiv:2211.08403
(:func:`lossviz.landscape.reset_bn`, ``interpolate(..., bn="recompute")``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .._model import eval_mode
from .._result import Result
from .._validate import check_int, check_module

__all__ = [
    "PermutationSpec",
    "mlp_spec",
    "conv_spec",
    "resnet_spec",
    "infer_spec",
    "random_permutations",
    "permute",
    "WeightMatching",
    "weight_matching",
    "permute_mlp",
    "mlp_linears",
    "parameter_distance",
    "subspace_overlap",
]

_BN = nn.modules.batchnorm._BatchNorm
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_ENTRIES = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class PermutationSpec:
    """Permutation groups of a network and the (parameter or buffer name, axis) pairs each permutes.

    ``groups[g]`` lists ``(name, axis)``: permutation ``p`` of group ``g`` acts on tensor ``name``
    (a key of ``model.state_dict()``: parameter or buffer) along ``axis`` as ``t.index_select(axis,
    p)``. If that axis is ``k`` times longer than the group (a ``Linear`` after ``Flatten`` of
    ``k`` spatial positions per channel), it is read as ``(group, k)`` blocks, channel-major as
    ``torch.flatten`` lays out NCHW maps, and whole blocks are permuted. Groups are kept in
    construction order (the order of :attr:`WeightMatching.permutations`). ``kind`` records the
    builder (``"mlp"``, ``"conv"``, ``"resnet"`` or ``"custom"``).

    Ainsworth, Hayase & Srinivasa 2023 (Git Re-Basin, arXiv:2209.04836), section 3 / appendix A.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> mlp_spec(net).groups
    {'0': (('0.weight', 0), ('0.bias', 0), ('2.weight', 1))}
    """

    groups: dict[str, tuple[tuple[str, int], ...]]
    kind: str = "custom"
    axes: dict[str, dict[int, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.groups, dict) or not self.groups:
            raise TypeError("`spec.groups` must be a non-empty dict group name -> [(name, axis), ...]")
        groups, axes = {}, {}
        for g, entries in self.groups.items():
            if not isinstance(g, str):
                raise TypeError(f"`spec.groups`: group names must be strings, got {g!r}")
            entries = tuple((str(n), int(a)) for n, a in entries)
            if not entries:
                raise ValueError(f"`spec.groups[{g!r}]` is empty")
            for n, a in entries:
                if a in axes.setdefault(n, {}):
                    raise ValueError(
                        f"`spec`: axis {a} of {n!r} is permuted by two groups ({axes[n][a]!r} and {g!r})"
                    )
                axes[n][a] = g
            groups[g] = entries
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "axes", axes)

    def sizes(self, model: nn.Module, name: str = "model") -> dict[str, int]:
        """Size of every group in ``model``; ``ValueError`` if a name is missing or sizes disagree."""
        state = _state(model)
        out = {}
        for g, entries in self.groups.items():
            for n, a in entries:
                if n not in state:
                    raise ValueError(f"`{name}` has no parameter or buffer {n!r} (permutation group {g!r})")
                t = state[n]
                if not -t.ndim <= a < t.ndim:
                    raise ValueError(f"`{name}`: {n!r} has {t.ndim} dimensions, no axis {a} (group {g!r})")
            # the group size is the smallest axis length (a flattened axis is a multiple of it)
            size = min(state[n].shape[a] for n, a in entries)
            for n, a in entries:
                if state[n].shape[a] % size:
                    raise ValueError(
                        f"`{name}`: axis {a} of {n!r} has length {state[n].shape[a]}, not a multiple of "
                        f"the size {size} of permutation group {g!r}"
                    )
            out[g] = size
        return out


def _state(model):
    return dict(model.named_parameters()) | dict(model.named_buffers())


def _leaves(model):
    return [(n, m) for n, m in model.named_modules() if not list(m.children())]


def _own(m):
    return list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _bn_entries(prefix, bn):
    names = dict(_own(bn))
    return [(_join(prefix, e), 0) for e in _BN_ENTRIES if names.get(e) is not None]


def _layer_entries(prefix, layer):
    out = [(_join(prefix, "weight"), 0)]
    if layer.bias is not None:
        out.append((_join(prefix, "bias"), 0))
    return out


def mlp_linears(model: nn.Module, name: str = "model") -> list[nn.Linear]:
    """The ``nn.Linear`` layers of an MLP in order, or a ``ValueError`` naming ``name``."""
    linears = []
    for mname, m in model.named_modules():
        own = list(m.named_parameters(recurse=False))
        if isinstance(m, nn.Linear):
            linears.append(m)
        elif own:
            raise ValueError(
                f"`{name}`: weight_matching supports MLPs made of nn.Linear layers and parameter-free "
                f"elementwise activations; submodule {mname!r} ({type(m).__name__}) has parameters"
            )
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"`{name}`: weight_matching does not support BatchNorm ({mname!r})")
    if len(linears) < 2:
        raise ValueError(f"`{name}` needs at least two nn.Linear layers (one hidden layer) to permute")
    for a, b in zip(linears[:-1], linears[1:]):
        if a.out_features != b.in_features:
            raise ValueError(
                f"`{name}`: consecutive Linear layers do not chain ({a.out_features} outputs feed a layer "
                f"with {b.in_features} inputs); only sequential MLPs are supported"
            )
    return linears


def mlp_spec(model: nn.Module, name: str = "model") -> PermutationSpec:
    """Spec of an MLP (``nn.Linear`` layers in sequence, parameter-free elementwise activations).

    One group per hidden layer, named by its ``Linear``: its weight rows and bias, and the next
    layer's weight columns (Ainsworth et al. 2023, arXiv:2209.04836, appendix A.1).
    """
    check_module(model, name)
    linears = mlp_linears(model, name)
    names = {id(m): n for n, m in model.named_modules()}
    groups = {}
    for lin, nxt in zip(linears[:-1], linears[1:]):
        n = names[id(lin)]
        groups[n] = (*_layer_entries(n, lin), (_join(names[id(nxt)], "weight"), 1))
    return PermutationSpec(groups, kind="mlp")


def conv_spec(model: nn.Module, name: str = "model") -> PermutationSpec:
    """Spec of a plain (VGG-style) conv net: ``Conv -> BatchNorm -> activation`` chains, then a ``Linear`` head.

    The parametrised leaves must run in registration order (as in an ``nn.Sequential``): each
    ``nn.Conv1d/2d/3d`` (``groups=1``) or ``nn.Linear`` opens a group of its output channels
    (named by the layer; weight axis 0, bias) that a following ``BatchNorm`` (weight, bias,
    ``running_mean``, ``running_var``, axis 0) joins and the next layer's weight axis 1 closes; a
    ``Linear`` after ``Flatten`` takes whole blocks of ``in_features / channels`` inputs per
    channel. The output layer is not permuted. Parameter-free leaves (activations, pooling,
    ``Flatten``, ``Dropout``) pass through. Anything else (skip connections, grouped
    convolutions, other parametrised modules) is not expressible; a module with parameters that
    is not one of these raises ``ValueError``; wiring that is not sequential is caught by
    :func:`weight_matching`'s ``check`` (Ainsworth et al. 2023, arXiv:2209.04836, appendix A).
    """
    check_module(model, name)
    groups, current, size = {}, None, None
    for mname, m in _leaves(model):
        if isinstance(m, (nn.Linear, *_CONV)):
            if isinstance(m, _CONV) and m.groups != 1:
                raise ValueError(f"`{name}`: conv_spec does not support grouped convolutions ({mname!r})")
            fan_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            fan_out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
            if current is not None:
                ok = fan_in % size == 0 if isinstance(m, nn.Linear) else fan_in == size
                if not ok:
                    raise ValueError(
                        f"`{name}`: {mname!r} ({type(m).__name__}) takes {fan_in} inputs but the previous "
                        f"layer {current!r} gives {size} channels; only sequential conv nets are supported"
                    )
                groups[current].append((_join(mname, "weight"), 1))
            current, size = mname, fan_out
            groups[current] = _layer_entries(mname, m)
        elif isinstance(m, _BN):
            if current is None or m.num_features != size:
                raise ValueError(
                    f"`{name}`: BatchNorm {mname!r} ({m.num_features} features) does not follow a layer "
                    f"with {m.num_features} output channels"
                )
            groups[current] += _bn_entries(mname, m)
        elif _own(m):
            raise ValueError(
                f"`{name}`: conv_spec does not support submodule {mname!r} ({type(m).__name__}), which has "
                "parameters or buffers; supported: Linear, Conv1d/2d/3d, BatchNorm and parameter-free modules"
            )
    if current is None or len(groups) < 2:
        raise ValueError(f"`{name}` needs at least two Linear/Conv layers (one hidden layer) to permute")
    del groups[current]  # the outputs are not permuted
    return PermutationSpec({g: tuple(e) for g, e in groups.items()}, kind="conv")


def _child(model, attr, cls, name, where):
    m = getattr(model, attr, None)
    if not isinstance(m, cls):
        raise ValueError(
            f"`{name}`: resnet_spec expects {where}.{attr} to be {cls.__name__ if isinstance(cls, type) else cls}, "
            f"got {type(m).__name__}"
        )
    return m


def resnet_spec(model: nn.Module, name: str = "model") -> PermutationSpec:
    """Spec of a torchvision-layout ResNet (``conv1, bn1, layer1..layerN, fc``; Basic or Bottleneck blocks).

    The residual additions force everything written to the residual stream to share one
    permutation: the stem (``conv1``, ``bn1``) and every block of a stage without a
    ``downsample`` (its last ``conv``/``bn`` outputs), and the inputs of every block's
    ``conv1`` read from it. A block with a ``downsample`` (``Sequential(Conv2d, BatchNorm2d)``)
    starts a new stream group (named ``"<block>.downsample.0"``; the stem's is ``"conv1"``) that
    the downsample conv and the block's last conv/bn write, and the old stream is its input.
    Inside a block each ``conv_i`` but the last has its own group (``"<block>.conv<i>"``; output
    channels, its BatchNorm, the next conv's inputs). ``fc`` reads the last stream. Ainsworth et
    al. 2023, arXiv:2209.04836, appendix A (the ResNet spec of their code).
    """
    check_module(model, name)
    groups: dict[str, list] = {}
    covered = set()
    stem = _child(model, "conv1", nn.Conv2d, name, "model")
    bn1 = _child(model, "bn1", nn.BatchNorm2d, name, "model")
    _child(model, "fc", nn.Linear, name, "model")
    stream = "conv1"
    groups[stream] = _layer_entries("conv1", stem) + _bn_entries("bn1", bn1)
    covered |= {"conv1", "bn1", "fc"}
    k = 1
    while hasattr(model, f"layer{k}"):
        stage = _child(model, f"layer{k}", nn.Sequential, name, "model")
        for i, block in enumerate(stage):
            bname = f"layer{k}.{i}"
            convs = []
            j = 1
            while hasattr(block, f"conv{j}"):
                convs.append(
                    (
                        _child(block, f"conv{j}", nn.Conv2d, name, bname),
                        _child(block, f"bn{j}", nn.BatchNorm2d, name, bname),
                    )
                )
                covered |= {f"{bname}.conv{j}", f"{bname}.bn{j}"}
                j += 1
            if len(convs) < 2:
                raise ValueError(
                    f"`{name}`: block {bname!r} ({type(block).__name__}) has no conv1, conv2, ... chain"
                )
            groups[stream].append((f"{bname}.conv1.weight", 1))
            for j in range(1, len(convs)):
                g = f"{bname}.conv{j}"
                groups[g] = _layer_entries(g, convs[j - 1][0]) + _bn_entries(
                    f"{bname}.bn{j}", convs[j - 1][1]
                )
                groups[g].append((f"{bname}.conv{j + 1}.weight", 1))
            ds = getattr(block, "downsample", None)
            if ds is not None:
                if not (
                    isinstance(ds, nn.Sequential)
                    and len(ds) == 2
                    and isinstance(ds[0], nn.Conv2d)
                    and isinstance(ds[1], nn.BatchNorm2d)
                ):
                    raise ValueError(
                        f"`{name}`: resnet_spec supports downsample = Sequential(Conv2d, BatchNorm2d), "
                        f"{bname}.downsample is {type(ds).__name__}"
                    )
                groups[stream].append((f"{bname}.downsample.0.weight", 1))
                stream = f"{bname}.downsample.0"
                groups[stream] = _layer_entries(stream, ds[0]) + _bn_entries(f"{bname}.downsample.1", ds[1])
                covered |= {f"{bname}.downsample.0", f"{bname}.downsample.1"}
            last = len(convs)
            groups[stream] += _layer_entries(f"{bname}.conv{last}", convs[-1][0])
            groups[stream] += _bn_entries(f"{bname}.bn{last}", convs[-1][1])
        k += 1
    if k == 1:
        raise ValueError(f"`{name}`: resnet_spec expects stages model.layer1, model.layer2, ...; found none")
    groups[stream].append(("fc.weight", 1))
    for mname, m in model.named_modules():
        if mname not in covered and _own(m):
            raise ValueError(
                f"`{name}`: resnet_spec does not support submodule {mname!r} ({type(m).__name__}), which has "
                "parameters or buffers outside the torchvision ResNet layout"
            )
    return PermutationSpec({g: tuple(e) for g, e in groups.items()}, kind="resnet")


def infer_spec(model: nn.Module, name: str = "model") -> PermutationSpec:
    """The spec :func:`weight_matching` uses by default: ResNet, MLP or plain conv net.

    :func:`resnet_spec` if ``model`` has torchvision's ResNet attributes (``conv1``, ``bn1``,
    ``layer1``, ``fc``); :func:`mlp_spec` if its only parametrised modules are ``nn.Linear``;
    :func:`conv_spec` otherwise (also Linear + BatchNorm1d chains).
    """
    check_module(model, name)
    if all(hasattr(model, a) for a in ("conv1", "bn1", "layer1", "fc")):
        return resnet_spec(model, name)
    if all(isinstance(m, nn.Linear) for _, m in _leaves(model) if _own(m)):
        return mlp_spec(model, name)
    return conv_spec(model, name)


def _check_spec(spec, name="spec"):
    if not isinstance(spec, PermutationSpec):
        raise TypeError(
            f"`{name}` must be a PermutationSpec (e.g. landscape.conv_spec(model)), got {type(spec).__name__}"
        )
    return spec


def random_permutations(spec: PermutationSpec, model: nn.Module, seed: int = 0) -> dict[str, np.ndarray]:
    """One uniformly random permutation per group of ``spec`` (sizes read from ``model``), seeded by ``seed``."""
    _check_spec(spec)
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    return {g: rng.permutation(n) for g, n in spec.sizes(model).items()}


def _take(t, perm, axis, size):
    """``t`` permuted along ``axis`` by ``perm`` (length ``size``; axis read as (size, k) blocks)."""
    shape = t.shape
    moved = t.movedim(axis, 0) if isinstance(t, torch.Tensor) else np.moveaxis(t, axis, 0)
    mshape = moved.shape
    flat = moved.reshape(size, -1)[perm].reshape(mshape)
    out = flat.movedim(0, axis) if isinstance(t, torch.Tensor) else np.moveaxis(flat, 0, axis)
    assert out.shape == shape
    return out


def _as_perm_dict(spec, permutations, sizes, arg="permutations"):
    if isinstance(permutations, dict):
        missing = set(spec.groups) - set(permutations)
        extra = set(permutations) - set(spec.groups)
        if missing or extra:
            raise ValueError(
                f"`{arg}` must have one entry per group of the spec; missing {sorted(missing)[:3]}, "
                f"unknown {sorted(extra)[:3]}"
            )
        items = [(g, permutations[g]) for g in spec.groups]
    else:
        if isinstance(permutations, (str, bytes)) or not hasattr(permutations, "__len__"):
            raise TypeError(
                f"`{arg}` must be a dict group -> permutation or a sequence of index arrays (one per "
                f"group), got {type(permutations).__name__}"
            )
        if len(permutations) != len(spec.groups):
            raise ValueError(f"`{arg}` must have {len(spec.groups)} entries (one per permutation group)")
        items = list(zip(spec.groups, permutations))
    out = {}
    for i, (g, p) in enumerate(items):
        p = np.asarray(p.detach().cpu() if isinstance(p, torch.Tensor) else p)
        if p.ndim != 1 or sorted(p.tolist()) != list(range(sizes[g])):
            key = g if isinstance(permutations, dict) else i
            raise ValueError(f"`{arg}[{key!r}]` is not a permutation of range({sizes[g]})")
        out[g] = p.astype(np.int64)
    return out


def permute(
    model: nn.Module, permutations, spec: PermutationSpec | None = None, name: str = "model"
) -> nn.Module:
    """A deep copy of ``model`` with every group of ``spec`` permuted (``.grad`` cleared); same function.

    ``permutations``: a dict group -> index array (as :func:`random_permutations` gives) or a
    sequence in the spec's group order; ``permutations[g][i]`` is the old unit that becomes unit
    ``i``. ``spec`` defaults to :func:`infer_spec`. Parameters and BatchNorm buffers are permuted
    (``num_batches_tracked`` is not); ``model`` is left unchanged (Ainsworth et al. 2023).
    """
    check_module(model, name)
    spec = infer_spec(model, name) if spec is None else _check_spec(spec)
    sizes = spec.sizes(model, name)
    perms = _as_perm_dict(spec, permutations, sizes)
    out = copy.deepcopy(model)
    state = _state(out)
    with torch.no_grad():
        for g, entries in spec.groups.items():
            for n, a in entries:
                t = state[n]
                p = torch.as_tensor(perms[g], device=t.device, dtype=torch.long)
                t.copy_(_take(t, p, a, sizes[g]))
    for p in out.parameters():
        p.grad = None
    return out


def permute_mlp(model: nn.Module, permutations, name: str = "model") -> nn.Module:
    """A deep copy of an MLP with hidden units permuted (``.grad`` cleared); same function.

    ``permutations[l]``: the permutation of hidden layer ``l`` (:func:`permute` with :func:`mlp_spec`).
    """
    spec = mlp_spec(model, name)
    if isinstance(permutations, (str, bytes)) or not hasattr(permutations, "__len__"):
        raise TypeError(
            f"`permutations` must be a sequence of index tensors (one per hidden layer), got {type(permutations).__name__}"
        )
    if len(permutations) != len(spec.groups):
        raise ValueError(f"`permutations` must have {len(spec.groups)} entries (one per hidden layer)")
    return permute(model, list(permutations), spec, name)


@dataclass(frozen=True, repr=False)
class WeightMatching(Result):
    """Result of :func:`weight_matching`.

    Attributes
    ----------
    model : nn.Module
        A permuted deep copy of ``model_b`` (``.grad`` cleared) computing the same function.
    permutations : list of int ndarrays
        One per group of the spec, in ``groups`` order: ``permutations[g][i]`` = index of B's unit
        (hidden unit, channel) of that group that becomes unit ``i``. For an MLP, one per hidden
        layer in order.
    objective : list of float
        :math:`\\sum_\\theta \\langle \\theta^A, \\pi(\\theta^B)\\rangle` over all parameters,
        after each sweep; ``objective[0]`` is the identity permutation.
    sweeps : int
        Coordinate-descent sweeps run (``iterations`` is the same number).
    converged : bool
        A full sweep changed nothing.
    groups : tuple of str
        The spec's group names (order of ``permutations``).
    kind : str
        The spec's builder (``"mlp"``, ``"conv"``, ``"resnet"``, ``"custom"``).
    """

    model: nn.Module
    permutations: list[np.ndarray]
    objective: list[float]
    sweeps: int
    converged: bool
    groups: tuple[str, ...] = ()
    kind: str = "mlp"

    @property
    def iterations(self) -> int:
        """Number of coordinate-descent sweeps (same as ``sweeps``)."""
        return self.sweeps

    @property
    def permutation_dict(self) -> dict[str, np.ndarray]:
        """``{group: permutation}``, the form :func:`permute` accepts."""
        return dict(zip(self.groups, self.permutations))

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_weight_matching` (``ax=``: matplotlib)."""
        from .plotting import plot_weight_matching

        return plot_weight_matching(self, backend=backend, ax=ax, **kw)


def _arrays(model, names):
    state = _state(model)
    return {n: state[n].detach().to(torch.float64).cpu().numpy() for n in names}


def _permuted(arr, n, spec, perms, sizes, skip=None):
    """``arr`` (tensor ``n`` of B) with every group but ``skip`` applied."""
    for a, g in sorted(spec.axes.get(n, {}).items()):
        if g != skip:
            arr = _take(arr, perms[g], a, sizes[g])
    return arr


def _objective(A, B, spec, perms, sizes):
    return float(sum(np.sum(A[n] * _permuted(B[n], n, spec, perms, sizes)) for n in A))


def _probe(model, spec, name, seed):
    first = next((m for _, m in _leaves(model) if isinstance(m, (nn.Linear, *_CONV))), None)
    p = next(model.parameters())
    g = torch.Generator().manual_seed(seed)
    if isinstance(first, nn.Linear):
        shape = (16, first.in_features)
    elif isinstance(first, _CONV):
        shape = (2, first.in_channels) + (32,) * (first.weight.ndim - 2)
    else:
        return None
    return torch.randn(shape, generator=g, dtype=torch.float64, device=g.device).to(
        device=p.device, dtype=p.dtype
    )


def weight_matching(
    model_a: nn.Module,
    model_b: nn.Module,
    spec: PermutationSpec | None = None,
    *,
    max_sweeps: int = 100,
    seed: int = 0,
    check=True,
) -> WeightMatching:
    r"""Permute the units of ``model_b`` (hidden units, channels) to align its weights with ``model_a``.

    Maximises :math:`\sum_\theta \langle \theta^A, \pi(\theta^B)\rangle` over the permutations
    :math:`\pi = (P_g)_g` of the groups of ``spec`` (all parameters; BatchNorm running statistics
    are permuted with their channels but not scored) by coordinate descent:
    for a group :math:`g` chosen in random order, with the others fixed, the best :math:`P_g` is a
    linear assignment problem with score matrix

    .. math:: S_g = \sum_{(\theta, a) \in g} \theta^A_{(a)} \big(\pi_{-g}(\theta^B)_{(a)}\big)^\top,

    where :math:`\theta_{(a)}` is :math:`\theta` with axis :math:`a` moved first and flattened to
    (units, rest) and :math:`\pi_{-g}` applies every other group. It is solved exactly by
    :func:`scipy.optimize.linear_sum_assignment`; sweeps repeat until a sweep changes nothing
    (Ainsworth, Hayase & Srinivasa 2023, Git Re-Basin, arXiv:2209.04836, Algorithm 1). For an
    MLP this is :math:`S_l = W_l^A (W_l^B P_{l-1}^\top)^\top + b_l^A {b_l^B}^\top +
    (W_{l+1}^A)^\top P_{l+1} W_{l+1}^B`. Computed in float64.

    After matching BatchNorm models, the statistics of a merged (interpolated) model are stale:
    recompute them (:func:`lossviz.landscape.reset_bn`, ``interpolate(..., bn="recompute")``).

    Parameters
    ----------
    model_a, model_b : nn.Module
        Same architecture; both are left unchanged.
    spec : PermutationSpec, optional
        Default :func:`infer_spec` (ResNet, MLP or plain conv net); anything else (e.g. skip
        connections in a custom module) needs a hand-written spec, or raises ``ValueError``.
    max_sweeps : int
        Limit on coordinate-descent sweeps (``converged`` is False if reached).
    seed : int
        Seed of the random group order.
    check : bool or Tensor
        Verify that the permuted copy computes the same outputs as ``model_b`` (eval mode) on a
        probe batch and raise ``ValueError`` otherwise (catches wiring the spec does not
        describe). ``True``: random inputs shaped for the first layer (convolutions: 32 pixels
        per side); a tensor: that batch; ``False``: no check.

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape, models
    >>> a, b = models.MLP(4, (8,), 3, seed=0), models.MLP(4, (8,), 3, seed=1)
    >>> res = landscape.weight_matching(a, b)
    >>> x = torch.randn(5, 4)
    >>> torch.allclose(res.model(x), b(x), atol=1e-6)
    True
    """
    check_module(model_a, "model_a")
    check_module(model_b, "model_b")
    max_sweeps = check_int(max_sweeps, "max_sweeps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(check, (bool, torch.Tensor)):
        raise TypeError(f"`check` must be a bool or an input tensor, got {type(check).__name__}")
    if spec is None:
        spec = infer_spec(model_a, "model_a")
        spec_b = infer_spec(model_b, "model_b")
        if spec_b.groups != spec.groups:
            raise ValueError("`model_b` has a different architecture (permutation groups) than `model_a`")
    else:
        _check_spec(spec)
    sizes = spec.sizes(model_a, "model_a")
    sizes_b = spec.sizes(model_b, "model_b")
    sa, sb = _state(model_a), _state(model_b)
    for n in spec.axes:
        if sa[n].shape != sb[n].shape:
            raise ValueError(
                f"`model_b` has different layer widths than `model_a`: {n!r} is {tuple(sb[n].shape)} vs "
                f"{tuple(sa[n].shape)}"
            )
    assert sizes == sizes_b
    params = dict(model_a.named_parameters())
    scored = [n for n, t in params.items() if t.is_floating_point()]
    A, B = _arrays(model_a, scored), _arrays(model_b, scored)
    by_group = {g: [(n, a) for n, a in entries if n in params] for g, entries in spec.groups.items()}
    names = list(spec.groups)
    # A's side of every score matrix does not change: (units, rest) views, made contiguous once
    fixed = {
        (n, a): np.ascontiguousarray(np.moveaxis(A[n], a, 0).reshape(sizes[g], -1))
        for g, entries in by_group.items()
        for n, a in entries
    }
    perms = {g: np.arange(sizes[g]) for g in names}
    rng = np.random.default_rng(seed)
    objective = [_objective(A, B, spec, perms, sizes)]
    converged = False
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007
        changed = False
        for gi in rng.permutation(len(names)):
            g = names[gi]
            n_g = sizes[g]
            S = np.zeros((n_g, n_g))
            for n, a in by_group[g]:
                wa = fixed[n, a]
                wb = np.moveaxis(_permuted(B[n], n, spec, perms, sizes, skip=g), a, 0).reshape(n_g, -1)
                S += wa @ wb.T
            _, col = linear_sum_assignment(S, maximize=True)
            old = float(S[np.arange(n_g), perms[g]].sum())
            new = float(S[np.arange(n_g), col].sum())
            if not np.array_equal(col, perms[g]) and new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = col
                changed = True
        objective.append(_objective(A, B, spec, perms, sizes))
        if not changed:
            converged = True
            break
    out = permute(model_b, perms, spec, "model_b")
    if check is not False:
        x = check if isinstance(check, torch.Tensor) else _probe(model_b, spec, "model_b", seed)
        if x is not None:
            try:
                with eval_mode(model_b), eval_mode(out), torch.no_grad():
                    ya, yb = model_b(x), out(x)
            except Exception as e:
                raise ValueError(
                    f"`check`: could not run `model_b` on the probe batch of shape {tuple(x.shape)} ({e}); "
                    "pass check=<a batch of inputs> or check=False"
                ) from e
            fp = ya.dtype in (torch.float32, torch.float16, torch.bfloat16)
            tol = 1e-4 if fp else 1e-9
            scale = float(ya.abs().max()) + 1.0
            if float((ya - yb).abs().max()) > tol * scale:
                raise ValueError(
                    f"`model_b`: permuting it by the {spec.kind} permutation spec changed its outputs, so "
                    "the spec does not describe its architecture (skip connections or non-elementwise "
                    "operations?); pass a `spec` that does"
                )
    return WeightMatching(
        out, [perms[g] for g in names], objective, sweeps, converged, tuple(names), spec.kind
    )


def parameter_distance(model_a: nn.Module, model_b: nn.Module) -> float:
    """Euclidean distance between the parameter vectors of two models of the same architecture."""
    check_module(model_a, "model_a")
    check_module(model_b, "model_b")
    pa, pb = list(model_a.parameters()), list(model_b.parameters())
    if len(pa) != len(pb) or any(p.shape != q.shape for p, q in zip(pa, pb)):
        raise ValueError("`model_b` does not have the same parameter shapes as `model_a`")
    with torch.no_grad():
        return float(sum(((p.double() - q.double()) ** 2).sum() for p, q in zip(pa, pb)) ** 0.5)


def subspace_overlap(model_a: nn.Module, model_b: nn.Module, layer: int = 0, k: int = 5) -> float:
    r"""Overlap :math:`\|U_A^\top U_B\|_F^2 / k` of the top-``k`` left singular subspaces of a layer.

    ``U`` holds the top-``k`` left singular vectors (hidden-unit space) of the ``layer``-th
    ``nn.Linear`` weight of each MLP; 1 = same subspace, about ``k / width`` for random ones.
    Permuting hidden units rotates this subspace, so matching should raise the overlap (Ito et al.
    2025, arXiv:2402.04051: weight matching aligns the dominant singular directions).
    """
    la, lb = mlp_linears(model_a, "model_a"), mlp_linears(model_b, "model_b")
    layer = check_int(layer, "layer", minimum=0, maximum=len(la) - 1)
    Wa = la[layer].weight.detach().to(torch.float64)
    Wb = lb[layer].weight.detach().to(torch.float64)
    if Wa.shape != Wb.shape:
        raise ValueError(f"`model_b` layer {layer} has shape {tuple(Wb.shape)}, `model_a` {tuple(Wa.shape)}")
    k = check_int(k, "k", minimum=1, maximum=min(Wa.shape))
    Ua = torch.linalg.svd(Wa, full_matrices=False)[0][:, :k]
    Ub = torch.linalg.svd(Wb, full_matrices=False)[0][:, :k]
    return float((Ua.T @ Ub).norm() ** 2 / k)
