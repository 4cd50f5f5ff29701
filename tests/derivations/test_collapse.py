"""The track-N sympy derivations (``lossviz.derivations.collapse``) against the library."""

from __future__ import annotations

import numpy as np

from lossviz import collapse


def test_imbalanced_frame_matches_sympy_derivation():
    from lossviz.derivations.collapse import etf_cosine, imbalanced_ufm

    d = imbalanced_ufm()
    counts = np.array([200, 100, 50, 25], dtype=float)
    for lw, lh in [(5e-3, 5e-3), (1e-3, 4e-3)]:
        t = collapse.imbalanced_frame(counts.astype(int), lw, lh)
        n_tot = counts.sum()
        p = np.maximum(0, d.t_fn(counts, n_tot, lw, lh))
        assert np.allclose(t.shrink, p, rtol=1e-12)
        alive = p > 0
        assert np.allclose(t.feature_norms[alive] ** 2, d.h2_fn(counts, n_tot, lw, lh)[alive], rtol=1e-12)
        assert np.allclose(t.classifier_norms[alive] ** 2, d.w2_fn(counts, n_tot, lw, lh)[alive], rtol=1e-12)
    import sympy as sp

    kk = sp.Symbol("K", positive=True)
    assert sp.simplify(etf_cosine() + 1 / (kk - 1)) == 0
