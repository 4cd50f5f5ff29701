"""lossviz.papers.l04_hessian_outliers: the set-up and statistics of the L04 claim check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import curvature
from lossviz.papers import l04_hessian_outliers as l04


def test_lead_in_span():
    assert l04.lead_in_span(np.array([0.9, 0.8, 0.2, 0.9])) == 2
    assert l04.lead_in_span(np.array([0.9, 0.8])) == 2
    assert l04.lead_in_span(np.array([0.1, 0.8])) == 0


@pytest.fixture(scope="module")
def trained():
    return l04.outlier_case(2, 16, data_seed=0, init_seed=1, return_model=True)


def test_outlier_case_statistics_are_those_of_the_exact_spectrum(trained):
    case, ds, net = trained
    assert case.loss < 0.02 and case.steps > 0
    lam = torch.linalg.eigvalsh(curvature.exact_hessian(net, l04.CE, ds).matrix).flip(0).numpy()
    np.testing.assert_allclose(case.eigenvalues, lam, atol=1e-10)
    assert case.num_params == 10 * 16 + 16 + 16 * 2 + 2
    assert case.gap_ratio == pytest.approx(lam[1] / lam[2])
    assert case.bulk_mass == pytest.approx(np.abs(lam[2:]).sum())
    assert case.outlier_mass == pytest.approx(lam[:2].sum())
    assert case.bulk_median == pytest.approx(np.median(np.abs(lam[2:])) / lam[1])
    assert case.energy.shape == (8,) and np.all((case.energy >= 0) & (case.energy <= 1 + 1e-9))
    V = case.eigenvectors
    torch.testing.assert_close(V.T @ V, torch.eye(V.shape[0], dtype=V.dtype), atol=1e-9, rtol=0)
    assert l04.one_per_class(case)  # two well-separated classes: two outliers


def test_untrained_k8_has_no_outlier_per_class():
    case = l04.outlier_case(8, 32, data_seed=8, init_seed=112, trained=False)
    assert case.steps == 0 and not case.trained
    assert not l04.one_per_class(case)
