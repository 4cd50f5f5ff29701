"""SharpnessTracker as a train.fit callback: steps recorded, values, warm start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import curvature

from ._helpers import CE, _data, _net


def test_sharpness_tracker_with_fit():
    from lossviz import train

    net = _net(width=8)
    x, y = _data(40)
    tracker = curvature.SharpnessTracker(CE, (x, y), every=5, k=2, seed=0)
    hist = train.fit(net, CE, (x, y), steps=12, lr=0.5, callbacks=[tracker], progress=False)
    res = tracker.result()
    # every 5 steps and at the final step (fit passes final=True to callbacks that accept it)
    assert res.steps.tolist() == [0, 5, 10, 12]
    assert res.eigenvalues.shape == (4, 2)
    assert res.converged.all()
    assert hist.steps("sharpness") == [0, 5, 10, 12]
    assert hist.values("sharpness") == pytest.approx(res.sharpness.tolist())
    assert res.matvecs > 0
    # the recorded value is the top eigenvalue at that step: check the last one by replaying
    net2 = _net(width=8)
    train.fit(net2, CE, (x, y), steps=12, lr=0.5, progress=False)
    lam = torch.linalg.eigvalsh(curvature.exact_hessian(net2, CE, (x, y)).matrix)
    assert res.sharpness[-1] == pytest.approx(float(lam[-1]), rel=1e-8)
    fig = curvature.plot_sharpness(res, lr=0.5)
    assert len(fig.data) == 1


def test_sharpness_tracker_warm_start_saves_products():
    net, (x, y) = _net(width=8), _data(40)
    cold = curvature.SharpnessTracker(CE, (x, y), warm_start=False)
    warm = curvature.SharpnessTracker(CE, (x, y), method="lanczos")
    for step in range(3):
        cold(step, net, None)
        warm(step, net, None)
    np.testing.assert_allclose(warm.result().sharpness, cold.result().sharpness, rtol=1e-8)
    assert warm.result().matvecs < cold.result().matvecs


def test_sharpness_tracker_follows_the_one_callback_contract():
    from lossviz import train

    x, y = _data(40)
    tracker = curvature.SharpnessTracker(CE, (x, y), every=5)
    assert isinstance(tracker, train.Callback)
    train.fit(_net(width=8), CE, (x, y), steps=7, lr=0.1, callbacks=[tracker], progress=False)
    assert tracker.result().steps.tolist() == [0, 5, 7]  # the final step is recorded
    # at= and final=False
    tracker = curvature.SharpnessTracker(CE, (x, y), every=None, at=[2, 3], final=False)
    train.fit(_net(width=8), CE, (x, y), steps=7, lr=0.1, callbacks=[tracker], progress=False)
    assert tracker.result().steps.tolist() == [2, 3]
    # a special solver shares the contract through run_callbacks; a step is never recorded twice
    tracker = curvature.SharpnessTracker(CE, (x, y), every=5)
    net = _net(width=8)
    hist = train.History()
    for step in range(8):
        assert not train.run_callbacks([tracker], step, net, 1.0, hist, final=step == 7)
    tracker(7, net, 1.0, hist, final=True)
    assert tracker.result().steps.tolist() == [0, 5, 7]
    assert hist.steps("sharpness") == [0, 5, 7]
