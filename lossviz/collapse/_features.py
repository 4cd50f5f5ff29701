"""Features of any layer of any model through a temporary forward hook (the model is unchanged).

:func:`features` streams data (a batch, a list or a ``DataLoader`` of batches, Hugging Face dict
batches) through the model and returns the features of one layer with the labels, ready for
:func:`~lossviz.collapse.nc_metrics`. :func:`feature_extractor` is the same as a function of the
inputs. Sequence features ``(B, T, d)`` and convolution maps ``(B, C, H, W)`` are never flattened
silently: ``pool`` says how they become one row per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from .._model import call_model, cast, collate, eval_mode, map_inputs, model_dtype_device, slice_inputs
from .._validate import check_choice, check_int, check_module

__all__ = ["feature_extractor", "features", "resolve_layer", "default_layer", "POOLS"]

POOLS = ("mean", "last", "flatten", "none")


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The submodule ``layer`` (a name or the module itself), or a ``ValueError`` listing every name."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("`layer` is not a submodule of `model`")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a submodule name or an nn.Module, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n]
        raise ValueError(
            f"`layer`={layer!r} is not a submodule of the model; its {len(names)} submodules are: "
            + ", ".join(names)
        )
    return modules[layer]


def default_layer(model: nn.Module) -> str:
    """The name of the model's last ``nn.Linear`` (its classifier / ``lm_head``), in module order.

    Its *input* is the penultimate features. ``ValueError`` if the model has no ``nn.Linear``.
    """
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and name:
            last = name
    if last is None:
        raise ValueError(
            "`layer`: the model has no nn.Linear classifier to take the penultimate features from; "
            "name the layer, e.g. layer='head' (see model.named_modules())"
        )
    return last


def _pool(t: torch.Tensor, pool: str | None, mask: torch.Tensor | None, layer) -> torch.Tensor:
    """One row per sample from a layer's tensor (see :func:`features` for the conventions)."""
    if t.ndim <= 2:
        return t if t.ndim == 2 else t.reshape(t.shape[0], -1)
    if pool is None:
        kind = "(batch, tokens, features)" if t.ndim == 3 else "(batch, channels, *spatial)"
        raise ValueError(
            f"`pool`: layer {layer!r} gives features of shape {tuple(t.shape)} {kind}; say how they become "
            f"one row per sample: pool='mean', 'last' (3-D only), 'flatten' or 'none'"
        )
    if pool == "none":
        return t
    if pool == "flatten":
        return t.flatten(1)
    if t.ndim == 3:  # (B, T, d): positions along dim 1
        if mask is not None and mask.shape == t.shape[:2]:
            m = mask.to(t.dtype)
            if pool == "mean":
                return (t * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
            last = (mask.long().cumsum(1).argmax(1)).clamp_min(0)  # last non-padded position
            return t[torch.arange(t.shape[0], device=t.device), last]
        return t.mean(1) if pool == "mean" else t[:, -1]
    if pool == "last":
        raise ValueError(
            f"`pool`='last' needs (batch, tokens, features) features, got shape {tuple(t.shape)}"
        )
    return t.mean(dim=tuple(range(2, t.ndim)))  # (B, C, *spatial): global average pooling


def _run(model, module, layer, capture, pool, chunks, mask_key):
    """Forward each chunk of inputs with a hook on ``module``; the pooled features, concatenated."""
    store: list[torch.Tensor] = []
    current: dict = {}

    def hook(mod, inputs, output):
        t = inputs[0] if capture == "input" else output
        if not isinstance(t, torch.Tensor):
            t = t[0] if isinstance(t, (tuple, list)) else getattr(t, "last_hidden_state", t)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"layer {layer!r} {capture} is {type(t).__name__}, not a tensor")
        store.append(_pool(t.detach(), pool, current.get("mask"), layer).clone())

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.no_grad():
            for xb, name in chunks:
                current["mask"] = xb.get(mask_key) if isinstance(xb, Mapping) else None
                call_model(model, xb, None, None, name)
    finally:
        handle.remove()
    if not store:
        raise RuntimeError(f"layer {layer!r} was not called in the forward pass")
    return torch.cat(store)


def _checked_layer(model, layer, capture, pool):
    """The arguments ``features`` and ``feature_extractor`` share, checked: ``(layer, module)``."""
    check_module(model, "model", need_params=False)
    check_choice(capture, "capture", ("input", "output"))
    if pool is not None:
        check_choice(pool, "pool", POOLS)
    layer = default_layer(model) if layer is None else layer
    return layer, resolve_layer(model, layer)


def features(
    model: nn.Module,
    data,
    layer: str | nn.Module | None = None,
    *,
    capture: str = "input",
    pool: str | None = None,
    mask_key: str = "attention_mask",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features of ``layer`` for all of ``data`` and the targets: ``(features (N, d), labels (N,))``.

    The data are streamed: each batch is moved to the model's device (floating inputs cast to its
    dtype, token ids as they are), forwarded in eval mode under ``no_grad`` with a temporary
    forward hook on ``layer``, and only the pooled features are kept. The model is unchanged
    (parameters, grads, buffers, modes; the hook is removed in ``finally``).

    Parameters
    ----------
    model : nn.Module
    data : a batch ``(inputs, targets)`` / Hugging Face dict, a list or ``DataLoader`` of batches, or :func:`lossviz.data.collate` of them
    layer : str, nn.Module or None
        The submodule to read (a wrong name lists every submodule name). Default ``None``: the
        model's last ``nn.Linear`` (:func:`default_layer`; ``fc`` of a ResNet, ``lm_head`` of GPT-2),
        whose input is the penultimate features.
    capture : ``"input"`` (default) | ``"output"``
        Read the layer's input (penultimate features when ``layer`` is the classifier) or output.
    pool : None | ``"mean"`` | ``"last"`` | ``"flatten"`` | ``"none"``
        How a feature tensor with more than two dimensions becomes one row per sample. 3-D
        ``(B, T, d)`` (tokens): ``"mean"`` over positions, ``"last"`` position (both respect
        ``inputs[mask_key]`` when the batch is a dict with an attention mask: padded positions are
        left out); 4-D+ ``(B, C, *spatial)``: ``"mean"`` = global average pooling. ``"flatten"``
        gives ``(B, T*d)``; ``"none"`` keeps the shape. Default ``None``: 2-D features are
        returned as they are, and anything else raises a ``ValueError`` asking for ``pool``.
    mask_key : str
        Key of the attention mask in dict inputs (default ``"attention_mask"``).

    Returns
    -------
    (features, labels) : features on the model's device; labels the concatenated targets (None if
    the batches have none).

    Examples
    --------
    >>> import torch
    >>> from lossviz import collapse
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(10, 4), torch.arange(10) % 3
    >>> h, labels = collapse.features(net, [(x[:6], y[:6]), (x[6:], y[6:])])
    >>> tuple(h.shape), bool((labels == y).all())
    ((10, 8), True)
    """
    layer, module = _checked_layer(model, layer, capture, pool)
    batches = collate(data, "data").on(model)
    labels: list = []

    def chunks():
        for xb, yb, _ in batches.stream(weights=False):
            labels.append(yb)
            yield xb, "data"

    feats = _run(model, module, layer, capture, pool, chunks(), mask_key)
    ys = None if any(y is None for y in labels) else torch.cat(labels)
    return feats, ys


def feature_extractor(
    model: nn.Module,
    layer: str | nn.Module | None = None,
    *,
    capture: str = "input",
    batch_size: int | None = None,
    pool: str | None = None,
    mask_key: str = "attention_mask",
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``extract(x) -> features`` that reads a layer's input or output with a hook.

    The forward hook is registered only while ``extract`` runs and removed in ``finally``; the
    model runs in eval mode under ``torch.no_grad()`` and every submodule's ``.training`` flag is
    restored afterwards, so the model is unchanged (parameters, grads, buffers, modes). ``x`` is
    a tensor, a tuple of positional inputs or a dict of keyword inputs (cast to the model's dtype
    and device chunk by chunk; token ids are not cast); a wrong input shape is a ``ValueError``
    naming ``x``. For data with labels or a ``DataLoader`` use :func:`features`.

    Parameters
    ----------
    model : the network.
    layer : submodule name (``"head"``), the submodule itself, or None (default: the last
        ``nn.Linear``, see :func:`default_layer`).
    capture : ``"input"`` (default: the input of ``layer``, e.g. the penultimate features when
        ``layer`` is the classifier) or ``"output"``.
    batch_size : optional chunking of ``x``.
    pool, mask_key : as in :func:`features` (2-D features need no ``pool``; more dimensions do).

    Example
    -------
    >>> from lossviz.testing import BNDropoutNet
    >>> net = BNDropoutNet()
    >>> feats = feature_extractor(net, "head")(torch.zeros(5, 4))
    >>> tuple(feats.shape)
    (5, 8)
    """
    layer, module = _checked_layer(model, layer, capture, pool)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)

    def extract(x) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            from .._validate import check_tensor

            x = check_tensor(x, "x")
        dtype, device = model_dtype_device(model)
        n = _size(x)
        step = n if batch_size is None else batch_size

        def chunks():
            for s in range(0, n, step):
                yield map_inputs(slice_inputs(x, s, s + step), lambda t: cast(t, dtype, device)), "x"

        return _run(model, module, layer, capture, pool, chunks(), mask_key)

    return extract


def _size(x) -> int:
    from .._model import input_size

    try:
        return input_size(x)
    except (ValueError, TypeError):
        raise TypeError(
            f"`x` must be a tensor, a tuple of tensors or a dict of tensors, got {type(x).__name__}"
        ) from None
