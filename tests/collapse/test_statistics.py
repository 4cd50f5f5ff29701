"""Tests for lossviz.collapse._statistics (class_statistics streaming, class_means)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import collapse

from ._helpers import random_data


def test_streaming_equals_one_shot_and_nc1_equals_dense_formula():
    x, y, w, b = random_data(3, n_per=40, k=5, d=7)
    one = collapse.class_statistics(x, y, batch_size=10**6)
    batches = [(x[i : i + 13], y[i : i + 13]) for i in range(0, len(y), 13)]
    stream = collapse.class_statistics(iter(batches))
    small = collapse.class_statistics(x, y, batch_size=7)
    assert stream.num_batches == len(batches)
    for s in (stream, small):
        assert torch.allclose(s.means, one.means, atol=1e-12)
        assert torch.allclose(s.within, one.within, atol=1e-11)
        assert torch.allclose(s.between, one.between, atol=1e-11)
    # direct two-pass dense reference (numpy)
    xn, yn = x.numpy(), y.numpy()
    mu = np.stack([xn[yn == k].mean(0) for k in range(5)])
    r = xn - mu[yn]
    sw = r.T @ r / len(yn)
    c = mu - mu.mean(0)
    sb = c.T @ c / 5
    assert np.allclose(one.within.numpy(), sw, atol=1e-11)
    assert np.allclose(one.total().numpy(), np.cov(xn.T, bias=True), atol=1e-10)
    ref = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-8, hermitian=True)) / 5
    m = collapse.nc_metrics(x, y, batch_size=11)
    assert m.nc1 == pytest.approx(ref, rel=1e-8)
    assert m.trace_ratio == pytest.approx(np.trace(sw) / np.trace(sb), rel=1e-10)


def test_class_means_matches_statistics_and_is_differentiable():
    x, y, _, _ = random_data(1)
    assert torch.allclose(collapse.class_means(x, y), collapse.class_statistics(x, y).means, atol=1e-12)
    xf = x.float().requires_grad_(True)
    m = collapse.class_means(xf, y)
    assert m.dtype == torch.float32
    m.sum().backward()
    assert torch.allclose(xf.grad, torch.ones_like(xf) / 12)  # 12 samples a class
    with pytest.raises(ValueError, match=r"class\(es\) \[4\] have no samples in `labels`"):
        collapse.class_means(x, y, num_classes=5)
    with pytest.raises(ValueError, match="different lengths"):
        collapse.class_means(x, y[:-1])
