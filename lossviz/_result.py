"""Base class for the frozen result objects every compute function returns."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


def _short(v) -> str:
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return f"<{type(v).__name__} shape={tuple(v.shape)} dtype={v.dtype}>"
    if isinstance(v, dict) and len(v) > 6:
        return f"<dict with {len(v)} entries>"
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


class Result:
    """Mixin for ``@dataclasses.dataclass(frozen=True)`` results: compact repr, ``as_dict``.

    Results hold arrays, the settings that produced them and diagnostics. Drawing is separate
    (functions taking the result); subclasses may offer ``.plot(**kw)`` as a shortcut.
    """

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={_short(getattr(self, f.name))}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
