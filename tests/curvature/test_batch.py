"""batch_eigenvalues / sample_batches against dense per-batch Hessians (torch.autograd.functional.hessian)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import curvature
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._helpers import CE, _data, _net

MSE = nn.functional.mse_loss


def _dense_batch_spectrum(model, loss_fn, x, y):
    """Independent reference: torch.autograd.functional.hessian of the batch mean loss."""
    named = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = list(named)
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    theta = torch.cat([named[n].reshape(-1) for n in names])

    def f(t):
        state = {n: c.view(s) for n, c, s in zip(names, torch.split(t, sizes), shapes)}
        return loss_fn(torch.func.functional_call(model, state, (x,)), y)

    H = torch.autograd.functional.hessian(f, theta)
    return torch.linalg.eigvalsh(H)


def test_sample_batches_distinct_rows_seeded_and_rng_untouched():
    state = torch.random.get_rng_state()
    a = curvature.sample_batches(30, 7, 5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.shape == (5, 7) and a.dtype == torch.int64
    assert all(len(set(r.tolist())) == 7 for r in a)
    assert int(a.min()) >= 0 and int(a.max()) < 30
    assert torch.equal(a, curvature.sample_batches(30, 7, 5, seed=3))
    assert not torch.equal(a, curvature.sample_batches(30, 7, 5, seed=4))
    full = curvature.sample_batches(30, 30, 2, seed=0)
    assert all(sorted(r.tolist()) == list(range(30)) for r in full)


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_batch_eigenvalues_match_dense_hessian_of_each_batch(which):
    net, (x, y) = _net(width=6), _data(40)
    with assert_model_unchanged(net):
        res = curvature.batch_eigenvalues(net, CE, (x, y), batch_size=5, num_batches=4, which=which, seed=2)
    assert res.eigenvalues.shape == (4,) and res.all_converged
    assert res.batch_size == 5 and res.num_samples == 40 and res.matrix == "hessian"
    for b in range(4):
        rows = res.indices[b]
        lam = _dense_batch_spectrum(net, CE, x[rows], y[rows])
        ref = float(lam[-1] if which == "LA" else lam[0])
        assert res.eigenvalues[b] == pytest.approx(ref, rel=1e-8, abs=1e-10)
    assert res.mean == pytest.approx(float(np.mean(res.eigenvalues)))


def test_full_batch_equals_full_hessian_and_small_batches_exceed_it():
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    x = torch.randn(48, 3, generator=g, dtype=torch.float64)
    y = torch.randn(48, 2, generator=g, dtype=torch.float64)
    full = _dense_batch_spectrum(net, MSE, x, y)
    whole = curvature.batch_eigenvalues(net, MSE, (x, y), batch_size=48, num_batches=2, seed=0)
    np.testing.assert_allclose(whole.eigenvalues, float(full[-1]), rtol=1e-9)
    small = curvature.batch_eigenvalues(net, MSE, (x, y), batch_size=3, num_batches=12, seed=0)
    assert small.mean > float(full[-1])  # convexity of lambda_max: E lambda_max(H_S) >= lambda_max(H)
    low = curvature.batch_eigenvalues(net, MSE, (x, y), batch_size=3, num_batches=12, which="SA", seed=0)
    assert low.mean <= float(full[0]) + 1e-12


def test_identical_samples_give_the_full_value_for_every_batch():
    net, (x, y) = _net(width=5), _data(1)
    x, y = x.repeat(20, 1), y.repeat(20)
    res = curvature.batch_eigenvalues(net, CE, (x, y), batch_size=3, num_batches=5, seed=0)
    ref = float(_dense_batch_spectrum(net, CE, x, y)[-1])
    np.testing.assert_allclose(res.eigenvalues, ref, rtol=1e-9)


def test_given_indices_ggn_and_model_unchanged_with_bn_dropout():
    net = BNDropoutNet(dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=gen)
    idx = curvature.sample_batches(24, 6, 3, seed=1)
    with assert_model_unchanged(net):
        a = curvature.batch_eigenvalues(net, CE, (x, y), 6, 3, indices=idx, seed=1)
        b = curvature.batch_eigenvalues(net, CE, (x, y), 6, 3, seed=1)
        ggn = curvature.batch_eigenvalues(net, CE, (x, y), 6, 3, indices=idx, matrix="ggn")
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-12)
    assert ggn.matrix == "ggn" and np.all(ggn.eigenvalues > 0)


def test_bad_input_names_the_argument():
    net, (x, y) = _net(), _data(10)
    with pytest.raises(ValueError, match="batch_size"):
        curvature.batch_eigenvalues(net, CE, (x, y), batch_size=11)
    with pytest.raises(ValueError, match="batch_size"):
        curvature.batch_eigenvalues(net, CE, (x, y), batch_size=0)
    with pytest.raises(ValueError, match="num_batches"):
        curvature.batch_eigenvalues(net, CE, (x, y), batch_size=2, num_batches=0)
    with pytest.raises(ValueError, match="which"):
        curvature.batch_eigenvalues(net, CE, (x, y), batch_size=2, which="BE")
    with pytest.raises(TypeError, match="data"):
        curvature.batch_eigenvalues(net, CE, x, batch_size=2)
    with pytest.raises(ValueError, match="data"):
        curvature.batch_eigenvalues(net, CE, (x, y[:5]), batch_size=2)
    with pytest.raises(ValueError, match="indices"):
        curvature.batch_eigenvalues(net, CE, (x, y), 2, 3, indices=torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="indices"):
        curvature.batch_eigenvalues(net, CE, (x, y), 2, 1, indices=torch.tensor([[0, 10]]))
    with pytest.raises(ValueError, match="seed"):
        curvature.sample_batches(10, 2, 2, seed=-1)
    with pytest.raises(ValueError, match="batch_size"):
        curvature.sample_batches(10, 12, 2)


def test_plot_batch_eigenvalues_draws_every_batch_and_the_means():
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    x = torch.randn(48, 3, generator=g, dtype=torch.float64)
    y = torch.randn(48, 2, generator=g, dtype=torch.float64)
    res = [
        curvature.batch_eigenvalues(net, MSE, (x, y), batch_size=b, num_batches=5, seed=0)
        for b in (24, 3, 12)
    ]
    fig = curvature.plot_batch_eigenvalues(res, full=1.0, backend="matplotlib")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "batch size B" and "eigenvalue" in ax.get_ylabel()
    assert not plt.fignum_exists(fig.number)
    (mean_line,) = [ln for ln in ax.lines if ln.get_label() == "mean over batches"]
    np.testing.assert_array_equal(mean_line.get_xdata(), [3, 12, 24])  # sorted by batch size
    np.testing.assert_allclose(mean_line.get_ydata(), [res[1].mean, res[2].mean, res[0].mean])
    assert sum(len(c.get_offsets()) for c in ax.collections) == 15  # every batch drawn
    pfig = res[0].plot()  # one result, plotly
    assert [t.name for t in pfig.data] == ["one batch", "mean over batches"]
    np.testing.assert_allclose(pfig.data[0].y, res[0].eigenvalues)
    assert pfig.layout.xaxis.type == "log"
    low = curvature.batch_eigenvalues(net, MSE, (x, y), batch_size=3, num_batches=2, which="SA", seed=0)
    with pytest.raises(ValueError, match="which"):
        curvature.plot_batch_eigenvalues([res[0], low])
    with pytest.raises(TypeError, match="BatchEigenvalues"):
        curvature.plot_batch_eigenvalues([])
    with pytest.raises(TypeError, match="BatchEigenvalues"):
        curvature.plot_batch_eigenvalues(np.zeros(3))
