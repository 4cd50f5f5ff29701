"""The face of lossviz.ntk: public names, __all__, deprecation aliases for what moved."""

from __future__ import annotations

import warnings

import pytest

import lossviz
from lossviz import ntk


def test_all_names_exist_and_star_import_works():
    for name in ntk.__all__:
        assert hasattr(ntk, name), name
    ns: dict = {}
    exec("from lossviz.ntk import *", ns)
    assert "empirical" in ns and "Architecture" in ns and "plot_kernel_spectrum" in ns
    assert ntk.plotting.plot_kernel is ntk.plot_kernel
    assert "plot_spectrum" not in ntk.__all__  # renamed (no clash with curvature.plot_spectrum)


@pytest.mark.parametrize("old", ["CenteredTwoLayer", "TwoLayerRun", "train_two_layer"])
def test_paper_code_moved_with_an_alias(old):
    from lossviz.papers import k02_grokking_lazy_rich as k02

    with pytest.warns(DeprecationWarning, match=f"lossviz.ntk.{old} moved to lossviz.papers.k02"):
        obj = getattr(ntk, old)
    assert obj is getattr(k02, old)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute"):
        ntk.does_not_exist  # noqa: B018


def test_family_does_not_import_papers():
    import sys

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import importlib

        importlib.reload(ntk)
    assert lossviz.ntk is sys.modules["lossviz.ntk"]
