"""Deprecated: the T-track set-ups moved to :mod:`lossviz.papers` (the old names go in 0.3).

``latent_classes``, ``ContrastiveRun``, ``train_contrastive`` ->
:mod:`lossviz.papers.t01_contrastive_temperature`; ``NoisyDigits``, ``noisy_digits``,
``ClassifierRun``, ``train_classifier`` -> :mod:`lossviz.papers.t03_ldr_losses`.
"""

from __future__ import annotations

from .._deprecate import moved
from ._moved import MOVED

__all__: list[str] = []

__getattr__ = moved(__name__, MOVED)
