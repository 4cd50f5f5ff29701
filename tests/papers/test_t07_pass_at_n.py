"""Set-up of notebook T07 (Chen et al. 2025, pass@N and DCO)."""

import numpy as np
import pytest
import torch

from lossviz.losses import pass_at_n
from lossviz.papers import t07_pass_at_n as t07


def _small_task(seed=0, **kw):
    return t07.answer_task(seed, num_classes=10, dim=8, n_train_per_class=5, n_test_per_class=4, **kw)


def test_answer_task_shapes_and_shared_centres():
    task = _small_task()
    assert task["x_train"].shape == (50, 8) and task["x_test"].shape == (40, 8)
    assert task["x_train"].dtype == torch.float32
    assert sorted(set(task["y_test"].tolist())) == list(range(10))
    # the two splits share the centres but not the noise
    assert not torch.equal(task["x_train"][:4], task["x_test"][:4])
    zero = t07.answer_task(0, num_classes=10, dim=8, noise=0.0, n_train_per_class=1, n_test_per_class=1)
    torch.testing.assert_close(zero["x_train"], zero["x_test"])
    with pytest.raises(ValueError, match="noise"):
        t07.answer_task(0, noise=-1.0)
    with pytest.raises(ValueError, match="n_train_per_class"):
        t07.answer_task(0, n_train_per_class=0)


def test_train_run_records_logits_and_is_seeded():
    task = _small_task(1)
    x0 = task["x_train"].clone()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = t07.train_run(task, loss="dco", n=4, steps=20, record_every=10, hidden=(16,), seed=2)
    b = t07.train_run(task, loss="dco", n=4, steps=20, record_every=10, hidden=(16,), seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(task["x_train"], x0)
    assert list(a.steps) == [0, 10, 20]
    assert a.logits.shape == (3, 40, 10) and a.logits.dtype == torch.float64
    assert torch.equal(a.logits, b.logits)
    c = t07.curves(a, (1, 4, 64))
    assert c.shape == (3, 3) and bool((np.diff(c, axis=1) >= 0).all())
    np.testing.assert_allclose(c[-1, 0], float(pass_at_n(a.logits[-1], a.y_test, 1)))


def test_best_temperature_is_the_grid_argmax():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 20, generator=g, dtype=torch.float64) * 6  # over-confident logits
    y = torch.randint(0, 20, (200,), generator=g)
    best = t07.best_temperature(z, y, n=16)
    brute = [float(pass_at_n(z / t, y, 16)) for t in t07.TAU_GRID]
    assert best["pass_n"] == pytest.approx(max(brute))
    assert best["tau"] == t07.TAU_GRID[int(np.argmax(brute))]
    assert best["tau"] > 1.0  # heating up over-confident random logits helps pass@16
    assert best["pass_1"] == pytest.approx(float(pass_at_n(z, y, 1, tau=best["tau"])))


def test_dco1_equals_ce_helper():
    assert t07._dco1_vs_ce(0) < 1e-10


def test_bad_input():
    task = _small_task()
    with pytest.raises(ValueError, match="loss"):
        t07.train_run(task, loss="mse", steps=1)
    with pytest.raises(ValueError, match="`n`"):
        t07.train_run(task, loss="dco", steps=1)
    with pytest.raises(ValueError, match="`n`"):
        t07.train_run(task, loss="ce", n=4, steps=1)
    with pytest.raises(ValueError, match="steps"):
        t07.train_run(task, steps=0)
    with pytest.raises(ValueError, match="seed"):
        t07.claim_statistics(-1)
