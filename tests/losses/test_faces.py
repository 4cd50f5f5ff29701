"""The face of lossviz.losses: public names, deprecation aliases of the moved paper set-ups."""

from __future__ import annotations

import importlib
import warnings

import pytest

import lossviz.losses as L


def test_all_names_exist_and_no_module_shadows_a_function():
    for name in L.__all__:
        assert hasattr(L, name), name
    # the private modules do not shadow same-named functions (mixup, stablemax)
    assert callable(L.mixup) and callable(L.stablemax)
    ns = {}
    exec("from lossviz.losses import *", ns)
    assert "plotting" in ns and "comp_sum_bound" in ns


@pytest.mark.parametrize(
    "old, module",
    [
        ("latent_classes", "lossviz.papers.t01_contrastive_temperature"),
        ("train_contrastive", "lossviz.papers.t01_contrastive_temperature"),
        ("ContrastiveRun", "lossviz.papers.t01_contrastive_temperature"),
        ("noisy_digits", "lossviz.papers.t03_ldr_losses"),
        ("train_classifier", "lossviz.papers.t03_ldr_losses"),
        ("NoisyDigits", "lossviz.papers.t03_ldr_losses"),
        ("ClassifierRun", "lossviz.papers.t03_ldr_losses"),
    ],
)
def test_moved_names_warn_and_resolve(old, module):
    new = getattr(importlib.import_module(module), old)
    from lossviz.losses import experiments

    for where in (L, experiments):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert getattr(where, old) is new
        assert any(issubclass(x.category, DeprecationWarning) and module in str(x.message) for x in w)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute"):
        L.not_a_loss  # noqa: B018
