"""lossviz.ntk._snapshots: NTKSnapshots follows the one callback contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import ntk

from ._util import F64, _circle, _rel

torch.set_num_threads(1)


# ---------------------------------------------------------------- callback


def test_ntk_snapshots_with_fit():
    from lossviz import train

    net = ntk.parametrize((2, 64, 1), "standard", seed=0, dtype=F64)
    x = _circle(10)
    y = torch.sin(3 * torch.atan2(x[:, 1], x[:, 0]))[:, None]
    snaps = ntk.NTKSnapshots(x, every=10, targets=y)
    hist = train.fit(
        net,
        lambda out, t: 0.5 * (out - t).pow(2).mean(),
        (x, y),
        steps=30,
        lr=0.5,
        callbacks=[snaps],
        progress=False,
    )
    res = snaps.result()
    assert list(res.steps) == [0, 10, 20, 30] and hist.steps("ntk") == [0, 10, 20, 30]
    assert res.relative_change[0] == 0 and res.relative_change[-1] > 0
    assert res.alignment.shape == (4,) and np.isnan(res.change_alignment[0])
    # snapshots agree with a direct computation at the end of training
    assert _rel(res.kernels[-1], ntk.empirical(net, x).kernel) < 1e-12
    fig = ntk.plot_snapshots(res)
    assert len(fig.data) == 2


def test_ntk_snapshots_record_the_final_step():
    """The one callback contract: a 7-step fit with every=5 records [0, 5, 7] (was [0, 5])."""
    from lossviz import train

    net = ntk.parametrize((2, 16, 1), "ntk", seed=0, dtype=F64)
    x = _circle(6)
    y = x[:, :1] * x[:, 1:]
    snaps = ntk.NTKSnapshots(x, every=5)
    assert isinstance(snaps, train.Callback)
    hist = train.fit(net, lambda o, t: (o - t).pow(2).mean(), (x, y), steps=7, lr=0.1, callbacks=[snaps],
                     progress=False)  # fmt: skip
    assert snaps.result().steps.tolist() == [0, 5, 7] and hist.steps("ntk") == [0, 5, 7]
    only_at = ntk.NTKSnapshots(x, every=None, at=[3], final=False)
    train.fit(net, lambda o, t: (o - t).pow(2).mean(), (x, y), steps=7, lr=0.1, callbacks=[only_at],
              progress=False)  # fmt: skip
    assert only_at.steps == [3]
    with pytest.raises(ValueError, match="every"):
        ntk.NTKSnapshots(x, every=None)
