"""Tests for lossviz.papers.n04_vci_digits (digits training with feature checkpoints)."""

from __future__ import annotations

import numpy as np
import torch

from lossviz import data
from lossviz.papers import n04_vci_digits as n04


def test_checkpoint_epochs_double():
    assert n04.checkpoint_epochs(8) == [0, 1, 2, 4, 8]


def test_train_digits_records_every_checkpoint_and_the_shuffled_control_memorises():
    src = data.digits(classes=[0, 1, 2, 3, 4])
    run = n04.train_digits(0.0, 0, max_epoch=4, hidden=(32, 16), probe=False, source=src, progress=False)
    assert run.epochs == (0, 1, 2, 4) and len(run.features) == 4 and run.transfer is None
    assert run.features[0].dtype == torch.float64 and run.features[0].shape == (len(src.y), 16)
    assert run.vci[-1] < run.vci[0]  # a few epochs of training already collapse variability
    again = n04.train_digits(0.0, 0, max_epoch=4, hidden=(32, 16), probe=False, source=src, progress=False)
    assert np.array_equal(run.vci, again.vci)  # same seed, same run
    ctrl = n04.train_digits(
        0.0, 0, max_epoch=4, hidden=(32, 16), probe=False, source=src, shuffle_labels=True, progress=False
    )
    assert ctrl.shuffle_labels and ctrl.vci[-1] > run.vci[-1]


def test_transfer_accuracy_is_a_probability():
    from lossviz import models

    tgt = data.digits(classes=[5, 6, 7, 8, 9])
    acc = n04.transfer_accuracy(models.MLP(64, (16,), 5, seed=0), tgt)
    assert 0.2 < acc <= 1.0
