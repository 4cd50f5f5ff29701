"""Tests for lossviz.papers.n06_hard_negative_collapse (P x K batches, batch-hard gap, runs, claim statistics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz import losses
from lossviz.papers import n06_hard_negative_collapse as n06


@pytest.fixture(scope="module")
def ds():
    return n06.make_data(0)


def test_data_is_the_overlapping_mixture(ds):
    assert ds.x.shape == (2000, 16) and ds.x.dtype == torch.float32
    assert torch.equal(torch.bincount(ds.y), torch.full((100,), 20))
    # within-class noise 0.7: residuals from the class means have std ~0.7
    means = torch.stack([ds.x[ds.y == c].mean(0) for c in range(100)])
    assert float((ds.x - means[ds.y]).std()) == pytest.approx(0.7 * math.sqrt(19 / 20), rel=0.05)


def test_pk_batches_are_class_balanced_distinct_and_seeded(ds):
    a = n06.PKBatches(ds.x, ds.y, 32, seed=3, per_epoch=5)
    b = n06.PKBatches(ds.x, ds.y, 32, seed=3, per_epoch=5)
    batches = list(a)
    assert len(batches) == len(a) == 5
    for (xa, ya), (xb, yb) in zip(batches, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        counts = torch.bincount(ya)
        assert sorted(counts[counts > 0].tolist()) == [4] * 8
        assert len({tuple(r.tolist()) for r in xa}) == 32  # distinct points
    assert not torch.equal(batches[0][1], batches[1][1])  # a fresh draw per batch


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"batch_size": 30}, "batch_size"),
        ({"batch_size": 4}, "batch_size"),
        ({"batch_size": 404}, "batch_size"),
        ({"k": 1}, "k"),
        ({"k": 25, "batch_size": 50}, "y"),
    ],
)
def test_pk_batches_bad_input(ds, kwargs, word):
    args = {"batch_size": 32, **kwargs}
    with pytest.raises(ValueError, match=word):
        n06.PKBatches(ds.x, ds.y, **args)


def test_batch_hard_gap_brute_force_and_the_loss_bound():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.arange(4).repeat_interleave(3)
    want = []
    for a in range(12):
        dap = max(float((z[a] - z[p]).norm()) for p in range(12) if y[p] == y[a] and p != a)
        dan = min(float((z[a] - z[q]).norm()) for q in range(12) if y[q] != y[a])
        want.append(dap - dan)
    gap = n06.batch_hard_gap(z, y)
    assert gap == pytest.approx(np.mean(want), rel=1e-12)
    # the hinge is convex: loss >= max(g + margin, 0); with every hinge active it equals g + margin
    assert float(losses.triplet_loss(z, y, margin=0.2)) >= max(gap + 0.2, 0) - 1e-12
    assert float(losses.triplet_loss(z, y, margin=50.0)) == pytest.approx(gap + 50.0, rel=1e-12)
    with pytest.raises(ValueError, match="labels"):
        n06.batch_hard_gap(z, torch.zeros(12, dtype=torch.long))


def test_spread_reference_values():
    assert n06.spread(torch.ones(50, 3)) == 0.0
    t = torch.linspace(0, 2 * math.pi, 2001)[:-1]
    circle = torch.stack([t.cos(), t.sin()], 1)
    assert n06.spread(circle) == pytest.approx(4 / math.pi, rel=1e-3)
    with pytest.raises(ValueError, match="z"):
        n06.spread(torch.ones(1, 3))


def test_embed_and_encoder_leave_the_model_alone(ds):
    model = n06.make_encoder(8, seed=1)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    z = n06.embed(model, ds.x[:50])
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert z.shape == (50, 8) and torch.allclose(z.norm(dim=1), torch.ones(50))
    assert all(float(layer.bias.detach().abs().max()) == 0.0 for layer in [*model.layers, model.head])
    with pytest.raises(ValueError, match="n"):
        n06.make_encoder(0)


def test_train_run_is_seeded_and_leaves_the_global_rng_and_data_alone(ds):
    x0 = ds.x.clone()
    torch.manual_seed(5)
    np.random.seed(5)
    state, np_state = torch.random.get_rng_state(), np.random.get_state()
    a = n06.train_run(ds, 2, 32, steps=15, probes=2, seed=4)
    b = n06.train_run(ds, 2, 32, steps=15, probes=2, seed=4)
    r = n06.train_run(ds, 2, 32, steps=15, probes=2, seed=4, mining="random")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.equal(ds.x, x0)
    assert a.spread == b.spread and np.array_equal(a.loss, b.loss) and len(a.loss) == 16
    assert a.embedding.shape == (2000, 2) and a.labels.shape == (2000,)
    assert not np.array_equal(r.loss, a.loss)
    with pytest.raises(ValueError, match="mining"):
        n06.train_run(ds, 2, 32, steps=1, mining="all")
    with pytest.raises(ValueError, match="batch_size"):
        n06.train_run(ds, 2, 30, steps=1)


def test_claim_statistics_reads_a_grid(ds):
    grid = n06.run_grid(0, steps=3, ds=ds)
    st = n06.claim_statistics(0, grid=grid)
    sp = st["spread"]
    assert sp.shape == (3, 4) and np.array_equal(sp, grid.spread)
    assert st["collapsed_max"] == max(sp[0, 2], sp[0, 3], sp[1, 3])
    assert st["noncollapsed_min"] == min(sp[2, 0], sp[2, 1], sp[2, 2], sp[1, 0])
    assert st["control_ratio"] == pytest.approx(grid.controls[2, 400].spread / sp[0, 3])
    assert -1 <= st["spearman_gap_spread"] <= 1
    assert st["gap_init"].shape == (3, 4)
    small = n06.run_grid(0, dims=(2,), batches=(8,), controls=(), steps=0, ds=ds)
    with pytest.raises(ValueError, match="grid"):
        n06.claim_statistics(0, grid=small)
    with pytest.raises(TypeError, match="quick"):
        n06.claim_statistics(0, quick="yes")
    with pytest.raises(ValueError, match="seed"):
        n06.claim_statistics(-1)
