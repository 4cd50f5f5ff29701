"""Tests for the T03/T04 set-up (lossviz.papers.t03_ldr_losses), tiny sizes."""

from __future__ import annotations

import pytest
import torch

from lossviz.papers import t03_ldr_losses as X


def test_noisy_digits_and_classifier():
    d = X.noisy_digits(0.4, seed=0)
    assert len(d.y_train) + len(d.y_test) == 1797
    wrong = d.y_train != d.y_train_clean
    assert torch.equal(wrong, d.flipped)  # symmetric noise never flips to the same class
    assert 0.35 < float(wrong.float().mean()) < 0.45
    run = X.train_classifier(
        d, torch.nn.functional.cross_entropy, hidden=(16,), epochs=2, record_every=1, seed=0
    )
    assert run.epochs.tolist() == [0, 1, 2] and run.test_accuracy.shape == (3,)
    assert run.test_accuracy[-1] > run.test_accuracy[0]
    with pytest.raises(ValueError, match="noise"):
        X.noisy_digits(1.5)
    with pytest.raises(TypeError, match="data"):
        X.train_classifier((d.x_train, d.y_train), torch.nn.functional.cross_entropy)
