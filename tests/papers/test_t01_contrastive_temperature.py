"""Tests for the T01/T02 set-up (lossviz.papers.t01_contrastive_temperature), tiny sizes."""

from __future__ import annotations

import pytest
import torch

from lossviz.papers import t01_contrastive_temperature as X


def test_latent_classes_and_contrastive_runs():
    x, y = X.latent_classes([20, 20, 10], 8, within=0.3, seed=1)
    assert x.shape == (50, 8) and y.tolist().count(2) == 10
    x2, _ = X.latent_classes([20, 20, 10], 8, within=0.3, seed=1)
    assert torch.equal(x, x2)
    r = X.train_contrastive(x, y, tau=0.2, steps=5, batch_size=16, hidden=(16,), out_features=4, seed=0)
    assert r.embeddings.shape == (50, 4) and torch.allclose(r.embeddings.norm(dim=1), torch.ones(50))
    assert r.losses.shape == (5,) and r.temperatures is None
    r2 = X.train_contrastive(x, y, tau=0.2, steps=5, batch_size=16, hidden=(16,), out_features=4, seed=0)
    assert torch.equal(r.embeddings, r2.embeddings)  # same seed, same result
    rr = X.train_contrastive(
        x,
        y,
        tau=0.1,
        loss="robust",
        steps=5,
        batch_size=16,
        hidden=(16,),
        out_features=4,
        rho=0.1,
        tau_range=(0.05, 5.0),
        seed=0,
    )
    assert rr.temperatures.shape == (50,)
    assert float(rr.temperatures.min()) >= 0.05 and float(rr.temperatures.max()) <= 5.0
    assert not torch.all(rr.temperatures == 0.1)  # sampled anchors moved
    with pytest.raises(ValueError, match="loss"):
        X.train_contrastive(x, y, loss="triplet")


def test_hardest_negative_share():
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(40, 3, generator=g), dim=1)
    shares = [X.hardest_negative_share(e, t, k=4) for t in (0.01, 0.1, 1.0, 100.0)]
    assert all(a > b for a, b in zip(shares, shares[1:]))  # a fixed geometry: falls with tau
    assert abs(shares[-1] - 4 / 39) < 0.01  # tau -> inf: the uniform share
    assert 0 < shares[0] <= 1
    with pytest.raises(ValueError, match="k"):
        X.hardest_negative_share(e, 0.1, k=40)


def test_untrained_encoder_is_the_initialisation():
    x, y = X.latent_classes([10, 10], 4, seed=0)
    r0 = X.train_contrastive(x, y, tau=0.2, steps=0, hidden=(8,), out_features=3, seed=3)
    r1 = X.train_contrastive(x, y, tau=1.0, steps=0, hidden=(8,), out_features=3, seed=3)
    assert torch.equal(r0.embeddings, r1.embeddings) and r0.losses.shape == (0,)
