"""lossviz.papers.l02_fractal_trainability: zoomed trainability views, their dimensions, the claim's test."""

from __future__ import annotations

import numpy as np
import pytest

from lossviz import landscape
from lossviz.papers import l02_fractal_trainability as l02


def test_zoom_views_zoom_into_the_boundary_of_the_previous_view():
    views = l02.zoom_views(resolution=24, steps=30, zooms=2, factor=4.0, workers=1)
    assert len(views) == 3
    for prev, nxt in zip(views, views[1:]):
        (a0, a1), (b0, b1) = prev.extent
        (c0, c1), (d0, d1) = nxt.extent
        assert (c1 - c0) == pytest.approx((a1 - a0) / 4) and (d1 - d0) == pytest.approx((b1 - b0) / 4)
        # centred on a boundary pixel of the previous view: the next view contains both outcomes
        assert a0 <= (c0 + c1) / 2 <= a1 and b0 <= (d0 + d1) / 2 <= b1
        assert nxt.converged.any() and not nxt.converged.all()
    assert views[0].extent == (l02.VIEW[0], l02.VIEW[1])


def test_zoom_views_caps_tail_at_the_number_of_steps():
    (v,) = l02.zoom_views(resolution=8, steps=3, zooms=0, workers=1)
    assert v.tail == 3 and v.steps == 3
    (w,) = l02.zoom_views(resolution=8, steps=30, zooms=0, workers=1)
    assert w.tail == 20


def test_view_dimensions_is_box_counting_of_each_view():
    views = l02.zoom_views(resolution=24, steps=20, zooms=1, workers=1)
    dims = l02.view_dimensions(views)
    for v, d in zip(views, dims):
        assert d.dimension == landscape.box_counting_dimension(v.converged).dimension


def test_fractal_claim_is_strict_and_needs_every_view():
    assert l02.fractal_claim([1.2, 1.5, 1.8])
    assert not l02.fractal_claim([1.2, 1.05, 1.8])
    assert not l02.fractal_claim([1.1, 1.5])  # strictly above 1.1
    assert not l02.fractal_claim([1.5, 1.95])
    assert not l02.fractal_claim([1.5, float("nan")])
    d = landscape.box_counting_dimension(l02.estimator_controls(64)["disc"])
    assert l02.fractal_claim([d]) is False
    with pytest.raises(ValueError, match="dimensions"):
        l02.fractal_claim([])


def test_estimator_controls_separate_smooth_from_space_filling():
    for seed in (0, 1, 2):
        imgs = l02.estimator_controls(128, seed=seed)
        assert landscape.box_counting_dimension(imgs["disc"]).dimension < 1.1
        assert landscape.box_counting_dimension(imgs["random"]).dimension > 1.9
    np.testing.assert_array_equal(
        l02.estimator_controls(32, seed=3)["random"], l02.estimator_controls(32, seed=3)["random"]
    )
    with pytest.raises(ValueError, match="n"):
        l02.estimator_controls(4)


def test_a_short_training_horizon_has_a_smooth_boundary():
    # the notebook's in-domain control at a smaller resolution: 3 GD steps give a smooth boundary
    st = l02.claim_statistics(0, steps=40, control_steps=3, resolution=64, zooms=1, workers=1)
    assert all(d < 1.1 for d in st["control_dimensions"]), st["control_dimensions"]
    assert set(st) == {"views", "dimensions", "control_views", "control_dimensions", "disc", "random"}
    assert len(st["views"]) == len(st["control_views"]) == 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="zooms"):
        l02.zoom_views(zooms=-1)
    with pytest.raises(ValueError, match="factor"):
        l02.zoom_views(factor=0.5)
    with pytest.raises(ValueError, match="steps"):
        l02.zoom_views(steps=0)
