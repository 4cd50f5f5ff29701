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


def test_compare_losses_seed_means():
    fns = {"CE": torch.nn.functional.cross_entropy}
    c = X.compare_losses(fns, [0, 1], noise=0.4, hidden=(8,), epochs=2, record_every=1, progress=False)
    assert set(c.runs) == {("CE", 0), ("CE", 1)}
    want = (c.runs["CE", 0].final_test_accuracy + c.runs["CE", 1].final_test_accuracy) / 2
    assert c.final("CE") == pytest.approx(want)
    assert 0 <= c.memorised("CE") <= 1 and c.at_epoch("CE", 2) == pytest.approx(want)
    assert c.best("CE") >= c.final("CE")
    with pytest.raises(KeyError, match="GCE"):
        c.final("GCE")
    with pytest.raises(TypeError, match="loss_fns"):
        X.compare_losses({}, [0])


def test_train_classifier_records_through_fit_every_epoch_and_the_last():
    d = X.noisy_digits(0.4, seed=0)
    run = X.train_classifier(
        d, torch.nn.functional.cross_entropy, hidden=(8,), epochs=7, record_every=5, seed=0
    )
    assert run.epochs.tolist() == [0, 5, 7]
    again = X.train_classifier(
        d, torch.nn.functional.cross_entropy, hidden=(8,), epochs=7, record_every=5, seed=0
    )
    assert (again.test_accuracy == run.test_accuracy).all()  # same seed, same run
