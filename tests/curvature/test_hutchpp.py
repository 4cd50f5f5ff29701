"""trace: Hutch++ (Meyer et al. 2021) and Hutchinson against the exact trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


def _rotated(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return (U * torch.as_tensor(eigs, dtype=torch.float64)) @ U.T


def _flat(n=300, seed=0):
    """A flat spectrum: eigenvalues uniform in [1, 2], so no sketch captures much of the trace."""
    g = np.random.default_rng(seed)
    return curvature.MatrixOperator(_rotated(g.uniform(1.0, 2.0, n), seed))


def _low_rank_plus_noise(n=300, seed=0):
    """Ten eigenvalues of 100-1000 on top of a small flat bulk (0.01-0.02)."""
    g = np.random.default_rng(seed)
    eigs = np.concatenate([g.uniform(100.0, 1000.0, 10), g.uniform(0.01, 0.02, n - 10)])
    return curvature.MatrixOperator(_rotated(eigs, seed))


def test_adaptive_hutchpp_is_hutchinson_on_a_flat_spectrum():
    A = _flat()
    exact = float(A.A.trace())
    err = {"adaptive": [], "fixed": [], "hutchinson": []}
    for seed in range(8):
        a = curvature.trace(A, matvecs=30, seed=seed)
        h = curvature.trace(A, method="hutchinson", matvecs=30, seed=seed)
        f = curvature.trace(A, matvecs=30, seed=seed, adaptive=False)
        assert a.estimator == "hutchinson" and f.estimator == "hutch++"
        assert a.matvecs == h.matvecs == f.matvecs == 30
        # the same probes: the fallback *is* Hutchinson's estimate, to the last digit
        assert a.trace == h.trace and a.standard_error == h.standard_error
        err["adaptive"].append(abs(a.trace - exact))
        err["hutchinson"].append(abs(h.trace - exact))
        err["fixed"].append(abs(f.trace - exact))
    # fixed thirds waste the sketch here (the reason for the adaptive default)
    assert np.mean(err["fixed"]) > 1.1 * np.mean(err["hutchinson"]), err


def test_adaptive_hutchpp_deflates_a_low_rank_plus_noise_spectrum():
    A = _low_rank_plus_noise()
    exact = float(A.A.trace())
    for seed in range(4):
        a = curvature.trace(A, matvecs=30, seed=seed)
        h = curvature.trace(A, method="hutchinson", matvecs=30, seed=seed)
        f = curvature.trace(A, matvecs=30, seed=seed, adaptive=False)
        assert a.estimator == "hutch++", a.diagnostics
        assert a.diagnostics["predicted_se_hutchpp_bound"] < a.diagnostics["predicted_se_hutchinson"]
        assert a.trace == pytest.approx(f.trace, rel=1e-12)  # the classical Hutch++ estimate
        assert abs(a.trace - exact) < 1e-3 * exact  # the sketch caught the 10 big eigenvalues
        assert abs(a.trace - exact) < 0.05 * abs(h.trace - exact)
        assert a.standard_error < 0.05 * h.standard_error


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
def test_trace_does_not_depend_on_the_block_size(method):
    A = _low_rank_plus_noise(n=120)
    a = curvature.trace(A, method=method, matvecs=25, seed=2, block=1)
    b = curvature.trace(A, method=method, matvecs=25, seed=2, block=4)
    c = curvature.trace(A, method=method, matvecs=25, seed=2, block=64)
    assert a.matvecs == b.matvecs == c.matvecs == 25
    assert b.trace == pytest.approx(a.trace, rel=1e-10) and c.trace == pytest.approx(a.trace, rel=1e-10)


def test_probes_are_one_stream_in_blocks_of_the_operators_dtype():
    A32 = curvature.MatrixOperator(_rotated(np.linspace(1, 2, 50)).float())
    blocks = list(A32.probes(7, seed=1, block=3))
    assert [b.shape[0] for b in blocks] == [3, 3, 1]
    assert all(b.dtype == torch.float32 for b in blocks)
    one = torch.cat(list(A32.probes(7, seed=1, block=1)))
    assert torch.equal(torch.cat(blocks), one) and torch.equal(A32.random_vectors(7, 1), one)
    assert set(one.unique().tolist()) == {-1.0, 1.0}
    g64 = torch.cat(list(A32.probes(4, seed=1, distribution="gaussian", dtype=torch.float64)))
    g32 = torch.cat(list(A32.probes(4, seed=1, distribution="gaussian")))
    assert g64.dtype == torch.float64 and torch.equal(g64.float(), g32)  # drawn in float64, then cast


def test_sketch_bytes_caps_the_sketch():
    A = _low_rank_plus_noise(n=200)
    r = curvature.trace(A, matvecs=60, seed=0, sketch_bytes=200 * 8 * 5)  # room for 5 rows
    assert r.diagnostics["sketch_size"] == 5 and r.matvecs == 60


_MEMORY_SCRIPT = r"""
import resource, sys, torch
from lossviz import curvature
n = int(sys.argv[1])

class Diagonal(curvature.CurvatureOperator):
    matrix = "diagonal"
    def __init__(self, d):
        self.d, self.size, self.dtype, self.device, self.matvecs = d, d.numel(), d.dtype, d.device, 0
    def _matmat(self, V):
        self.matvecs += V.shape[0]
        return V * self.d

op = Diagonal(torch.linspace(1.0, 2.0, n))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = curvature.trace(op, matvecs=int(sys.argv[2]), seed=0, method=sys.argv[3])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) * 1024, r.diagnostics.get("sketch_size", 0), r.matvecs)
"""


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
def test_trace_peak_memory_is_the_sketch_plus_a_few_vectors(method):
    """Peak RSS of a fresh process (honest: torch allocations are invisible to tracemalloc).

    1e6 float32 parameters, 60 products: the sketch holds 20 vectors (80 MB); the old code drew
    all probes at once in float64 (40 x 8 MB = 320 MB) and orthonormalised a float64 copy.
    """
    import subprocess
    import sys

    n = 1_000_000
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(n), "60", method],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    ).stdout.split()
    grown, sketch, used = int(out[0]), int(out[1]), int(out[2])
    assert used == 60
    vec = 4 * n
    budget = sketch * vec + 24 * vec + 64 * 2**20  # sketch + a few vectors + chunk buffers
    assert grown < budget, (grown / 2**20, budget / 2**20)
    if method == "hutch++":
        assert sketch == 20
    else:
        assert grown < 24 * vec + 64 * 2**20
