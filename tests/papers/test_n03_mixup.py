"""Tests for lossviz.papers.n03_mixup (mixup training and the geometry of cross-class mixes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz.papers import n03_mixup as n03
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ..collapse._helpers import F64


def test_mixup_geometry_on_a_linear_map_and_model_unchanged():
    # identity "body": the feature of a mix is the mix of the inputs; with every input at its class
    # mean and lam = 1/2 each mix sits exactly at the midpoint of the segment between two means.
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(2, 3, dtype=F64))
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], dtype=F64)
    y = torch.arange(3).repeat(2)
    x = pts[y]
    with assert_model_unchanged(net):
        g = n03.mixup_geometry(net, x, y, "1", lam_range=(0.5, 0.5), num_mixes=200)
    mids = (pts[g.class_a] + pts[g.class_b]) / 2
    assert torch.allclose(g.features, mids)
    assert np.allclose(g.segment_distance, 0.0) and np.allclose(g.radial, 1.0)
    z = net(mids).detach()
    gap = (z.gather(1, g.class_a[:, None]) - z.gather(1, g.class_b[:, None])).abs().squeeze(1)
    assert np.allclose(g.logit_gap, gap.numpy())
    bn = BNDropoutNet()
    xb = torch.randn(30, 4)
    yb = torch.arange(3).repeat(10)
    with assert_model_unchanged(bn):
        gb = n03.mixup_geometry(bn, xb, yb, "head", num_mixes=100, seed=1)
    assert gb.features.shape[1] == 8 and (gb.class_a != gb.class_b).all()
    assert 0.4 <= float(gb.lam.min()) and float(gb.lam.max()) <= 0.6


def test_train_mixup_trains_and_leaves_no_grad():
    from lossviz import models

    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)
    x = 4 * torch.randn(3, 5, generator=g)[y] + torch.randn(60, 5, generator=g)
    net = models.MLP(5, (16,), 3, seed=0)
    net.eval()
    losses = n03.train_mixup(net, x, y, 3, steps=60, lr=1e-2, seed=0)
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in net.parameters()) and not net.training
    base = n03.train_mixup(models.MLP(5, (16,), 3, seed=0), x, y, 3, mix=False, loss="mse", steps=60, lr=1e-2)
    assert base[-1] < base[0]


def test_train_mixup_is_fit_with_a_mixup_transform_and_same_seed_same_run():
    from lossviz import losses, models, train

    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat(10)
    x = 3 * torch.randn(3, 4, generator=g)[y] + torch.randn(30, 4, generator=g)
    a, b, c = (models.MLP(4, (8,), 3, seed=0) for _ in range(3))
    la = n03.train_mixup(a, x, y, 3, steps=15, seed=2)
    lb = n03.train_mixup(b, x, y, 3, steps=15, seed=2)
    assert la == lb and len(la) == 15
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # the same run spelled out with train.fit
    hist = train.fit(
        c,
        losses.soft_cross_entropy,
        (x, y),
        steps=15,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=5e-4,
        schedule="cosine",
        transform=n03.mixup_transform(3, 1.0),
        seed=2,
        progress=False,
    )
    assert hist.loss[:15] == la
    assert n03.train_mixup(models.MLP(4, (8,), 3, seed=0), x, y, 3, steps=15, seed=3) != la


def test_old_collapse_names_still_work_with_a_deprecation_warning():
    from lossviz import collapse

    for old, new in (
        ("train_mixup", n03.train_mixup),
        ("mixup_geometry", n03.mixup_geometry),
        ("MixupGeometry", n03.MixupGeometry),
    ):
        with pytest.warns(DeprecationWarning, match=f"collapse.{old} moved to lossviz.papers.n03_mixup"):
            assert getattr(collapse, old) is new
    assert "train_mixup" not in collapse.__all__


def test_mixup_geometry_plot_has_a_lambda_colour_bar():
    import matplotlib.pyplot as plt

    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(2, 3, dtype=F64))
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], dtype=F64)
    y = torch.arange(3).repeat(4)
    x = pts[y] + 0.1 * torch.randn(12, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    geo = n03.mixup_geometry(net, x, y, "1", num_mixes=100)
    fig = geo.plot(labels=y, classifier=net[1])
    mixes = [t for t in fig.data if t.name == "cross-class mixes"][0]
    assert mixes.marker.colorbar.title.text == "lambda"
    assert fig.layout.xaxis.title.text == "feature 1" and fig.layout.yaxis.title.text == "feature 2"
    assert any(t.name == "decision boundaries" for t in fig.data)
    plt.close("all")
    mfig = geo.plot(backend="matplotlib", labels=y)
    assert plt.get_fignums() == [] and mfig.axes[-1].get_ylabel().startswith("lambda")


def test_toy_data_and_network_are_seeded():
    a, b = n03.toy_data(3, n_per_class=5), n03.toy_data(3, n_per_class=5)
    assert torch.equal(a.x, b.x) and a.x.shape == (15, 10)
    assert torch.allclose(a.info["means"].norm(dim=1).double(), torch.full((3,), 6.0, dtype=F64))
    n1, n2 = n03.toy_network(1), n03.toy_network(1)
    assert all(torch.equal(p, q) for p, q in zip(n1.parameters(), n2.parameters()))
    assert n1(a.x).shape == (15, 3) and n1[1].head.in_features == 2


def test_train_mixup_same_seed_same_model_with_dropout_and_global_rng_untouched():
    def make():
        torch.manual_seed(5)  # the same initial weights; the runs must not depend on the global RNG
        return torch.nn.Sequential(
            torch.nn.Linear(2, 16), torch.nn.Dropout(0.3), torch.nn.ReLU(), torch.nn.Linear(16, 3)
        )

    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 3
    runs = []
    for global_seed in (0, 1):
        net = make()
        torch.manual_seed(global_seed)
        state = torch.random.get_rng_state()
        n03.train_mixup(net, x, y, 3, steps=5, seed=3)
        assert torch.equal(torch.random.get_rng_state(), state)
        runs.append([p.detach().clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_mixup_geometry_with_tuple_and_dict_outputs():
    """REVIEW B10: models returning (logits, aux) or {"logits": ...} give the same geometry."""

    class Wrap(torch.nn.Module):
        def __init__(self, net, kind):
            super().__init__()
            self.net, self.kind = net, kind

        def forward(self, x):
            out = self.net(x)
            return (out, out.sum()) if self.kind == "tuple" else {"logits": out, "hidden": x}

    torch.manual_seed(0)
    net = BNDropoutNet(dtype=F64)
    x, y = torch.randn(40, 4), torch.arange(40) % 3  # float32 inputs for a float64 model: cast
    ref = n03.mixup_geometry(net, x.double(), y, "head", num_mixes=100, seed=2)
    for kind in ("tuple", "dict"):
        w = Wrap(net, kind)
        with assert_model_unchanged(w):
            g = n03.mixup_geometry(w, x, y, "net.head", num_mixes=100, seed=2)
        assert np.allclose(g.logit_gap, ref.logit_gap) and g.accuracy == ref.accuracy
