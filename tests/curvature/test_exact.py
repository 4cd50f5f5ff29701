"""exact_hessian against an independent torch.func.hessian reference."""

from __future__ import annotations

import pytest
import torch

from lossviz import curvature

from ._helpers import CE, F64, _data, _net, _reference_hessian


def test_exact_hessian_matches_torch_func_hessian():
    net, (x, y) = _net(), _data()
    H_ref, _ = _reference_hessian(net, CE, x, y)
    res = curvature.exact_hessian(net, CE, (x, y))
    assert res.matrix.dtype == F64
    assert res.matrix.shape == H_ref.shape == (38, 38)
    torch.testing.assert_close(res.matrix, H_ref, atol=1e-12, rtol=1e-10)
    assert res.asymmetry < 1e-12
    assert res.loss == pytest.approx(float(CE(net(x), y).detach()), rel=1e-12)
    assert torch.allclose(res.eigenvalues, torch.linalg.eigvalsh(H_ref), atol=1e-10)
