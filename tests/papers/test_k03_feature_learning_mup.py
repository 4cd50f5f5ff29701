"""lossviz.papers.k03_feature_learning_mup: the robust best learning rate and the training helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz.papers import k03_feature_learning_mup as k03

torch.set_num_threads(1)


def test_best_log2_lr_finds_the_vertex_and_ignores_noise_and_divergence():
    grid = np.arange(-4.0, 4.0)
    clean = np.exp(0.5 * (grid - 0.4) ** 2)
    assert abs(k03.best_log2_lr(grid, clean) - 0.4) < 1e-9
    rng = np.random.default_rng(0)
    noisy = clean * np.exp(0.05 * rng.standard_normal((3, grid.size)))
    assert abs(k03.best_log2_lr(grid, noisy) - 0.4) < 0.3
    diverged = np.where(grid > 1, np.inf, clean)
    assert -0.6 <= k03.best_log2_lr(grid, diverged) <= 1.0
    assert k03.best_log2_lr(grid, np.where(grid > -4, np.inf, 1.0)) == -4.0  # edge
    with pytest.raises(ValueError, match="diverged"):
        k03.best_log2_lr(grid, np.full(grid.size, np.inf))
    with pytest.raises(ValueError, match="learning rates"):
        k03.best_log2_lr(grid, np.ones(3))


def test_train_mlp_feature_change_is_zero_at_lr_zero():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g)
    change, loss = k03.train_mlp("ntk", 32, 0.0, 3, 0, x, y)
    assert change == 0.0 and np.isfinite(loss)
    assert k03.train_mlp("standard", 32, 1e4, 20, 0, x, y)[1] == np.inf  # diverges
