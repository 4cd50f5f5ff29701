"""Set-up of notebook T09 (Zheng et al. 2023; Ng & Jordan 2001)."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from lossviz.papers import t09_discriminative_generative as t09


def test_exact_error_matches_monte_carlo():
    prob = t09.problem("dup", 16)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal(16), 0.3
    x, y = t09.sample(prob, 200_000, rng)
    mc = float(((x @ w + b > 0).astype(int) != y).mean())
    assert t09.linear_error(w, b, prob) == pytest.approx(mc, abs=5e-3)


def test_bayes_errors_closed_form():
    # easy mode: Delta^2 = 2 + 2d
    assert t09.bayes_error(t09.problem("easy", 16)) == pytest.approx(norm.cdf(-math.sqrt(34) / 2))
    assert t09.bayes_error(t09.problem("dilute", 64)) == pytest.approx(norm.cdf(-math.sqrt(8) / 2))
    dup = t09.problem("dup", 64)
    assert t09.nb_asymptotic_error(dup) > t09.bayes_error(dup) + 0.02
    # without correlations NB's limit is the Bayes rule
    easy = t09.problem("easy", 32)
    assert t09.nb_asymptotic_error(easy) == pytest.approx(t09.bayes_error(easy), rel=1e-9)


def test_nb_is_the_bayes_rule_with_enough_data_and_grid():
    prob = t09.problem("easy", 16)
    x, y = t09.sample(prob, 100_000, np.random.default_rng(1))
    assert t09.linear_error(*t09.fit_nb(x, y), prob) == pytest.approx(t09.bayes_error(prob), abs=2e-4)
    g = t09.m_grid(16)
    assert g[0] == 4 and g[-1] <= 192 and all(v % 2 == 0 for v in g) and all(np.diff(g) > 0)
    with pytest.raises(ValueError, match="kind"):
        t09.problem("hard", 8)


def test_m_star_is_seeded():
    prob = t09.problem("easy", 16)
    a, b = t09.m_star(prob, 0), t09.m_star(prob, 0)
    assert a["nb"] == b["nb"] and a["lr"] == b["lr"] and a["curve"] == b["curve"]
    assert a["nb"] < a["lr"]
