"""Set-up of notebook L12 (ADOPT, Taniguchi et al. 2024)."""

import numpy as np
import pytest
import torch

from lossviz import data
from lossviz.papers import l12_adopt as l12

SMALL = data.gaussian_mixture(8, 10, 64, seed=0)  # digits-shaped (64 features, 10 classes), no sklearn load


def _param(values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


@pytest.mark.parametrize("method", ["adam", "amsgrad", "adopt"])
def test_numpy_toy_agrees_with_the_torch_optimisers(method):
    steps, chains, k, b2, b1, eps = 300, 3, 10.0, 0.5, 0.9, 1e-8
    run = l12.run_counterexample(
        4, ks=(k,), beta2s=(b2,), methods=(method,), steps=steps, chains=chains, every=1
    )
    u = l12.counterexample_uniforms(steps, chains, 4)
    g = torch.as_tensor(l12.counterexample_gradients(k, u))
    lrs = l12.lr_toy(steps)
    w = _param([0.0] * chains)
    if method == "adopt":
        opt = l12.ADOPT([w], lr=0.01, betas=(b1, b2), eps=eps)
        w.grad = g[0].clone()
        opt.step()
    else:
        opt = torch.optim.Adam([w], lr=0.01, betas=(b1, b2), eps=eps, amsgrad=method == "amsgrad")
    traj = [w.detach().clone()]
    for t in range(1, steps + 1):
        opt.param_groups[0]["lr"] = float(lrs[t - 1])
        w.grad = g[t].clone()
        opt.step()
        with torch.no_grad():
            w.clamp_(-1.0, 1.0)
        traj.append(w.detach().clone())
    np.testing.assert_allclose(run["theta"][method][:, 0, 0], torch.stack(traj).numpy(), atol=1e-10)


def test_toy_gradients_have_mean_one_and_the_known_second_moment():
    u = np.random.default_rng(0).random(400_000)
    for k in (3.0, 10.0):
        g = l12.counterexample_gradients(k, u)
        assert abs(g.mean() - 1.0) < 0.05 * k
        assert abs((g**2).mean() / (k**3 + k * k - k) - 1) < 0.05


def test_deterministic_gradient_reaches_the_optimum_for_every_method():
    run = l12.run_counterexample(0, ks=(10,), beta2s=(0.1, 0.999), chains=1, steps=400, deterministic=True)
    for m in l12.METHODS:
        np.testing.assert_array_equal(run["final_mean"][m], -1.0)


def test_sympy_limits_against_an_independent_enumeration():
    d = l12.derivation()
    for k in (3, 10, 50):
        p = 1 / k
        assert d["adam_sign_fn"](k) == pytest.approx(-(p - (1 - p)))  # -E sign(g)
        assert d["adopt_sign_fn"](k) == pytest.approx(-1.0 * (p / k**2 + (1 - p) / k))  # -E g E 1/|g|
        assert d["fixed_v_fn"](k) == pytest.approx(-1 / np.sqrt(k**3 + k * k - k))
    assert d["adam_sign_fn"](10) == pytest.approx(0.8)
    # Monte Carlo of the beta2 -> 0 steps with the toy's own gradients (independent of sympy)
    u = np.random.default_rng(1).random(200_001)
    g = l12.counterexample_gradients(10, u)
    assert np.mean(-np.sign(g)) == pytest.approx(d["adam_sign_fn"](10), abs=0.01)
    assert np.mean(-g[1:] / np.abs(g[:-1])) == pytest.approx(d["adopt_sign_fn"](10), abs=0.01)


def test_toy_is_seeded_and_leaves_the_global_rng_alone():
    np.random.seed(5)
    torch.manual_seed(5)
    before_np, before_t = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a = l12.run_counterexample(3, ks=(10,), beta2s=(0.5,), steps=200, chains=4)
    b = l12.run_counterexample(3, ks=(10,), beta2s=(0.5,), steps=200, chains=4)
    c = l12.run_counterexample(4, ks=(10,), beta2s=(0.5,), steps=200, chains=4)
    r1 = l12.run_net("adopt_clip", 0.5, 2, steps=15, dataset=SMALL)
    r2 = l12.run_net("adopt_clip", 0.5, 2, steps=15, dataset=SMALL)
    assert np.array_equal(a["theta"]["adam"], b["theta"]["adam"])
    assert not np.array_equal(a["theta"]["adam"], c["theta"]["adam"])
    np.testing.assert_array_equal(r1["loss"], r2["loss"])
    assert np.array_equal(np.random.get_state()[1], before_np)
    assert torch.equal(torch.get_rng_state(), before_t)


def test_run_net_shapes_and_statistics():
    r = l12.run_net("adam", 0.999, 0, steps=30, dataset=SMALL)
    assert r["loss"].shape == (31,) and r["steps_run"] == 30 and not r["diverged"]
    assert np.isfinite(r["final_ce"]) and r["final_ce"] < r["loss"][0]
    nets = {
        (m, b): {"final_ce": v}
        for m in ("adam", "adopt_clip")
        for b, v in zip(l12.CHECK_BETA2S, (np.inf, 20.0, 0.01, 0.002))
    }
    st = l12.net_statistics(nets)
    assert (
        st["net_adam_small_min"] == 20.0
        and st["net_adam_large_max"] == 0.01
        and st["net_adopt_clip_max"] == np.inf
    )


def test_toy_value_and_statistics():
    run = l12.run_counterexample(0, beta2s=l12.CHECK_BETA2S, steps=50, chains=2, every=25)
    assert list(run["steps"]) == [0, 25, 50]
    assert run["theta"]["adopt"].shape == (3, 2, 4, 2)
    assert l12.toy_value(run, "adam", 10, 0.5, step=0) == 0.0
    st = l12.toy_statistics(run)
    assert st["k50_gap_min"] == min(st[f"adam_k50_b{b}"] - st[f"adopt_k50_b{b}"] for b in l12.CHECK_BETA2S)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="methods"):
        l12.run_counterexample(0, methods=("sgd",), steps=2)
    with pytest.raises(ValueError, match="ks"):
        l12.run_counterexample(0, ks=(1.0,), steps=2)
    with pytest.raises(ValueError, match="k"):
        l12.counterexample_gradients(0.5, [0.1])
    with pytest.raises(ValueError, match="method"):
        l12.make_optimizer("sgd", 0.9)
    run = l12.run_counterexample(0, ks=(10,), beta2s=(0.5,), steps=2, chains=1)
    with pytest.raises(ValueError, match="beta2"):
        l12.toy_value(run, "adam", 10, 0.9)
    with pytest.raises(ValueError, match="steps"):
        l12.lr_toy(0)
