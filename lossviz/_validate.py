"""Argument validation shared by every public lossviz function.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, bad
value) with a message that names the argument and says what was expected and what was received,
so a user never gets a silent NaN or a wrong plot from bad input.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    r = repr(value)
    return r if len(r) < 60 else r[:57] + "..."


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
            value = int(value)
        else:
            raise TypeError(f"`{name}` must be an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` after range checks.

    ``positive=True`` requires ``value > 0``; ``minimum``/``maximum`` are inclusive bounds.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"`{name}` must be a real number, got {_describe(value)}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"`{name}` must be a scalar, got {_describe(value)}")
        value = value.item()
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"`{name}` must be finite, got {value}")
    if positive and not value > 0:
        raise ValueError(f"`{name}` must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}")
    return value


def check_betas(betas: Any, name: str = "betas") -> tuple[float, float]:
    """Return an optimiser's ``(beta1, beta2)`` as floats, each in ``[0, 1)``."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"`{name}` must be a pair (beta1, beta2), got {betas!r}")
    return (
        check_float(betas[0], f"{name}[0]", minimum=0.0, maximum=1.0 - 1e-15),
        check_float(betas[1], f"{name}[1]", minimum=0.0, maximum=1.0 - 1e-15),
    )


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {opts}; got {value!r}")
    return value


def check_tensor(
    value: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    floating: bool | None = None,
    finite: bool = True,
    nonempty: bool = True,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with the expected rank, kind and finite entries.

    Numpy arrays are accepted and converted (keeping their dtype).
    """
    if not isinstance(value, torch.Tensor):
        try:
            import numpy as np

            if isinstance(value, np.ndarray):
                value = torch.from_numpy(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"`{name}` must be a torch.Tensor, got {_describe(value)}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"`{name}` must have {want} dimensions, got shape {tuple(value.shape)}")
    if nonempty and value.numel() == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(value.shape)}")
    if floating is True and not (value.is_floating_point() or value.is_complex()):
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {value.dtype}")
    if floating is False and (value.is_floating_point() or value.is_complex()):
        raise TypeError(f"`{name}` must be an integer tensor, got dtype {value.dtype}")
    if finite and (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"`{name}` contains {bad} non-finite value(s) (NaN or inf)")
    return value


def check_labels(
    labels: Any, name: str, n: int | None = None, num_classes: int | None = None
) -> torch.Tensor:
    """Check integer class labels of shape ``(n,)`` with values in ``[0, num_classes)``.

    Any integer dtype is accepted and returned as int64 (``uint8`` labels are never read as a
    boolean mask); ``bool`` tensors are refused.
    """
    labels = check_tensor(labels, name, ndim=1, floating=False)
    if labels.dtype == torch.bool:
        raise TypeError(f"`{name}` must be integer class labels, got dtype torch.bool")
    if labels.dtype != torch.long:
        labels = labels.long()
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"`{name}` has {labels.shape[0]} entries but the data has {n} samples")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"`{name}` must be non-negative class indices, found {int(labels.min())}")
    if num_classes is not None and labels.numel() and int(labels.max()) >= num_classes:
        raise ValueError(f"`{name}` must be < num_classes={num_classes}, found label {int(labels.max())}")
    return labels


def check_module(model: Any, name: str = "model", *, need_params: bool = True) -> torch.nn.Module:
    """Check ``model`` is an ``nn.Module`` (with at least one parameter by default)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`{name}` must be a torch.nn.Module, got {_describe(model)}")
    if need_params and next(model.parameters(), None) is None:
        raise ValueError(f"`{name}` has no parameters")
    return model


def check_dtype(dtype: Any, name: str = "dtype") -> torch.dtype | None:
    """Accept ``None``, a ``torch.dtype`` or its name (``"float64"``)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise TypeError(f"`{name}` must be a torch.dtype or its name, got {_describe(dtype)}")


def check_autograd(what: str) -> None:
    """Refuse to differentiate under ``torch.inference_mode`` (autograd cannot record there).

    Raises ``RuntimeError`` saying to call ``what`` outside the ``inference_mode`` block (plain
    ``torch.no_grad`` is fine: lossviz re-enables gradients where it needs them).
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            f"{what} differentiates the model and cannot run under torch.inference_mode() (tensors "
            "made there cannot be recorded by autograd): call it outside the `with "
            "torch.inference_mode():` block (torch.no_grad() around the call is fine)"
        )


def check_finite_parameters(model: torch.nn.Module, name: str = "model") -> None:
    """``ValueError`` naming the first parameter of ``model`` holding NaN or inf (one sync in all)."""
    named = [(k, p) for k, p in model.named_parameters() if p.is_floating_point() or p.is_complex()]
    if not named:
        return
    with torch.no_grad():
        ok = torch.stack([torch.isfinite(p).all().to(named[0][1].device) for _, p in named])
    if bool(ok.all()):
        return
    bad = [(k, p) for (k, p), good in zip(named, ok.tolist()) if not good]
    k, p = bad[0]
    more = f" (and {len(bad) - 1} more parameter(s))" if len(bad) > 1 else ""
    raise ValueError(
        f"`{name}` has non-finite parameters: {k!r} contains {int((~torch.isfinite(p)).sum())} "
        f"NaN/inf value(s){more}; losses, curvature and kernels of such a model are undefined"
    )
