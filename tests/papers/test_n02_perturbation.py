"""Tests for lossviz.papers.n02_perturbation (the perturbed UFM of Tirer, Huang & Niles-Weed)."""

from __future__ import annotations

import pytest
import torch

from lossviz import collapse
from lossviz.papers import n02_perturbation as n02

from ..collapse._helpers import F64, random_data


def test_fit_perturbed_ufm_stationarity_and_limits():
    x, y, _, _ = random_data(4, n_per=10, k=3, d=4, spread=1.0)
    x = x / x.square().sum(1).mean().sqrt()
    r = n02.fit_perturbed_ufm(x, y, beta=0.1, lambda_W=1e-2, lambda_H=1e-2)
    assert r.converged, r.grad_norm
    # independent check: the full objective's gradient in (W, H) vanishes at the returned point
    n = len(y)
    w = r.weight.clone().requires_grad_(True)
    h = r.features.T.clone().requires_grad_(True)
    Y = torch.nn.functional.one_hot(y, 3).to(F64).T
    obj = (
        0.5 / n * (w @ h - Y).square().sum()
        + 0.5e-2 * w.square().sum()
        + 0.5e-2 / n * h.square().sum()
        + 0.05 / n * (h - x.T).square().sum()
    )
    gw, gh = torch.autograd.grad(obj, [w, h])
    assert gw.abs().max() < 1e-7 and gh.abs().max() < 1e-9
    assert obj.item() == pytest.approx(r.loss, rel=1e-10)
    nc0 = collapse.nc_metrics(x, y).nc1
    far = n02.fit_perturbed_ufm(x, y, beta=1e4)
    near = n02.fit_perturbed_ufm(x, y, beta=1e-4)
    assert collapse.nc_metrics(far.features, y).nc1 == pytest.approx(nc0, rel=1e-2)
    assert collapse.nc_metrics(near.features, y).nc1 < 1e-6 * nc0
    with pytest.raises(ValueError, match="different lengths"):
        n02.fit_perturbed_ufm(x, y[:-1], beta=1.0)
    with pytest.raises(ValueError, match="lambda_H \\+ beta"):
        n02.fit_perturbed_ufm(x, y, beta=0.0, lambda_H=0.0)


def test_old_name_is_a_deprecation_alias():
    from lossviz import collapse

    with pytest.warns(DeprecationWarning, match="n02_perturbation"):
        assert collapse.fit_perturbed_ufm is n02.fit_perturbed_ufm


def test_stationarity_is_small_at_the_optimum_and_large_elsewhere():
    x, y, _, _ = random_data(4, n_per=10, k=3, d=4, spread=1.0)
    r = n02.fit_perturbed_ufm(x, y, beta=10.0)
    assert n02.stationarity(r, x) < 1e-7
    import dataclasses

    bad = dataclasses.replace(r, weight=r.weight * 1.1)
    assert n02.stationarity(bad, x) > 1e-4
    with pytest.raises(ValueError, match="h0"):
        n02.stationarity(r, x[:-1])
