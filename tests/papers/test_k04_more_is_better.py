"""lossviz.papers.k04_more_is_better: validation-tuned risk curves."""

from __future__ import annotations

import numpy as np
import torch

from lossviz.papers import k04_more_is_better as k04

torch.set_num_threads(1)


def test_risk_curves_tune_on_validation_not_test():
    g = torch.Generator().manual_seed(0)
    x, y = k04.power_law_task(400, 16, generator=g)
    ridges = np.concatenate([[0.0], np.logspace(-6, 1, 8)])
    rc = k04.risk_curves(
        x[:100], y[:100], x[100:250], y[100:250], x[250:], y[250:], 128, ridges=ridges, draws=2
    )
    assert rc.best == int(np.argmin(rc.val)) and rc.tuned_test == rc.test[rc.best]
    assert 0 < rc.tuned_ratio < 1
    # with a different validation set the choice can move, the test curve cannot
    rc2 = k04.risk_curves(x[:100], y[:100], x[250:], y[250:], x[250:], y[250:], 128, ridges=ridges, draws=2)
    assert np.allclose(rc2.test, rc.test) and rc2.best == int(np.argmin(rc.test))


def test_worst_neighbour_ratio():
    assert k04.worst_neighbour_ratio([4.0, 2.0, 1.0]) == 0.5
    assert k04.worst_neighbour_ratio([1.0, 2.0, 1.0]) == 2.0
