r"""The empirical (finite-width) neural tangent kernel of any ``nn.Module``.

.. math::

    \Theta_{ab}(x, x') = \sum_p \frac{\partial f_a(x)}{\partial \theta_p}
                               \frac{\partial f_b(x')}{\partial \theta_p}

over the trainable parameters, by two paths tested against each other: a generic ``torch.func``
Jacobian contraction (``vmap(jacrev)`` over chunks of inputs) and a structured path for stacks of
``nn.Linear`` / :class:`~lossviz.ntk.ScaledLinear` layers that never forms per-sample Jacobians,
``K = sum_l (m_w^2 A_l A_l'^T + m_b^2) * (G_l G_l'^T)`` with ``A_l`` the layer inputs and ``G_l`` the
output gradients with respect to its pre-activations (the layer-wise factorisation used by
neural-tangents' ``empirical_ntk_fn(implementation=STRUCTURED_DERIVATIVES)``; Novak et al., "Fast
Finite Width Neural Tangent Kernel", ICML 2022, arXiv:2206.08720).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._model import (
    buffers_of,
    call_model,
    cast,
    cat_inputs,
    collate,
    double_backward_hint,
    eval_mode,
    input_size,
    logits_of,
    map_inputs,
    model_dtype_device,
    parameters_of,
    slice_inputs,
    train_mode_batchnorm,
)
from .._result import Result
from .._validate import (
    check_autograd,
    check_choice,
    check_finite_parameters,
    check_int,
    check_module,
    check_tensor,
)
from ._parametrization import ScaledLinear

__all__ = ["EmpiricalNTK", "empirical", "OUTPUTS", "METHODS"]

OUTPUTS = ("full", "trace_sum", "trace_mean", "diagonal")
METHODS = ("auto", "structured", "jacobian")


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

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Heatmap of the kernel (:func:`lossviz.ntk.plotting.plot_kernel`)."""
        from .plotting import plot_kernel

        return plot_kernel(self, backend=backend, ax=ax, **kw)


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


def _structured_parts(model, params, buffers, x, trainable_only, fwd):
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
            out = fwd({**params, **buffers}, x)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise _Fallback(f"the model returns {type(out).__name__}, not a tensor")
    n = input_size(x)
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
    """Contract gradient blocks (o, n1, k), (o, n2, k) into the requested output layout.

    Accumulated in float64 (the sums run over many features; see :func:`_contract_jj`).
    """
    g1, g2 = g1.to(torch.float64), g2.to(torch.float64)
    o = g1.shape[0]
    if output in ("trace_sum", "trace_mean"):
        return g1.permute(1, 0, 2).reshape(g1.shape[1], -1) @ g2.permute(1, 0, 2).reshape(g2.shape[1], -1).T
    if output == "diagonal":
        return torch.einsum("aik,ajk->ija", g1, g2)
    del o
    return torch.einsum("aik,bjk->ijab", g1, g2)


def _structured(model, params, buffers, x1, x2, output, trainable_only, fwd):
    n1 = input_size(x1)
    x = x1 if x2 is None else cat_inputs([x1, x2])
    parts, o = _structured_parts(model, params, buffers, x, trainable_only, fwd)
    kernel = None
    for a, g, cw, cb in parts:
        a1, a2 = (a, a) if x2 is None else (a[:n1], a[n1:])
        g1, g2 = (g, g) if x2 is None else (g[:, :n1], g[:, n1:])
        a1, a2 = a1.to(torch.float64), a2.to(torch.float64)
        s = a1 @ a2.T if cw != 0.0 else torch.zeros(a1.shape[0], a2.shape[0], dtype=a1.dtype, device=a.device)
        if cw != 1.0:
            s = s * cw
        if cb != 0.0:
            s = s + cb
        gg = _contract_gg(g1, g2, output)
        term = gg * s.reshape(s.shape + (1,) * (gg.ndim - 2))
        kernel = term if kernel is None else kernel + term
    if kernel is None:
        n2 = n1 if x2 is None else input_size(x2)
        shape = {"full": (n1, n2, o, o), "diagonal": (n1, n2, o)}.get(output, (n1, n2))
        ref = next(iter(params.values()))
        kernel = torch.zeros(shape, dtype=ref.dtype, device=ref.device)
    return kernel, o


def _jacobian(model, params, frozen, buffers, x, mode, chunk, fwd, place, info):
    """Per-sample Jacobians (n, o, P) of the model output w.r.t. ``params`` (flattened).

    ``x`` stays where it is; each chunk of ``chunk`` samples is moved to the model (``place``)
    on its own. Integer inputs (token ids) are inputs only: derivatives are w.r.t. ``params``.
    A model ``vmap`` cannot batch (data-dependent control flow, e.g. attention-mask checks)
    falls back to one ``jacrev`` per sample (``info["per_sample_loop"] = True``).
    """
    names = list(params)

    def flat(jac, lead):
        return torch.cat([jac[k].reshape(*lead, -1) for k in names], dim=-1)

    if mode == "train":
        # batch-coupled (train-mode BatchNorm): Jacobian of the whole batch output at once
        def f_batch(p, b):  # buffers are an input: train-mode BatchNorm updates (cloned) stats
            out = fwd({**p, **frozen, **b}, xb)
            return out.reshape(n_all, -1)

        xb, n_all = place(x), input_size(x)

        bufs = {k: v.clone() for k, v in buffers.items()}
        jac = torch.func.jacrev(f_batch, argnums=0)(params, bufs)
        n, o = next(iter(jac.values())).shape[:2]
        return flat(jac, (n, o)), o

    def f_single(p, xi):
        out = fwd({**p, **frozen, **buffers}, map_inputs(xi, lambda t: t.unsqueeze(0)))
        return out.reshape(-1)

    jac1 = torch.func.jacrev(f_single)
    jfn = torch.func.vmap(jac1, in_dims=(None, 0))
    blocks = []
    for s in range(0, input_size(x), chunk):
        xs = place(slice_inputs(x, s, s + chunk))
        jac = None
        if not info.get("per_sample_loop"):
            try:
                jac = jfn(params, xs)
            except RuntimeError as exc:
                if "vmap" not in str(exc) or double_backward_hint(exc) is not None:
                    raise
                info["per_sample_loop"] = True
        if jac is None:
            rows = [jac1(params, map_inputs(xs, lambda t, i=i: t[i])) for i in range(input_size(xs))]
            jac = {k: torch.stack([r[k] for r in rows]) for k in names}
        c, o = next(iter(jac.values())).shape[:2]
        blocks.append(flat(jac, (c, o)))
    j = torch.cat(blocks) if len(blocks) > 1 else blocks[0]
    return j, j.shape[1]


def _contract_jj(j1, j2, output):
    """Contract Jacobian blocks (n1, o, P), (n2, o, P) over the parameters, accumulated in float64.

    A float32 sum over ``P`` ~ 1e5-1e7 parameter products loses about three digits and the
    result changed with ``chunk_size`` (the blocking of the matmul); in float64 the kernel is
    accurate to the float32 Jacobian entries and the same for every ``chunk_size``. The cast
    copies one pair of blocks at a time (twice their float32 size while contracting).
    """
    j1, j2 = j1.to(torch.float64), j2.to(torch.float64)
    if output in ("trace_sum", "trace_mean"):
        return j1.reshape(j1.shape[0], -1) @ j2.reshape(j2.shape[0], -1).T
    if output == "diagonal":
        return torch.einsum("iap,jap->ija", j1, j2)
    return torch.einsum("iap,jbp->ijab", j1, j2)


def _jacobian_path(
    model, params, frozen, buffers, x1, x2, output, mode, chunk, cache_bytes, fwd, place, info
):
    def jacobian(x):
        return _jacobian(model, params, frozen, buffers, x, mode, chunk, fwd, place, info)

    if mode == "train":
        if x2 is not None:
            raise ValueError(
                "`x2` cannot be given with mode='train': in train mode (BatchNorm batch statistics) "
                "the kernel is defined only within one batch"
            )
        j, o = jacobian(x1)
        return _contract_jj(j, j, output), o
    n1 = input_size(x1)
    sym = x2 is None
    xc = x1 if sym else x2
    n2 = input_size(xc)
    starts1 = list(range(0, n1, chunk))
    starts2 = list(range(0, n2, chunk))
    # columns: keep all Jacobian blocks if they fit in ``cache_bytes``, else recompute per row block
    j_first, o = jacobian(slice_inputs(xc, 0, chunk))
    per_sample = j_first[0].numel() * j_first.element_size()
    keep = n2 * per_sample <= cache_bytes
    cols = {0: j_first} if keep or len(starts2) == 1 else {}

    def col(s):
        if s in cols:
            return cols[s]
        j, _ = jacobian(slice_inputs(xc, s, s + chunk))
        if keep:
            cols[s] = j
        return j

    kernel = None
    for a in starts1:
        ja = col(a) if sym else jacobian(slice_inputs(x1, a, a + chunk))[0]
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


def _train_mode_dropout(model: nn.Module) -> list[str]:
    """Names of Dropout layers that would be random in train mode (``p > 0``)."""
    return [
        name or type(m).__name__
        for name, m in model.named_modules()
        if isinstance(m, (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout))
        and float(getattr(m, "p", 0.0)) > 0.0
    ]


def _as_inputs(x, name: str):
    """``x`` as model inputs: a tensor, a tuple of positional tensors, a dict of keyword tensors, or
    data (a batch / iterable / DataLoader, :func:`lossviz.data.collate`) whose inputs are gathered
    (on the host; chunks are moved to the model's device one at a time)."""
    if isinstance(x, torch.Tensor) or (hasattr(x, "__array__") and not isinstance(x, (tuple, list, Mapping))):
        x = check_tensor(x, name)
        if x.is_floating_point() and x.ndim < 2:
            raise ValueError(f"`{name}` must have a batch dimension and features, got shape {tuple(x.shape)}")
        if x.ndim < 1:
            raise ValueError(f"`{name}` must have a batch dimension, got shape {tuple(x.shape)}")
        return x
    if isinstance(x, Mapping) and all(isinstance(v, torch.Tensor) for v in x.values()) and "labels" not in x:
        for k, v in x.items():
            check_tensor(v, f"{name}[{k!r}]")
        return dict(x)
    if isinstance(x, (tuple, list)) and x and all(isinstance(v, torch.Tensor) for v in x) and len(x) == 1:
        return check_tensor(x[0], name)
    try:
        batches = collate(x, name)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"`{name}` must be a tensor of inputs, a dict of keyword inputs (model(**x)) or data "
            f"(batches (inputs, targets) / a DataLoader; the targets are ignored): {exc}"
        ) from None
    return cat_inputs([b[0] for b in batches.batches])


def _check_inputs(x1, x2, dtype, device):
    x1 = _as_inputs(x1, "x1")
    if x2 is not None:
        x2 = _as_inputs(x2, "x2")
        if isinstance(x1, torch.Tensor) != isinstance(x2, torch.Tensor) or type(x1) is not type(x2):
            raise TypeError(
                f"`x1` and `x2` must be inputs of the same form, got {type(x1).__name__} and {type(x2).__name__}"
            )
        if isinstance(x1, torch.Tensor) and x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"`x1` and `x2` must have the same feature shape, got {tuple(x1.shape[1:])} and "
                f"{tuple(x2.shape[1:])}"
            )
    return x1, x2


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
    output_fn: Callable[[Any], torch.Tensor] | None = None,
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
    x1 : inputs of ``n1`` samples; x2 : inputs of ``n2`` samples, optional (default: ``x1``, symmetric)
        A tensor ``(n, ...)``, a dict of keyword inputs (``model(**x)``, e.g. ``input_ids`` and
        ``attention_mask``), or data (a batch ``(inputs, targets)``, a list or ``DataLoader`` of
        batches; targets ignored). Floating inputs are cast to the model's dtype; integer
        inputs (token ids) are never cast and never differentiated: the kernel is over the
        parameters only. Each chunk is moved to the model's device on its own.
    output : ``"trace_sum"`` (default) | ``"trace_mean"`` | ``"diagonal"`` | ``"full"``
    method : ``"auto"`` | ``"structured"`` | ``"jacobian"``
    trainable_only : bool
        Kernel over parameters with ``requires_grad=True`` (default) or over all parameters.
    mode : ``"eval"`` | ``"train"``
        ``"train"`` evaluates in train mode; with BatchNorm the whole-batch Jacobian is used
        (samples are coupled) and ``x2`` must be None. A model with Dropout (``p > 0``) is
        refused in train mode with a ``ValueError``: its kernel would be a random draw.
    chunk_size : int, optional
        Samples per Jacobian block in the jacobian path.
    max_block_bytes : int
        Memory of one Jacobian block when ``chunk_size`` is None (default 256 MiB).
    output_fn : callable(model output) -> tensor, optional
        The outputs the kernel is of (default :func:`lossviz._model.logits_of`: a tensor, a
        tuple's first element, a dict's / ``ModelOutput``'s ``logits``). Every output entry per
        sample counts (``(1, T, V)`` logits give ``o = T V``); e.g.
        ``output_fn=lambda out: out.logits[:, -1]`` for the last token's logits.

    A model whose attention kernel has no batching rule / double backward (Hugging Face's
    default SDPA on CPU) raises a ``RuntimeError`` saying to use ``attn_implementation="eager"``;
    a model ``vmap`` cannot batch (data-dependent control flow) is handled one sample at a time
    (``diagnostics["per_sample_loop"]``).

    Returns
    -------
    EmpiricalNTK

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))
    >>> x = torch.randn(5, 3)
    >>> k = empirical(net, x, output="full")
    >>> k.kernel.shape, k.method
    (torch.Size([5, 5, 2, 2]), 'structured')
    """
    check_module(model, "model")
    check_autograd("ntk.empirical")
    check_finite_parameters(model, "model")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    check_choice(output, "output", OUTPUTS)
    check_choice(method, "method", METHODS)
    check_choice(mode, "mode", ("eval", "train"))
    if mode == "train":
        drop = _train_mode_dropout(model)
        if drop:
            raise ValueError(
                f"`mode='train'` with Dropout ({', '.join(map(repr, drop[:3]))}) gives a random kernel "
                "(each call drops different units): use mode='eval' (the default), or set p=0"
            )
    dtype, device = model_dtype_device(model)
    x1, x2 = _check_inputs(x1, x2, dtype, device)
    if output_fn is None:
        output_fn = logits_of
    if not callable(output_fn):
        raise TypeError(f"`output_fn` must be callable(output) -> tensor, got {type(output_fn).__name__}")

    def place(x):  # one chunk onto the model: floating inputs in its dtype, token ids as they are
        return map_inputs(x, lambda t: cast(t, dtype, device))

    def fwd(state, x):
        return call_model(model, x, state, output_fn, "x1")

    info: dict = {}
    max_block_bytes = check_int(max_block_bytes, "max_block_bytes", minimum=1)
    all_params = parameters_of(model)
    req = {k: p.requires_grad for k, p in model.named_parameters()}
    params = {k: v for k, v in all_params.items() if req[k] or not trainable_only}
    if not params:
        raise ValueError("`model` has no trainable parameters (all have requires_grad=False)")
    frozen = {k: v for k, v in all_params.items() if k not in params}
    num_params = sum(p.numel() for p in params.values())
    buffers = buffers_of(model)
    try:
        with eval_mode(model, mode == "train"), torch.enable_grad():  # works inside torch.no_grad() too
            # the kernel by the structured path when it applies, else by Jacobian blocks
            reason = None
            kernel = None
            used = method
            chunk = None
            o = 0
            if method in ("auto", "structured"):
                reason = _structured_reason(model, mode, trainable_only)
                if reason is None:
                    try:
                        kernel, o = _structured(
                            model,
                            all_params,
                            buffers,
                            place(x1),
                            None if x2 is None else place(x2),
                            output,
                            trainable_only,
                            fwd,
                        )
                        used = "structured"
                    except _Fallback as exc:
                        reason = str(exc)
                if reason is not None and method == "structured":
                    raise ValueError(f"method='structured' does not apply to this model: {reason}")
            if kernel is None:
                used = "jacobian"
                if chunk_size is None and mode == "train":
                    chunk = input_size(x1)  # whole-batch Jacobian: samples are coupled
                elif chunk_size is None:
                    with torch.no_grad():  # the first forward: a wrong input shape is named here
                        probe = fwd({**all_params, **buffers}, place(slice_inputs(x1, 0, 1)))
                    o_probe = int(probe.numel())
                    itemsize = torch.empty((), dtype=dtype, device="meta").element_size()
                    per_sample = max(1, o_probe * num_params * itemsize)
                    chunk = max(1, min(input_size(x1), max_block_bytes // per_sample))
                else:
                    chunk = check_int(chunk_size, "chunk_size", minimum=1)
                kernel, o = _jacobian_path(
                    model,
                    params,
                    frozen,
                    buffers,
                    x1,
                    x2,
                    output,
                    mode,
                    chunk,
                    2 * max_block_bytes,
                    fwd,
                    place,
                    info,
                )
    except RuntimeError as exc:
        hint = double_backward_hint(exc)
        if hint is None:
            raise
        raise RuntimeError(hint) from exc
    if output == "trace_mean":
        kernel = kernel / o
    kernel = kernel.detach().to(dtype)  # accumulated in float64, returned in the model's dtype
    diagnostics = {
        "requested_method": method,
        "fallback_reason": reason if used == "jacobian" and method == "auto" else None,
        "chunk_size": chunk,
        "symmetric": x2 is None,
        "mode": mode,
        "per_sample_loop": bool(info.get("per_sample_loop", False)),
    }
    return EmpiricalNTK(kernel, output, used, int(o), int(num_params), diagnostics)
