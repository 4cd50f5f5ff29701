"""Deprecated: the T-track set-ups moved to :mod:`lossviz.papers` (the old names go in 0.3).

``latent_classes``, ``ContrastiveRun``, ``train_contrastive`` ->
:mod:`lossviz.papers.t01_contrastive_temperature`; ``NoisyDigits``, ``noisy_digits``,
``ClassifierRun``, ``train_classifier`` -> :mod:`lossviz.papers.t03_ldr_losses`.
"""

from __future__ import annotations

from .._deprecate import moved

__all__: list[str] = []

_T01 = "lossviz.papers.t01_contrastive_temperature"
_T03 = "lossviz.papers.t03_ldr_losses"
__getattr__ = moved(
    __name__,
    {
        "latent_classes": f"{_T01}:latent_classes",
        "ContrastiveRun": f"{_T01}:ContrastiveRun",
        "train_contrastive": f"{_T01}:train_contrastive",
        "NoisyDigits": f"{_T03}:NoisyDigits",
        "noisy_digits": f"{_T03}:noisy_digits",
        "ClassifierRun": f"{_T03}:ClassifierRun",
        "train_classifier": f"{_T03}:train_classifier",
    },
)
