"""lossviz.landscape._trajectory: PCA and given directions, recorder snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.testing import assert_model_unchanged

from ._common import _data, _mlp

F = nn.functional


def test_trajectory_pca_plane_and_origin():
    net = _mlp(torch.float64)
    center = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    P = center.numel()
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(P, generator=g, dtype=torch.float64), torch.randn(P, generator=g, dtype=torch.float64)
    t = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    path = center + (1 - t) * 3 * u + torch.sin(3 * t) * (1 - t) * v  # ends at the model
    with assert_model_unchanged(net):
        res = landscape.trajectory(net, path)
    assert res.coords.shape == (20, 2)
    np.testing.assert_allclose(res.coords[-1], 0.0, atol=1e-10)
    assert res.residual.max() < 1e-8
    assert res.explained_variance.sum() == pytest.approx(1.0)
    assert abs(res.directions.cosine[0, 1]) < 1e-10
    # plane on the PCA directions reproduces the path's end point at the origin
    data = _data(dtype=torch.float64)
    (a0, a1), (b0, b1) = res.extent()
    pl = landscape.plane(net, F.cross_entropy, data, res.directions, extent=((a0, a1), (b0, b1)), steps=5)
    fig = landscape.plot_plane(pl, trajectory=res)
    assert any(tr_.name == "trajectory" for tr_ in fig.data)
    # given directions: least-squares coordinates
    given = landscape.trajectory(net, list(path), directions=res.directions)
    np.testing.assert_allclose(given.coords, res.coords, atol=1e-8)
    dicts = [
        {
            k: row[i : i + p.numel()].reshape(p.shape)
            for (k, p), i in zip(net.named_parameters(), [0, 32, 40, 104, 112, 136])
        }
        for row in path
    ]
    np.testing.assert_allclose(landscape.trajectory(net, dicts).coords, res.coords, atol=1e-8)


def test_trajectory_bad_path():
    net = _mlp()
    with pytest.raises(ValueError, match="path"):
        landscape.trajectory(net, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="path"):
        landscape.trajectory(net, [])


def test_trajectory_from_recorder_snapshots():
    from lossviz import data, models, train

    x, y = data.two_moons(64, seed=0)
    net = models.MLP(2, (8,), 2, seed=0)
    rec = train.Recorder(every=5, parameters=True)
    hist = train.fit(net, F.cross_entropy, (x, y), steps=40, lr=0.5, callbacks=[rec], progress=False)
    with assert_model_unchanged(net):
        path = landscape.trajectory(net, hist.values("parameters"), steps=hist.steps("parameters"))
    assert path.coords.shape == (9, 2) and list(path.steps) == list(range(0, 41, 5))
    np.testing.assert_allclose(path.coords[-1], 0.0, atol=1e-6)
    assert path.explained_variance[0] > 0.5
