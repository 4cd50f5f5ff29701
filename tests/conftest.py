"""Shared fixtures for the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def bn_model():
    """A model with BatchNorm + Dropout, warm running stats, grads set and one frozen parameter."""
    from lossviz.testing import BNDropoutNet

    return BNDropoutNet()
