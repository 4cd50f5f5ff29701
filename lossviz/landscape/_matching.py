r"""Permutation alignment of hidden units (weight matching, Git Re-Basin).

Reference: Samuel K. Ainsworth, Jonathan Hayase, Siddhartha Srinivasa, "Git Re-Basin: Merging
Models modulo Permutation Symmetries", ICLR 2023, arXiv:2209.04836 (Algorithm 1, weight matching).
See also Akira Ito, Masanori Yamada, Atsutoshi Kumagai, "Analysis of Linear Mode Connectivity via
Permutation-Based Weight Matching", ICLR 2025, arXiv:2402.04051.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .._model import eval_mode
from .._result import Result
from .._validate import check_int, check_module

__all__ = [
    "WeightMatching",
    "weight_matching",
    "permute_mlp",
    "mlp_linears",
    "parameter_distance",
    "subspace_overlap",
]

_ALLOWED_PARAMLESS = (
    nn.Sequential,
    nn.ModuleList,
    nn.Identity,
    nn.Dropout,
    nn.Flatten,
    nn.ReLU,
    nn.Tanh,
    nn.GELU,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.Softplus,
    nn.Hardtanh,
)


@dataclass(frozen=True, repr=False)
class WeightMatching(Result):
    """Result of :func:`weight_matching`.

    Attributes
    ----------
    model : nn.Module
        A permuted deep copy of ``model_b`` (``.grad`` cleared) computing the same function.
    permutations : list of int ndarrays
        ``permutations[l][i]`` = index of B's hidden unit in layer ``l`` that becomes unit ``i``.
    objective : list of float
        :math:`\\sum_l \\langle W_l^A, P_l W_l^B P_{l-1}^T\\rangle` (+ biases) after each sweep;
        ``objective[0]`` is the identity permutation.
    sweeps : int, converged : bool (a full sweep changed nothing)
    """

    model: nn.Module
    permutations: list[np.ndarray]
    objective: list[float]
    sweeps: int
    converged: bool

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_weight_matching` (``ax=``: matplotlib)."""
        from .plotting import plot_weight_matching

        return plot_weight_matching(self, backend=backend, ax=ax, **kw)


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


def _arrays(linears):
    Ws = [lin.weight.detach().to(torch.float64).cpu().numpy() for lin in linears]
    bs = [
        lin.bias.detach().to(torch.float64).cpu().numpy()
        if lin.bias is not None
        else np.zeros(lin.out_features)
        for lin in linears
    ]
    return Ws, bs


def _objective(WA, bA, WB, bB, perms):
    total = 0.0
    L = len(WA)
    for layer in range(L):
        rows = perms[layer] if layer < L - 1 else np.arange(WB[layer].shape[0])
        cols = perms[layer - 1] if layer > 0 else np.arange(WB[layer].shape[1])
        total += float(np.sum(WA[layer] * WB[layer][rows][:, cols]) + np.dot(bA[layer], bB[layer][rows]))
    return total


def permute_mlp(model: nn.Module, permutations, name: str = "model") -> nn.Module:
    """A deep copy of an MLP with hidden units permuted (``.grad`` cleared); same function."""
    linears = mlp_linears(model, name)
    if isinstance(permutations, (str, bytes)) or not hasattr(permutations, "__len__"):
        raise TypeError(
            f"`permutations` must be a sequence of index tensors (one per hidden layer), got {type(permutations).__name__}"
        )
    if len(permutations) != len(linears) - 1:
        raise ValueError(f"`permutations` must have {len(linears) - 1} entries (one per hidden layer)")
    out = copy.deepcopy(model)
    new = mlp_linears(out, name)
    with torch.no_grad():
        for layer, lin in enumerate(new):
            W, b = lin.weight, lin.bias
            if layer < len(new) - 1:
                p = torch.as_tensor(np.asarray(permutations[layer]), device=W.device, dtype=torch.long)
                if sorted(p.tolist()) != list(range(W.shape[0])):
                    raise ValueError(f"`permutations[{layer}]` is not a permutation of range({W.shape[0]})")
                W.copy_(W[p])
                if b is not None:
                    b.copy_(b[p])
            if layer > 0:
                q = torch.as_tensor(np.asarray(permutations[layer - 1]), device=W.device, dtype=torch.long)
                W.copy_(W[:, q])
    for p in out.parameters():
        p.grad = None
    return out


def weight_matching(
    model_a: nn.Module,
    model_b: nn.Module,
    *,
    max_sweeps: int = 100,
    seed: int = 0,
    check: bool = True,
) -> WeightMatching:
    r"""Permute the hidden units of ``model_b`` to align its weights with ``model_a``.

    Maximises :math:`\sum_l \langle W_l^A, P_l W_l^B P_{l-1}^\top\rangle + \langle b_l^A, P_l
    b_l^B\rangle` over permutations :math:`P_l` of each hidden layer (:math:`P_0, P_L = I`) by
    coordinate descent: for a layer chosen in random order, with the others fixed, the best
    :math:`P_l` is a linear assignment problem with score matrix

    .. math:: S_l = W_l^A (W_l^B P_{l-1}^\top)^\top + b_l^A {b_l^B}^\top
                    + (W_{l+1}^A)^\top P_{l+1} W_{l+1}^B,

    solved exactly by :func:`scipy.optimize.linear_sum_assignment`; sweeps repeat until a sweep
    changes nothing (Ainsworth et al. 2023, Algorithm 1). Computed in float64.

    Parameters
    ----------
    model_a, model_b : nn.Module
        MLPs with the same widths made of ``nn.Linear`` layers applied in sequence with
        elementwise, parameter-free activations (e.g. :class:`lossviz.models.MLP`). Both are left
        unchanged. Anything else (BatchNorm, convolutions, residual connections) raises
        ``ValueError``.
    max_sweeps : int
        Limit on coordinate-descent sweeps (``converged`` is False if reached).
    seed : int
        Seed of the random layer order.
    check : bool
        Verify on a random probe batch that the permuted copy computes the same outputs (catches
        unsupported wiring such as skip connections) and raise ``ValueError`` otherwise.

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
    la, lb = mlp_linears(model_a, "model_a"), mlp_linears(model_b, "model_b")
    if [(m.in_features, m.out_features) for m in la] != [(m.in_features, m.out_features) for m in lb]:
        raise ValueError(
            "`model_b` has different layer widths than `model_a`: "
            f"{[(m.in_features, m.out_features) for m in lb]} vs {[(m.in_features, m.out_features) for m in la]}"
        )
    WA, bA = _arrays(la)
    WB, bB = _arrays(lb)
    L = len(WA)
    perms = [np.arange(WA[layer].shape[0]) for layer in range(L - 1)]
    rng = np.random.default_rng(seed)
    objective = [_objective(WA, bA, WB, bB, perms)]
    converged = False
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007
        changed = False
        for layer in rng.permutation(L - 1):
            prev = perms[layer - 1] if layer > 0 else np.arange(WB[layer].shape[1])
            nxt = perms[layer + 1] if layer + 1 < L - 1 else np.arange(WB[layer + 1].shape[0])
            S = WA[layer] @ WB[layer][:, prev].T + np.outer(bA[layer], bB[layer])
            S += WA[layer + 1].T @ WB[layer + 1][nxt]
            _, col = linear_sum_assignment(S, maximize=True)
            old = float(S[np.arange(len(col)), perms[layer]].sum())
            new = float(S[np.arange(len(col)), col].sum())
            if not np.array_equal(col, perms[layer]) and new > old + 1e-12 * max(1.0, abs(old)):
                perms[layer] = col
                changed = True
        objective.append(_objective(WA, bA, WB, bB, perms))
        if not changed:
            converged = True
            break
    out = permute_mlp(model_b, perms, "model_b")
    if check:
        dtype, dev = lb[0].weight.dtype, lb[0].weight.device
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(16, lb[0].in_features, generator=g, dtype=torch.float64, device=g.device).to(
            device=dev, dtype=dtype
        )
        with eval_mode(model_b), eval_mode(out), torch.no_grad():
            ya, yb = model_b(x), out(x)
        tol = 1e-4 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9
        scale = float(ya.abs().max()) + 1.0
        if float((ya - yb).abs().max()) > tol * scale:
            raise ValueError(
                "`model_b`: permuting its hidden units changed its outputs, so its architecture is not a "
                "plain sequential MLP (skip connections or non-elementwise operations?); weight_matching "
                "does not support it"
            )
    return WeightMatching(out, perms, objective, sweeps, converged)


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
