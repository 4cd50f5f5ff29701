"""trace: Hutch++ (Meyer et al. 2021) and Hutchinson against the exact trace."""

from __future__ import annotations

import numpy as np
import pytest

from lossviz import curvature

from ._helpers import CE, _data, _net, _reference_hessian


def test_hutchpp_is_exact_when_the_sketch_spans_everything():
    net, (x, y) = _net(), _data()
    H_ref, _ = _reference_hessian(net, CE, x, y)
    n = H_ref.shape[0]
    res = curvature.trace(net, CE, (x, y), matvecs=3 * n, seed=0)
    assert res.trace == pytest.approx(float(H_ref.trace()), rel=1e-10, abs=1e-10)
    assert res.standard_error < 1e-10
    assert res.matvecs == 3 * n
    assert res.method == "hutch++"


@pytest.mark.parametrize("method,m", [("hutchinson", 400), ("hutch++", 60)])
def test_trace_estimators_are_unbiased_within_their_standard_error(method, m):
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    exact = float(H_ref.trace())
    z = []
    for seed in range(6):
        r = curvature.trace(net, CE, (x, y), method=method, matvecs=m, seed=seed)
        assert r.matvecs == m
        assert r.standard_error > 0
        z.append((r.trace - exact) / r.standard_error)
    z = np.array(z)
    assert np.all(np.abs(z) < 5), z
    # the standard error is not absurdly large either: the errors are not all tiny compared with it
    assert np.abs(z).max() > 0.05, z


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    exact = float(H_ref.trace())
    errs = {m: [] for m in ("hutch++", "hutchinson")}
    for seed in range(5):
        for method in errs:
            errs[method].append(
                abs(curvature.trace(net, CE, (x, y), method=method, matvecs=30, seed=seed).trace - exact)
            )
    assert np.mean(errs["hutch++"]) < np.mean(errs["hutchinson"])


def test_trace_seeded():
    net, (x, y) = _net(), _data()
    a = curvature.trace(net, CE, (x, y), seed=3, matvecs=9)
    b = curvature.trace(net, CE, (x, y), seed=3, matvecs=9)
    c = curvature.trace(net, CE, (x, y), seed=4, matvecs=9)
    assert a.trace == b.trace and a.trace != c.trace
