"""Features of any layer of a model through a temporary forward hook (the model is unchanged)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._model import eval_mode
from .._validate import check_choice, check_int, check_module, check_tensor

__all__ = ["feature_extractor", "resolve_layer"]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("`layer` is not a submodule of `model`")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a submodule name or an nn.Module, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n]
        raise ValueError(f"`layer`={layer!r} is not a submodule of the model; available: {names[:20]}")
    return modules[layer]


def feature_extractor(
    model: nn.Module, layer: str | nn.Module, *, capture: str = "input", batch_size: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``extract(x) -> features`` that reads a layer's input or output with a hook.

    The forward hook is registered only while ``extract`` runs and removed in ``finally``; the
    model runs in eval mode under ``torch.no_grad()`` and every submodule's ``.training`` flag is
    restored afterwards, so the model is unchanged (parameters, grads, buffers, modes).

    Parameters
    ----------
    model : the network.
    layer : submodule name (``"head"``) or the submodule itself.
    capture : ``"input"`` (default: the input of ``layer``, e.g. the penultimate features when
        ``layer`` is the classifier) or ``"output"``.
    batch_size : optional chunking of ``x``.

    Example
    -------
    >>> from lossviz.testing import BNDropoutNet
    >>> net = BNDropoutNet()
    >>> feats = feature_extractor(net, "head")(torch.zeros(5, 4))
    >>> tuple(feats.shape)
    (5, 8)
    """
    check_module(model, "model", need_params=False)
    check_choice(capture, "capture", ("input", "output"))
    module = resolve_layer(model, layer)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)

    def extract(x: torch.Tensor) -> torch.Tensor:
        x = check_tensor(x, "x")
        store: list[torch.Tensor] = []

        def hook(mod, inputs, output):
            t = inputs[0] if capture == "input" else output
            store.append(t.detach().clone())

        handle = module.register_forward_hook(hook)
        try:
            with eval_mode(model), torch.no_grad():
                chunks = [x] if batch_size is None else list(torch.split(x, batch_size))
                for xb in chunks:
                    model(xb)
        finally:
            handle.remove()
        if not store:
            raise RuntimeError(f"layer {layer!r} was not called in the forward pass")
        return torch.cat(store).flatten(1)

    return extract
