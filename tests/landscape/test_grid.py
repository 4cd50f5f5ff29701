"""lossviz.landscape._grid: lines and planes; each known bug of loss-landscapes / loss-landscape is shown absent."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._common import _data, _direct_loss, _mlp

F = nn.functional


@pytest.mark.parametrize("steps", [(5, 3), (3, 7), (4, 6)])
def test_plane_ij_indexing_non_square_and_origin(steps):
    net = _mlp(torch.float64)
    data = _data(dtype=torch.float64)
    res = landscape.plane(net, F.cross_entropy, data, steps=steps, span=(1.0, 0.5))
    na = steps[0] + (steps[0] % 2 == 0)
    nb = steps[1] + (steps[1] % 2 == 0)
    assert res.loss.shape == (na, nb) == (len(res.alphas), len(res.betas))
    i0, j0 = res.origin_index
    assert res.alphas[i0] == 0.0 and res.betas[j0] == 0.0
    base = {k: p.detach() for k, p in net.named_parameters()}
    assert res.loss[i0, j0] == res.origin_loss == _direct_loss(net, base, data)
    d1, d2 = res.directions[0], res.directions[1]
    for i, j in [(0, nb - 1), (na - 1, 0), (1, nb - 2)]:
        p = {k: base[k] + res.alphas[i] * d1[k] + res.betas[j] * d2[k] for k in base}
        assert res.loss[i, j] == pytest.approx(_direct_loss(net, p, data), rel=1e-12)
    assert res.loss.dtype == np.float64


def test_plane_leaves_model_untouched_bn_dropout():
    net = BNDropoutNet()
    x, y = _data()
    with assert_model_unchanged(net):
        res = landscape.plane(
            net, F.cross_entropy, (x, y), steps=5, metrics={"acc": landscape.accuracy_metric}
        )
        landscape.line(net, F.cross_entropy, (x, y), steps=5)
    assert net.training and not net.fc2.bias.requires_grad
    assert res.metrics["acc"].shape == (5, 5)
    # evaluation in eval mode: the origin equals the eval-mode loss (dropout off, running stats)
    m = copy.deepcopy(net).eval()
    with torch.no_grad():
        assert res.origin_loss == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-6)


def test_plane_workers_agree_and_batches_are_weighted():
    net = _mlp(torch.float64)
    x, y = _data(n=30, dtype=torch.float64)
    dirs = landscape.random_directions(net, seed=4)
    one = landscape.plane(net, F.cross_entropy, (x, y), dirs, steps=7, workers=1)
    two = landscape.plane(net, F.cross_entropy, (x, y), dirs, steps=7, workers=2)
    np.testing.assert_array_equal(one.loss, two.loss)
    batches = [(x[:7], y[:7]), (x[7:], y[7:])]  # unequal batch sizes
    split = landscape.plane(net, F.cross_entropy, batches, dirs, steps=7)
    np.testing.assert_allclose(split.loss, one.loss, rtol=1e-12)


@pytest.mark.parametrize("busy", [True, False])
def test_thread_choice_of_the_default_and_multi_worker_paths_is_restored(monkeypatch, busy):
    from lossviz.landscape import _grid

    monkeypatch.setattr(_grid, "cpu_workers", lambda limit=2: 1 if busy else 2)
    net = _mlp(torch.float64)
    x, y = _data(n=30, dtype=torch.float64)
    seen = []

    def loss_fn(out, target):
        seen.append(torch.get_num_threads())
        return F.cross_entropy(out, target)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # default: one worker, pinned to 1 intra-op thread only on a busy CPU; workers=2: pinned;
        # an explicit workers=1 keeps the caller's setting
        for workers, expect in ((None, 1 if busy else 2), (2, 1), (1, 2)):
            seen.clear()
            res = landscape.plane(net, loss_fn, (x, y), steps=5, workers=workers)
            assert set(seen) == {expect}, (workers, set(seen))
            assert res.workers == (workers or 1)
            assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)


def test_plane_given_directions_flat_and_extent():
    net = _mlp()
    x, y = _data()
    P = sum(p.numel() for p in net.parameters())
    flat = torch.randn(2, P)
    res = landscape.plane(net, F.cross_entropy, (x, y), flat, extent=((-0.5, 1.0), (-1.0, 0.3)), steps=(4, 5))
    assert res.alphas[0] == -0.5 and res.alphas[-1] == 1.0 and 0.0 in res.alphas
    assert res.directions.norm == "given"


def test_line_origin_and_float64():
    net = _mlp(torch.float64)
    data = _data(dtype=torch.float64)
    res = landscape.line(net, F.cross_entropy, data, steps=6, span=2.0)
    assert len(res.alphas) == 7 and res.alphas[res.origin_index] == 0.0
    base = {k: p.detach() for k, p in net.named_parameters()}
    assert res.origin_loss == _direct_loss(net, base, data)


def test_plane_diverged_cells_flagged_and_plotted_without_nan():
    net = _mlp()
    x, y = _data()

    def loss_fn(out, t):
        return F.cross_entropy(out, t) / (out.abs().max() < 4).float()  # inf far from the origin

    dirs = landscape.random_directions(net, norm="none", seed=0)
    res = landscape.plane(net, loss_fn, (x, y), dirs, span=20.0, steps=9)
    assert res.diverged.any() and not res.diverged[res.origin_index]
    for kind in ("contour", "heatmap", "surface"):
        fig = landscape.plot_plane(res, kind=kind)
        z = np.asarray(fig.data[0].z, dtype=float)
        assert np.isfinite(z).all()
        assert any(t.name == "diverged" for t in fig.data)
    fig = landscape.plot_plane(res, backend="matplotlib")
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_orientation_non_square():
    net = _mlp()
    res = landscape.plane(net, F.cross_entropy, _data(), steps=(5, 3))
    fig = landscape.plot_plane(res, kind="heatmap")
    z = np.asarray(fig.data[0].z)
    assert z.shape == (len(res.betas), len(res.alphas))  # rows = y = beta
    np.testing.assert_allclose(z, res.loss.T)
    assert list(fig.data[0].x) == list(res.alphas)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 1}, "steps"),
        ({"span": -1.0}, "span"),
        ({"steps": (5, 1)}, "steps"),
    ],
)
def test_plane_bad_grid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        landscape.plane(_mlp(), F.cross_entropy, _data(), **kwargs)


def test_plane_bad_inputs():
    net = _mlp()
    data = _data()
    with pytest.raises(ValueError, match="directions"):
        landscape.plane(net, F.cross_entropy, data, torch.randn(2, 5))
    with pytest.raises(ValueError, match="directions"):
        landscape.plane(net, F.cross_entropy, data, [landscape.random_directions(net, 1)[0]])
    bad = [{k: torch.zeros(3) for k, _ in net.named_parameters()}] * 2
    with pytest.raises(ValueError, match="directions"):
        landscape.plane(net, F.cross_entropy, data, bad)
    with pytest.raises(ValueError, match="loss_fn"):
        landscape.plane(net, lambda o, t: F.cross_entropy(o, t, reduction="none"), data, steps=3)
    with pytest.raises(ValueError, match="data"):
        landscape.plane(net, F.cross_entropy, [], steps=3)
    with pytest.raises(ValueError, match="data"):
        landscape.plane(net, F.cross_entropy, (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), steps=3)
    with pytest.raises(TypeError, match="model"):
        landscape.plane("net", F.cross_entropy, data)
    with pytest.raises(ValueError, match="ignore"):
        landscape.random_directions(net, ignore=("weights",))
    with pytest.raises(ValueError, match="norm"):
        landscape.random_directions(net, norm="unit")


def test_plane_vmap_engine_matches_loop():
    net = BNDropoutNet(dtype=torch.float64)
    x, y = _data(dtype=torch.float64)
    dirs = landscape.random_directions(net, seed=2)
    with assert_model_unchanged(net):
        loop = landscape.plane(
            net,
            F.cross_entropy,
            (x, y),
            dirs,
            steps=(5, 4),
            engine="loop",
            metrics={"acc": landscape.accuracy_metric},
        )
        vm = landscape.plane(
            net,
            F.cross_entropy,
            [(x[:10], y[:10]), (x[10:], y[10:])],
            dirs,
            steps=(5, 4),
            engine="vmap",
            metrics={"acc": landscape.accuracy_metric},
        )
    np.testing.assert_allclose(vm.loss, loop.loss, rtol=1e-12)
    np.testing.assert_allclose(vm.metrics["acc"], loop.metrics["acc"], atol=1e-12)
    assert vm.origin_loss == pytest.approx(loop.origin_loss, rel=1e-14)
    with pytest.raises(ValueError, match="engine"):
        landscape.plane(net, F.cross_entropy, (x, y), dirs, steps=3, engine="jit")


def test_line_passes_engine_on_and_rejects_unknown(monkeypatch):
    from lossviz.landscape import _grid

    net = _mlp(dtype=torch.float64)
    x, y = _data(dtype=torch.float64)
    loop = landscape.line(net, F.cross_entropy, (x, y), steps=7, seed=1, engine="loop")
    vm = landscape.line(net, F.cross_entropy, (x, y), steps=7, seed=1, engine="vmap")
    np.testing.assert_allclose(vm.loss, loop.loss, rtol=1e-12)
    calls = []
    real = _grid._grid_eval_vmap

    def spy(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(_grid, "_grid_eval_vmap", spy)
    landscape.line(net, F.cross_entropy, (x, y), steps=5, engine="vmap")
    assert calls == [1]  # engine reached the evaluator (it used to be dropped)
    landscape.line(net, F.cross_entropy, (x, y), steps=5, engine="loop")
    assert calls == [1]
    for bad in ("bogus", "VMAP", None):
        with pytest.raises(ValueError, match="engine"):
            landscape.line(net, F.cross_entropy, (x, y), steps=5, engine=bad)
        with pytest.raises(ValueError, match="engine"):
            landscape.plane(net, F.cross_entropy, (x, y), steps=3, engine=bad)


def test_grid_uses_the_one_loss_evaluator_error():
    net, (x, y) = _mlp(), _data()
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar tensor"):
        landscape.line(net, lambda o, t: F.cross_entropy(o, t, reduction="none"), (x, y), steps=3)
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar tensor"):
        landscape.plane(net, lambda o, t: 1.0, (x, y), steps=3, workers=1)


def test_an_inf_parameter_is_named_not_a_direction():
    """REVIEW B14: plane blamed `directions[0]` for the model's own inf weight."""
    from ._common import _data, _mlp

    net = _mlp()
    x, y = _data()
    with torch.no_grad():
        net[0].weight[0, 0] = float("inf")
    for fn in (landscape.plane, landscape.line):
        with pytest.raises(ValueError, match="`model` has non-finite parameters: '0.weight'"):
            fn(net, torch.nn.functional.cross_entropy, (x, y), steps=3)


# -- data of any form, streamed (issue 13 items 1, 2; REVIEW B4, B7) -----------------------------


def test_plane_streamed_over_a_dataloader_equals_all_at_once():
    from torch.utils.data import DataLoader, TensorDataset

    from lossviz.data import collate

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = torch.randn(45, 4), torch.randint(0, 3, (45,))
    ce = torch.nn.functional.cross_entropy
    kw = dict(steps=3, workers=1, metrics={"acc": landscape.accuracy_metric})
    full = landscape.plane(net, ce, (x, y), **kw)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 16, 16, 13
    streamed = landscape.plane(net, ce, loader, **kw)
    resident = landscape.plane(net, ce, collate(loader, resident=True), **kw)
    plain = landscape.plane(net, ce, loader, steps=3, workers=1)  # the no-metric hot loop
    threads = landscape.plane(net, ce, loader, steps=3, workers=2)  # two threads stream the loader
    assert threads.workers == 2
    for r in (streamed, resident, plain, threads):
        assert np.max(np.abs(r.loss - full.loss) / np.abs(full.loss)) < 1e-6
    assert np.allclose(streamed.metrics["acc"], full.metrics["acc"], atol=1e-12)


def test_float32_data_for_a_float64_model_and_wrong_width_names_data():
    net = _mlp().double()
    x, y = _data()
    ce = torch.nn.functional.cross_entropy
    res = landscape.plane(net, ce, (x.float(), y), steps=3)
    ref = landscape.plane(net, ce, (x.double(), y), steps=3)
    assert np.allclose(res.loss, ref.loss, rtol=1e-6)
    line = landscape.line(net, ce, (x.float(), y), steps=3)
    assert np.isfinite(line.loss).all()
    with pytest.raises(ValueError, match=r"`data`.*input features"):
        landscape.plane(net, ce, (torch.randn(8, x.shape[1] + 3), y[:8]), steps=3)
