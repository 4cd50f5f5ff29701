import numpy as np
import pytest
import torch

from lossviz import stats


def test_loglog_slope_recovers_a_power_law():
    x = np.array([16, 64, 256, 1024])
    fit = stats.loglog_slope(x, 3.0 * x**-0.5)
    assert fit.slope == pytest.approx(-0.5) and fit.r2 == pytest.approx(1.0)
    assert np.allclose(fit.predict(x), 3.0 * x**-0.5)
    noisy = stats.loglog_slope(x, 3.0 * x**-0.5 * np.array([1.2, 0.8, 1.1, 0.9]))
    assert noisy.r2 < 1.0


@pytest.mark.parametrize(
    "x,y,match",
    [([1, 2], [1, 0], "y"), ([1], [1], "2 points"), ([1, 2, 3], [1, 2], "values"), ([2, 2], [1, 3], "equal")],
)
def test_loglog_slope_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        stats.loglog_slope(x, y)


def test_cosine_and_gram_matrices():
    v = torch.tensor([[3.0, 4.0], [4.0, -3.0], [1.0, 0.0]])
    c = stats.cosine_matrix(v)
    assert c.dtype == np.float64 and np.allclose(np.diag(c), 1) and abs(c[0, 1]) < 1e-12
    assert np.allclose(stats.gram_matrix(v), (v @ v.T).double().numpy())
    with pytest.raises(ValueError, match="zero rows"):
        stats.cosine_matrix([[0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="2-D"):
        stats.cosine_matrix([1.0, 2.0])
