"""lossviz.papers.l05_git_rebasin: training the pairs, the three interpolation paths, the claim's test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import data, landscape
from lossviz.papers import l05_git_rebasin as l05
from lossviz.testing import assert_model_unchanged


@pytest.fixture(scope="module")
def small():
    ds = data.digits()
    x, y = ds.x[:300], ds.y[:300]
    A = l05.train_mlp(x, y, 16, seed=1, epochs=2)
    B = l05.train_mlp(x, y, 16, seed=2, epochs=2)
    return x, y, A, B


def test_train_mlp_is_seeded_float64_on_the_data_device(small):
    x, y, A, B = small
    again = l05.train_mlp(x, y, 16, seed=1, epochs=2)
    assert all(torch.equal(p, q) for p, q in zip(A.parameters(), again.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(A.parameters(), B.parameters()))
    assert all(p.dtype == torch.float64 and p.device == x.device for p in A.parameters())
    assert [m.out_features for m in landscape._matching.mlp_linears(A)] == [16, 16, 10]


def test_compare_pair_paths_end_at_b_and_leave_the_models_alone(small):
    x, y, A, B = small
    x64 = x.double()
    with assert_model_unchanged(A), assert_model_unchanged(B):
        pair = l05.compare_pair(A, B, x64, y, steps=6, seed=3, restarts=3)
    assert set(pair.paths) == set(l05.PATHS) and pair.width == 16
    assert pair.model_a is A and pair.model_b is B
    naive = pair.paths["naive"]
    for name in ("matched", "random"):
        # both permuted copies compute B's function: same loss at alpha = 1, same start at A
        assert pair.paths[name].loss[-1] == pytest.approx(naive.loss[-1], rel=1e-10)
        assert pair.paths[name].loss[0] == naive.loss[0]
    assert pair.ratio == pytest.approx(pair.barriers["matched"] / pair.barriers["naive"])
    assert pair.random_ratio == pytest.approx(pair.barriers["random"] / pair.barriers["naive"])
    assert pair.distance_naive == pytest.approx(landscape.parameter_distance(A, B))
    assert 0 <= pair.overlap_naive <= 1 and 0 <= pair.overlap_matched <= 1
    # restarts keep the best alignment objective of the individual runs
    singles = [landscape.weight_matching(A, B, seed=3 + r).objective[-1] for r in range(3)]
    assert pair.match.objective[-1] == pytest.approx(max(singles))
    # the control is a real permutation, not the identity and not the matched one
    assert any(not torch.equal(p, q) for p, q in zip(B.parameters(), pair.random_model.parameters()))


def test_barrier_statistics_and_claim(small):
    x, y, A, B = small
    pair = l05.compare_pair(A, B, x.double(), y, steps=5, restarts=1)
    st = l05.barrier_statistics({32: pair, 16: pair})
    assert st["widths"] == [16, 32]
    np.testing.assert_allclose(st["barrier_reduction"], 1 - st["ratio"])
    np.testing.assert_allclose(st["random_over_matched"], st["random"] / st["matched"])
    assert l05.barrier_claim([0.3, 0.1, 0.05])
    assert not l05.barrier_claim([0.3, 0.05, 0.08])  # not decreasing
    assert not l05.barrier_claim([0.5, 0.3, 0.15])  # widest not below 0.1
    assert not l05.barrier_claim([1.0, 0.95, 1.02])  # a random permutation's ratios
    with pytest.raises(ValueError, match="ratios"):
        l05.barrier_claim([0.05])
    with pytest.raises(TypeError, match="results"):
        l05.barrier_statistics({})


def test_bad_inputs(small):
    x, y, A, B = small
    with pytest.raises(ValueError, match="width"):
        l05.train_mlp(x, y, 0, seed=0)
    with pytest.raises(ValueError, match="y"):
        l05.train_mlp(x, y[:10], 8, seed=0)
    with pytest.raises(ValueError, match="restarts"):
        l05.compare_pair(A, B, x.double(), y, restarts=0)
