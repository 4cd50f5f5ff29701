"""Random directions in parameter space, normalised per filter (Li et al. 2018).

Reference: Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein, "Visualizing the Loss
Landscape of Neural Nets", NeurIPS 2018, arXiv:1712.09913.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_choice, check_int, check_module

__all__ = ["Directions", "random_directions", "as_directions"]

NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
_IGNORE_CHOICES = ("bias", "norm", "frozen")


def _norm_param_names(model: nn.Module) -> set[str]:
    names = set()
    for mname, m in model.named_modules():
        if isinstance(m, NORM_LAYERS) or type(m).__name__.lower().endswith("norm"):
            for pname, _ in m.named_parameters(recurse=False):
                names.add(f"{mname}.{pname}" if mname else pname)
    return names


def _is_hf_conv1d(m: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a linear layer whose weight is stored as (in, out)."""
    return type(m).__name__ == "Conv1D" and type(m).__module__.startswith("transformers")


def unit_dims(model: nn.Module) -> dict[str, int]:
    """The dimension indexing output units (filters) of each weight stored transposed.

    ``nn.Linear``/``nn.Conv*d`` store weights as (out, in, ...): units along dim 0, the default
    (not listed). Hugging Face's ``Conv1D`` (GPT-2's attention and MLP) stores (in, out) and
    ``nn.ConvTranspose*d`` (in, out / groups, ...): their units lie along dim 1.
    """
    dims = {}
    for mname, m in model.named_modules():
        if _is_hf_conv1d(m) or isinstance(m, nn.modules.conv._ConvTransposeNd):
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.ndim >= 2:
                dims[f"{mname}.weight" if mname else "weight"] = 1
    return dims


@dataclass(frozen=True, repr=False)
class Directions(Result):
    """A set of directions in parameter space, one tensor per named parameter.

    Attributes
    ----------
    vectors : tuple of dict name -> tensor
        One dict per direction; each has exactly the model's parameter names and shapes. Ignored
        parameters (see ``ignore``) hold zeros, so moving along a direction leaves them fixed.
    norm : ``"filter"`` | ``"layer"`` | ``"none"`` | ``"given"``
        How the directions were scaled (``"given"``: supplied by the user, used as they are).
    ignore : tuple of str
        Parameter groups that were zeroed: ``"bias"`` (1-D parameters named ``*bias``), ``"norm"``
        (parameters of normalisation layers), ``"frozen"`` (``requires_grad=False``).
    seed : int or None
        Seed of the Gaussian draw (``None`` for given directions).
    cosine : ndarray (n, n)
        Cosine similarities between the flattened directions (near 0 off the diagonal for
        independent Gaussian directions in high dimension).
    """

    vectors: tuple[dict[str, torch.Tensor], ...]
    norm: str
    ignore: tuple[str, ...]
    seed: int | None
    cosine: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.vectors[i]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.vectors[0].keys()) if self.vectors else ()

    def flat(self) -> torch.Tensor:
        """Directions as a ``(n, P)`` tensor (parameters in ``named_parameters`` order)."""
        return torch.stack([torch.cat([v.reshape(-1) for v in d.values()]) for d in self.vectors])

    def norms(self) -> np.ndarray:
        """Euclidean norm of each direction."""
        return self.flat().double().norm(dim=1).cpu().numpy()


def _cosines(vectors: Sequence[Mapping[str, torch.Tensor]]) -> np.ndarray:
    if not vectors:
        return np.zeros((0, 0))
    flat = torch.stack([torch.cat([v.reshape(-1) for v in d.values()]) for d in vectors]).double()
    norms = flat.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    unit = flat / norms
    return (unit @ unit.T).cpu().numpy()


def random_directions(
    model: nn.Module,
    n: int = 2,
    norm: str = "filter",
    ignore: Sequence[str] = ("bias", "norm"),
    seed: int = 0,
) -> Directions:
    r"""Draw ``n`` Gaussian directions in parameter space, normalised like the parameters.

    Each direction :math:`d` has i.i.d. :math:`\mathcal N(0, 1)` entries (not uniform on [0, 1],
    a bug of loss-landscapes 3.0.6 that biases every direction towards the all-ones vector) and is
    then rescaled per parameter tensor :math:`W`:

    * ``norm="filter"`` (Li et al. 2018): each output unit / filter ``i`` (the slice ``W[i]``) gets
      :math:`d_i \leftarrow d_i \, \|W_i\| / \|d_i\|`, so the direction has the parameters' scale
      per unit and plots are comparable across scale-invariant networks. Weights stored
      transposed, (in, out), are normalised per output unit too, i.e. per column ``W[:, i]``:
      Hugging Face's ``Conv1D`` (GPT-2) and ``nn.ConvTranspose*d`` (see :func:`unit_dims`);
    * ``norm="layer"``: the same with the whole tensor, :math:`d \leftarrow d\,\|W\|/\|d\|`;
    * ``norm="none"``: the raw Gaussian draw.

    1-D tensors are treated as one filter each. Parameters in ``ignore`` get a zero direction
    (Li et al. zero biases and BatchNorm parameters): ``"bias"`` = 1-D parameters whose name ends
    in ``bias``, ``"norm"`` = parameters of normalisation layers (BatchNorm, LayerNorm, GroupNorm,
    InstanceNorm), ``"frozen"`` = parameters with ``requires_grad=False``. Pass ``ignore=()`` to
    move every parameter.

    Parameters
    ----------
    model : nn.Module
        Only read (names, shapes, dtype, device, values for the scaling).
    n : int
        Number of directions (``>= 1``).
    norm : ``"filter"`` | ``"layer"`` | ``"none"``
    ignore : tuple of ``"bias"``, ``"norm"``, ``"frozen"``
    seed : int
        Seed of a private ``torch.Generator`` (CPU, float64 draw, then cast): same seed, same
        directions on every device and dtype.

    Returns
    -------
    Directions
        Keep it to reuse the directions; ``.cosine`` reports their pairwise cosine.

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    >>> dirs = landscape.random_directions(net, n=2, seed=0)
    >>> len(dirs), dirs.cosine.shape
    (2, (2, 2))
    """
    check_module(model, "model")
    n = check_int(n, "n", minimum=1)
    check_choice(norm, "norm", ("filter", "layer", "none"))
    if isinstance(ignore, str):
        ignore = (ignore,)
    ignore = tuple(ignore)
    for item in ignore:
        check_choice(item, "ignore", _IGNORE_CHOICES)
    seed = check_int(seed, "seed", minimum=0)
    gen = torch.Generator().manual_seed(seed)
    norm_names = _norm_param_names(model) if "norm" in ignore else set()
    units = unit_dims(model) if norm == "filter" else {}
    vectors = []
    for _ in range(n):
        d = {}
        for name, p in model.named_parameters():
            # draw for every parameter so the stream does not depend on the ignore policy
            raw = torch.randn(p.shape, generator=gen, dtype=torch.float64, device=gen.device)
            skip = (
                ("bias" in ignore and p.ndim <= 1 and name.endswith("bias"))
                or name in norm_names
                or ("frozen" in ignore and not p.requires_grad)
            )
            w = p.detach().to(torch.float64).cpu() if not skip else None
            if skip:
                raw = torch.zeros_like(raw)
            elif norm == "filter":
                if p.ndim == 0:
                    raw = raw * (w.abs() / raw.abs().clamp_min(1e-300))
                elif p.ndim == 1:
                    raw = raw * (w.norm() / raw.norm().clamp_min(1e-300))
                else:  # per output unit: the slice along the unit dimension (dim 0, or 1 if transposed)
                    u = units.get(name, 0)
                    wt, rt = w.movedim(u, 0), raw.movedim(u, 0)
                    wn = wt.reshape(wt.shape[0], -1).norm(dim=1)
                    dn = rt.reshape(rt.shape[0], -1).norm(dim=1).clamp_min(1e-300)
                    raw = (rt * (wn / dn).reshape(-1, *([1] * (p.ndim - 1)))).movedim(0, u)
            elif norm == "layer":
                raw = raw * (w.norm() / raw.norm().clamp_min(1e-300))
            d[name] = raw.to(device=p.device, dtype=p.dtype)
        vectors.append(d)
    return Directions(tuple(vectors), norm, ignore, seed, _cosines(vectors))


def as_directions(model: nn.Module, directions, n: int, name: str = "directions") -> Directions:
    """Check user-supplied directions against ``model`` and return a :class:`Directions`.

    Accepts a :class:`Directions`, a sequence of dicts name -> tensor, a sequence of flat tensors
    of length P (number of parameters), or an ``(n, P)`` tensor.
    """
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    if isinstance(directions, Directions):
        vecs = list(directions.vectors)
        norm, ignore, seed = directions.norm, directions.ignore, directions.seed
    else:
        norm, ignore, seed = "given", (), None
        if isinstance(directions, torch.Tensor):
            if directions.ndim == 1:
                directions = [directions]
            elif directions.ndim == 2:
                directions = list(directions)
            else:
                raise ValueError(
                    f"`{name}` as a tensor must have shape (n, {total}), got {tuple(directions.shape)}"
                )
        if isinstance(directions, Mapping):
            directions = [directions]
        if not isinstance(directions, Sequence):
            raise TypeError(
                f"`{name}` must be a Directions object, a sequence of dicts name -> tensor or of flat "
                f"tensors, got {type(directions).__name__}"
            )
        vecs = []
        for k, d in enumerate(directions):
            if isinstance(d, torch.Tensor):
                if d.ndim != 1 or d.numel() != total:
                    raise ValueError(
                        f"`{name}[{k}]` must be a flat tensor with {total} entries (one per model "
                        f"parameter), got shape {tuple(d.shape)}"
                    )
                out, i = {}, 0
                for pname, p in params.items():
                    out[pname] = d[i : i + p.numel()].reshape(p.shape)
                    i += p.numel()
                d = out
            if not isinstance(d, Mapping):
                raise TypeError(f"`{name}[{k}]` must be a dict name -> tensor or a flat tensor")
            vecs.append(dict(d))
    if len(vecs) != n:
        raise ValueError(f"`{name}` must hold {n} direction(s), got {len(vecs)}")
    checked = []
    for k, d in enumerate(vecs):
        if set(d) != set(params):
            missing = sorted(set(params) - set(d))[:3]
            extra = sorted(set(d) - set(params))[:3]
            raise ValueError(
                f"`{name}[{k}]` does not match the model's parameters (missing {missing}, unexpected {extra})"
            )
        out = {}
        for pname, p in params.items():
            t = d[pname]
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"`{name}[{k}][{pname!r}]` must be a tensor, got {type(t).__name__}")
            if tuple(t.shape) != tuple(p.shape):
                raise ValueError(
                    f"`{name}[{k}][{pname!r}]` has shape {tuple(t.shape)} but the parameter has shape "
                    f"{tuple(p.shape)}"
                )
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"`{name}[{k}][{pname!r}]` contains non-finite values")
            out[pname] = t.detach().to(device=p.device, dtype=p.dtype)
        checked.append(out)
    return Directions(tuple(checked), norm, ignore, seed, _cosines(checked))
