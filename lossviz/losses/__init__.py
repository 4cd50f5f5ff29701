"""Loss families with a temperature (track T): classification losses, contrastive losses, mixup.

Every classification loss takes logits of shape ``(n, K)`` and integer targets ``(n,)`` (soft
targets ``(n, K)`` where the paper uses them), supports ``reduction="mean" | "sum" | "none"``,
evaluates half-precision inputs in float32 (cast back, as autocast does) and stays finite with
logits up to 1e4 in magnitude in float16, bfloat16, float32 and float64.

Modules: :mod:`.stablemax` (StableMax, Softmax Collapse), :mod:`.mixup`.
"""

from __future__ import annotations

from .mixup import Mixup, mixup, soft_cross_entropy
from .stablemax import SoftmaxCollapse, log_stablemax, softmax_collapse, stablemax, stablemax_cross_entropy

__all__ = [
    "Mixup",
    "mixup",
    "soft_cross_entropy",
    "SoftmaxCollapse",
    "log_stablemax",
    "softmax_collapse",
    "stablemax",
    "stablemax_cross_entropy",
]
