"""lossviz.papers.t08_ensloss: the T08 toy, its losses and claim statistics."""

from __future__ import annotations

import math

import pytest
import torch

from lossviz.losses import ensloss_derivatives
from lossviz.papers import t08_ensloss as t08

torch.set_num_threads(1)


def test_task_flips_exactly_and_test_labels_are_clean():
    t = t08.make_task(3, n=200, n_test=500, noise=0.3)
    assert int(t["flipped"].sum()) == 60
    t0 = t08.make_task(3, n=200, n_test=500, noise=0.0)
    assert torch.equal(t["x"], t0["x"]) and torch.equal(t["y_test"], t0["y_test"])
    assert torch.equal(t["y"] != t0["y"], t["flipped"])
    # another seed, another teacher and sample
    assert not torch.equal(t08.make_task(4, n=50)["y"], t08.make_task(3, n=50)["y"])
    with pytest.raises(ValueError, match="noise"):
        t08.make_task(0, noise=0.7)


def _grad(name, z, gen=None):
    z = z.clone().requires_grad_(True)
    t08.margin_loss(name, generator=gen)(z[:, None], torch.ones_like(z)).backward()
    return z.grad * z.numel()


def test_fixed_loss_derivatives_are_the_closed_forms():
    z = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    assert torch.allclose(_grad("bce", z), -torch.sigmoid(-z))
    assert torch.allclose(_grad("hinge", z), torch.tensor([-1.0, -1.0, -1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(_grad("exp", z), -torch.exp(-z))
    assert torch.allclose(_grad("sqhinge", z), -2 * torch.relu(1 - z))
    # labels -1 flip the margin
    out = torch.tensor([[1.0]], requires_grad=True)
    t08.margin_loss("hinge")(out, torch.tensor([-1.0])).backward()
    assert float(out.grad) == 1.0


def test_ensloss_closure_matches_the_family_and_draws_fresh():
    z = torch.linspace(-2, 3, 16, dtype=torch.float64)
    g1 = _grad("ensloss", z, torch.Generator().manual_seed(5))
    ref = ensloss_derivatives(z, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(g1, ref)
    gen = torch.Generator().manual_seed(5)
    a, b = _grad("ensloss", z, gen), _grad("ensloss", z, gen)
    assert not torch.allclose(a, b)  # a fresh derivative per batch
    assert bool((a < 0).all() and (a.diff() >= 0).all())


def test_ens_mean_is_deterministic_monotone_and_perm_is_not_monotone():
    z = torch.linspace(-2, 3, 32, dtype=torch.float64)
    m1, m2 = _grad("ens_mean", z), _grad("ens_mean", z)
    assert torch.equal(m1, m2) and bool((m1 < 0).all() and (m1.diff() >= 0).all())
    mean = t08.mean_derivatives(32)
    assert (
        -1.0 <= float(mean[0]) < -0.99 and -0.3 < float(mean[-1]) < 0
    )  # -1 at the bottom, near 0 at the top
    p = _grad("ens_perm", z, torch.Generator().manual_seed(1))
    assert bool((p < 0).all()) and bool((p.diff() < 0).any())


def test_run_fits_the_noisy_labels_and_leaves_global_rng_alone():
    task = t08.make_task(0, n=64, n_test=200, noise=0.3)
    state = torch.get_rng_state()
    r = t08.run(0, "ensloss", task=task, epochs=60, record_every=20)
    assert torch.equal(state, torch.get_rng_state())
    assert r["train"] >= 0.95  # memorises the flipped labels
    assert list(r["epochs"]) == [0.0, 20.0, 40.0, 60.0] and r["curve"][-1] == r["test"]
    r2 = t08.run(0, "ensloss", task=task, epochs=60, record_every=20)
    assert r2["test"] == r["test"]


def test_claim_statistics_and_bad_input():
    res = {
        "bce": {"test": 0.7},
        "exp": {"test": math.nan},
        "ensloss": {"test": 0.72},
        "ens_perm": {"test": 0.71},
    }
    s = t08.claim_statistics(res)
    assert (
        s["best_fixed"] == 0.7
        and s["gain"] == pytest.approx(0.02)
        and s["perm_minus_ens"] == pytest.approx(-0.01)
    )
    with pytest.raises(ValueError, match="ensloss"):
        t08.claim_statistics({"bce": {"test": 0.7}})
    with pytest.raises(ValueError, match="name"):
        t08.margin_loss("mse")
    with pytest.raises(TypeError, match="generator"):
        t08.margin_loss("ensloss")
    with pytest.raises(ValueError, match="loss"):
        t08.run(0, "mse")
