"""Set-up of notebook T06 (Qiu et al. 2024, TempNet)."""

import math

import numpy as np
import pytest
import torch

from lossviz.losses import dro_objective
from lossviz.papers import t06_tempnet as t06


def test_toy_lm_shapes_and_distribution():
    lm = t06.toy_lm(0, n_train=50, n_test=20)
    p = lm["h_train"].exp()
    assert lm["h_train"].shape == (50, 50) and lm["h_test"].shape == (20, 50)
    assert torch.allclose(p.sum(1), torch.ones(50), atol=1e-5)
    # exactly k tokens carry the extra 0.9 / k mass
    assert torch.equal((p > 0.1 / 50 + 1e-6).sum(1), lm["k_train"])
    with pytest.raises(ValueError, match="ks"):
        t06.toy_lm(0, ks=(100,))
    with pytest.raises(ValueError, match="noise"):
        t06.toy_lm(0, noise=0.0)


def test_dro_loss_matches_numpy_and_authors_form():
    lm = t06.toy_lm(1, n_train=8, n_test=1)
    h, y = lm["h_train"].double(), lm["y_train"]
    tau = torch.linspace(0.3, 2.0, 8, dtype=torch.float64)
    ours = t06.dro_loss(h, y, tau, 0.3)
    for i in range(8):
        a = (h[i] - h[i, y[i]]).numpy()
        assert float(ours[i]) == pytest.approx(float(dro_objective(a, float(tau[i]), 0.3)[0]), rel=1e-10)
    # authors' code: tau * CE(h / tau, y) + (rho - log V) * tau
    ce = torch.nn.functional.cross_entropy(h / tau[:, None], y, reduction="none")
    assert torch.allclose(ours, tau * ce + (0.3 - math.log(50)) * tau, atol=1e-10)


def test_optimal_tau_puts_kl_at_rho_and_minimises():
    lm = t06.toy_lm(2, n_train=6, n_test=1, ks=(2, 8))
    taus = t06.optimal_taus(lm["h_train"], 0.3)
    kl = t06.kl_uniform(lm["h_train"].double(), torch.tensor(taus))
    assert torch.allclose(kl, torch.full_like(kl, 0.3), atol=1e-8)
    grid = np.geomspace(0.05, 5, 400)
    for row, ts in zip(lm["h_train"].double().numpy(), taus):
        f = dro_objective(row, grid, 0.3)
        assert dro_objective(row, ts, 0.3)[0] <= f.min() + 1e-9
    # sympy value from the curriculum
    assert t06.optimal_taus(torch.tensor([[0.0, -1.0, -2.0]]), 0.1)[0] == pytest.approx(1.75574, abs=1e-5)


def test_tempnet_range_and_bad_input():
    net = t06.TempNet(50)
    tau = net(torch.randn(7, 50) * 10)
    assert tau.shape == (7,) and bool((tau >= t06.TAU_MIN).all()) and bool((tau <= t06.TAU_MAX).all())
    with pytest.raises(ValueError, match="tau_max"):
        t06.TempNet(50, tau_min=2.0, tau_max=1.0)
    with pytest.raises(ValueError, match="rho"):
        t06.train_tempnet(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), rho=-1.0)
    with pytest.raises(ValueError, match="h"):
        t06.train_tempnet(torch.zeros(4, 5), torch.zeros(3, dtype=torch.long))


def test_training_is_seeded_leaves_global_rng_and_inputs_alone():
    lm = t06.toy_lm(0, n_train=300, n_test=10)
    h0 = lm["h_train"].clone()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = t06.train_tempnet(lm["h_train"], lm["y_train"], steps=60, seed=3)
    b = t06.train_tempnet(lm["h_train"], lm["y_train"], steps=60, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(lm["h_train"], h0)
    assert not a.training
    with torch.no_grad():
        assert torch.equal(a(lm["h_test"]), b(lm["h_test"]))
        # training lowers the DRO loss below the untrained net's
        untrained = t06.train_tempnet(lm["h_train"], lm["y_train"], steps=0, seed=3)
        f = lambda net: float(t06.dro_loss(lm["h_train"], lm["y_train"], net(lm["h_train"]), 0.3).mean())  # noqa: E731
        assert f(a) < f(untrained)
