"""lossviz.landscape._matching: weight matching (Git Re-Basin)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._common import _mlp

F = nn.functional


def test_weight_matching_same_function_and_singular_values():
    a, b = (
        _mlp(torch.float64, seed=0, widths=(4, 16, 12, 3)),
        _mlp(torch.float64, seed=1, widths=(4, 16, 12, 3)),
    )
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.weight_matching(a, b)
    x = torch.randn(50, 4, dtype=torch.float64)
    assert torch.allclose(res.model(x), b(x), atol=1e-10, rtol=0)
    for la, lb in zip(
        [m for m in res.model.modules() if isinstance(m, nn.Linear)],
        [m for m in b.modules() if isinstance(m, nn.Linear)],
    ):
        sa = torch.linalg.svdvals(la.weight.detach())
        sb = torch.linalg.svdvals(lb.weight.detach())
        assert torch.allclose(sa, sb, atol=1e-10)
    assert res.converged and res.objective[-1] >= res.objective[0]
    assert landscape.parameter_distance(a, res.model) <= landscape.parameter_distance(a, b)
    assert landscape.subspace_overlap(b, res.model, layer=0, k=3) < 1.0 + 1e-12
    assert landscape.subspace_overlap(a, a, layer=1, k=3) == pytest.approx(1.0)
    assert all(sorted(p.tolist()) == list(range(len(p))) for p in res.permutations)
    assert all(p.grad is None for p in res.model.parameters())


def test_weight_matching_recovers_a_planted_permutation():
    a = _mlp(torch.float64, seed=0, widths=(5, 10, 7, 2))
    rng = np.random.default_rng(0)
    planted = [rng.permutation(10), rng.permutation(7)]
    b = landscape.permute_mlp(a, planted)
    res = landscape.weight_matching(a, b)
    for (k, p), q in zip(a.named_parameters(), res.model.parameters()):
        assert torch.equal(p, q), k


def test_weight_matching_unsupported_architectures():
    # Linear -> BatchNorm1d chains are matched by conv_spec now; LayerNorm is not supported
    a, b = BNDropoutNet(), BNDropoutNet(seed=1)
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.weight_matching(a, b)
    assert res.kind == "conv" and res.converged
    x = torch.randn(8, 4)
    with torch.no_grad():
        assert torch.allclose(res.model.eval()(x), copy.deepcopy(b).eval()(x), atol=1e-5)
    ln = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(ValueError, match="model_a.*LayerNorm"):
        landscape.weight_matching(ln, copy.deepcopy(ln))

    class Skip(nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.l1, self.l2, self.l3 = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.l1(x))
            return self.l3(torch.relu(self.l2(h)) + h)

    with pytest.raises(ValueError, match="model_b"):
        landscape.weight_matching(Skip(0), Skip(1))
    with pytest.raises(ValueError, match="model_b"):
        landscape.weight_matching(_mlp(), _mlp(widths=(4, 6, 8, 3)))
    with pytest.raises(ValueError, match="model"):
        landscape.weight_matching(nn.Linear(3, 2), nn.Linear(3, 2))


def test_permute_mlp_names_permutations_of_the_wrong_type():
    from lossviz import models

    with pytest.raises(TypeError, match="`permutations` must be a sequence"):
        landscape.permute_mlp(models.MLP(3, (5,), 2, seed=0), "p")
