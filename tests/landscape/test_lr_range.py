"""lossviz.landscape.lr_range_test: the linearly rising learning-rate run (Smith 2017)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape

torch.set_num_threads(1)


def _scalar_problem(w0=1.0, dtype=torch.float64):
    """``loss = mean((w * 1 - 0)^2) = w^2``: GD multiplies ``w`` by ``1 - 2 lr`` each step."""
    net = nn.Linear(1, 1, bias=False, dtype=dtype)
    with torch.no_grad():
        net.weight.fill_(w0)
    x = torch.ones(4, 1, dtype=dtype)
    return net, (x, torch.zeros(4, 1, dtype=dtype))


def _w(model):
    return float(model.weight.reshape(()))


def test_matches_the_closed_form_of_gd_on_a_quadratic():
    net, data = _scalar_problem()
    res = landscape.lr_range_test(
        net, nn.functional.mse_loss, data, _w, lr_min=0.1, lr_max=1.3, steps=12, every=3, smooth=1, mode="min"
    )
    lrs = 0.1 + 1.2 * np.arange(12) / 12  # the lr of update t + 1
    w = np.concatenate([[1.0], np.cumprod(1 - 2 * lrs)])
    assert res.steps.tolist() == [0, 3, 6, 9, 12]
    np.testing.assert_allclose(res.values, w[res.steps], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.lrs, 0.1 + 1.2 * res.steps / 12)
    assert res.best_index == int(np.argmin(w[res.steps])) and res.best_lr == res.lrs[res.best_index]
    assert not res.diverged and res.mode == "min"


def test_smoothing_is_a_centred_moving_average_and_the_peak_is_read_from_it():
    net, data = _scalar_problem()
    res = landscape.lr_range_test(
        net, nn.functional.mse_loss, data, lambda m: -abs(_w(m)), lr_max=1.5, steps=30, every=2, smooth=3
    )
    v = res.values
    ref = np.array([v[max(0, i - 1) : i + 2].mean() for i in range(len(v))])
    np.testing.assert_allclose(res.smoothed, ref, rtol=1e-12)
    assert res.best_index == int(np.argmax(ref))
    assert 0.5 < res.best_lr < 1.5  # |w| shrinks while lr < 1 and grows again past it


def test_leaves_the_model_and_the_global_rng_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    state = torch.random.get_rng_state()
    res = landscape.lr_range_test(
        net, nn.functional.cross_entropy, (x, y), lambda m: 0.0, lr_max=1.0, steps=5, every=1, batch_size=8
    )
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.training and all(p.grad is None for p in net.parameters())
    assert len(res.values) == 6


def test_bad_input_names_the_argument():
    net, data = _scalar_problem()
    loss = nn.functional.mse_loss
    with pytest.raises(ValueError, match="lr_max"):
        landscape.lr_range_test(net, loss, data, _w, lr_min=1.0, lr_max=0.5)
    with pytest.raises(ValueError, match="mode"):
        landscape.lr_range_test(net, loss, data, _w, mode="peak")
    with pytest.raises(ValueError, match="steps"):
        landscape.lr_range_test(net, loss, data, _w, steps=0)
    with pytest.raises(TypeError, match="metric"):
        landscape.lr_range_test(net, loss, data, "accuracy")
    with pytest.raises(TypeError, match="model"):
        landscape.lr_range_test("net", loss, data, _w)


def test_result_plots_on_both_backends_and_saves(tmp_path):
    import matplotlib.pyplot as plt

    net, data = _scalar_problem()
    res = landscape.lr_range_test(
        net, nn.functional.mse_loss, data, lambda m: -abs(_w(m)), lr_max=1.5, steps=30, every=2, smooth=3
    )
    fig = res.plot(backend="matplotlib", ylabel="-|w|")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "learning rate" and ax.get_ylabel() == "-|w|"
    assert not plt.fignum_exists(fig.number)  # created here, returned closed
    (pick,) = [ln for ln in ax.lines if ln.get_label().startswith("pick")]
    assert pick.get_xdata()[0] == pytest.approx(res.best_lr)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), res.smoothed)
    pfig = landscape.plot_lr_range_test(res)
    assert [t.name for t in pfig.data] == ["recorded", "moving average", f"pick: lr = {res.best_lr:.3g}"]
    assert pfig.layout.xaxis.title.text == "learning rate"
    mine, own = plt.subplots()
    assert res.plot(backend="matplotlib", ax=own) is mine and plt.fignum_exists(mine.number)
    plt.close(mine)
    back = type(res).load(res.save(tmp_path / "range"))
    np.testing.assert_array_equal(back.values, res.values)
    assert back.best_lr == res.best_lr and back.mode == res.mode
    with pytest.raises(TypeError, match="LRRangeTest"):
        landscape.plot_lr_range_test(np.zeros(3))
    with pytest.raises(ValueError, match="backend"):
        res.plot(backend="bokeh")
