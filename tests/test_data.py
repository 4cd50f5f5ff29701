import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import data

GENERATORS = {
    "gaussian_mixture": lambda **kw: data.gaussian_mixture(10, 3, 4, **kw),
    "blobs": lambda **kw: data.blobs(50, 3, **kw),
    "two_moons": lambda **kw: data.two_moons(40, **kw),
    "spirals": lambda **kw: data.spirals(60, 3, **kw),
    "circle": lambda **kw: data.circle(16, random=True, **kw),
    "sphere": lambda **kw: data.sphere(20, 4, **kw),
    "teacher_student": lambda **kw: data.teacher_student(30, 5, teacher="relu", noise=0.1, **kw),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_seeded_and_dtype(name):
    make = GENERATORS[name]
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    d = make(seed=1, dtype=torch.float64)
    assert d.x.dtype == torch.float64
    assert torch.allclose(d.x.float(), a.x)
    x, y = a  # unpacks
    assert x.shape[0] == y.shape[0] == a.n


def test_seed_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    data.gaussian_mixture(5, 2, 2, seed=3)
    assert torch.equal(torch.rand(2), expected)


def test_imbalanced_counts():
    assert data.imbalanced_counts(200, 10, 100)[0] == 200
    assert data.imbalanced_counts(200, 10, 100)[-1] == 2
    c = data.imbalanced_counts(100, 4, 1.0)
    assert c == [100] * 4
    assert data.imbalanced_counts(200, 4, 10, profile="step") == [200, 200, 20, 20]
    counts = data.imbalanced_counts(200, 10, 10)
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_gaussian_mixture_counts_and_means():
    ds = data.gaussian_mixture(
        50, 4, 6, imbalance=8, noise=0.0, orthogonal_means=True, separation=2.0, seed=0
    )
    counts = torch.bincount(ds.y).tolist()
    assert counts == ds.info["counts"] == data.imbalanced_counts(50, 4, 8)
    means = ds.info["means"].double()
    assert torch.allclose(means @ means.T, 4.0 * torch.eye(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(ds.x.double(), means[ds.y], atol=1e-6)  # noise 0: points at their means


def test_blobs_margin():
    ds = data.blobs(300, 5, margin=0.7, seed=4, dtype=torch.float64)
    s = ds.x @ ds.info["w"]
    sign = 2 * ds.y.double() - 1
    assert (sign * s).min() >= 0.35 - 1e-12


def test_modular_arithmetic_table():
    split = data.modular_arithmetic(7, "add", train_fraction=0.5, seed=0)
    xtr, ytr, xte, yte = split
    assert xtr.shape[1] == 14 and len(ytr) + len(yte) == 49
    pairs = torch.cat([split.train.info["pairs"], split.test.info["pairs"]])
    labels = torch.cat([ytr, yte])
    assert torch.equal(labels, (pairs[:, 0] + pairs[:, 1]) % 7)
    assert torch.equal(xtr[:, :7].argmax(1), split.train.info["pairs"][:, 0])
    div = data.modular_arithmetic(7, "div", encoding="index", seed=0)
    p = torch.cat([div.train.x, div.test.x])
    lab = torch.cat([div.train.y, div.test.y])
    assert torch.equal((lab * p[:, 1]) % 7, p[:, 0])


def test_digits():
    ds = data.digits()
    assert ds.x.shape == (1797, 64) and int(ds.y.max()) == 9
    sub = data.digits(classes=[3, 5], standardize=False)
    assert set(sub.y.tolist()) == {0, 1} and sub.x.max() <= 16
    assert abs(ds.x.mean().item()) < 1e-5


def test_teacher_student_linear():
    ds = data.teacher_student(100, 8, teacher="linear", dtype=torch.float64, seed=1)
    beta = ds.info["beta"]
    assert torch.allclose(ds.y, ds.x @ beta / math.sqrt(8), atol=1e-12)


def test_train_test_split_stratified():
    ds = data.gaussian_mixture(40, 3, 2, seed=0)
    split = data.train_test_split(ds, 0.25, seed=0)
    assert torch.bincount(split.test.y).tolist() == [10, 10, 10]
    assert len(split.train.y) == 90


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: data.gaussian_mixture(10, 1), ValueError, "num_classes"),
        (lambda: data.gaussian_mixture(10, 3, imbalance=0.5), ValueError, "imbalance"),
        (
            lambda: data.gaussian_mixture(10, 3, 2, means=torch.full((3, 2), float("nan"))),
            ValueError,
            "means",
        ),
        (lambda: data.gaussian_mixture(10, 3, 2, means=torch.zeros(2, 2)), ValueError, "means"),
        (lambda: data.gaussian_mixture(10, 3, counts=[1, 2]), ValueError, "counts"),
        (lambda: data.gaussian_mixture(10, 5, 2, orthogonal_means=True), ValueError, "orthogonal_means"),
        (lambda: data.two_moons(10, device="gpu7"), ValueError, "device"),
        (lambda: data.two_moons(10, dtype=torch.int64), TypeError, "dtype"),
        (lambda: data.two_moons(10, noise=float("inf")), ValueError, "noise"),
        (lambda: data.two_moons(1), ValueError, "n"),
        (lambda: data.two_moons(10, seed=-1), ValueError, "seed"),
        (lambda: data.modular_arithmetic(7, "pow"), ValueError, "op"),
        (lambda: data.modular_arithmetic(7, train_fraction=1.0), ValueError, "train_fraction"),
        (lambda: data.digits(classes=[3]), ValueError, "classes"),
        (lambda: data.teacher_student(10, 3, teacher="cubic"), ValueError, "teacher"),
        (lambda: data.imbalanced_counts(10, 3, 0.9), ValueError, "ratio"),
        (lambda: data.sphere(10, 1), ValueError, "dim"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 6), st.floats(1.0, 50.0), st.integers(1, 30))
def test_imbalance_profile_properties(k, ratio, n_max):
    counts = data.imbalanced_counts(n_max, k, ratio)
    assert len(counts) == k and counts[0] == n_max and min(counts) >= 1
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_teacher_module_is_evaluated_in_eval_mode_and_left_unchanged():
    from lossviz.testing import BNDropoutNet, assert_model_unchanged

    teacher = BNDropoutNet(16, 8, 1, seed=0)
    teacher.train()  # Dropout active and BatchNorm updating in train mode
    state = torch.random.get_rng_state()
    with assert_model_unchanged(teacher):
        a = data.teacher_student(32, 16, teacher=teacher, seed=0)
        b = data.teacher_student(32, 16, teacher=teacher, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.y, b.y)
    with torch.no_grad():
        teacher.eval()
        expected = teacher(a.x.to(torch.float64).to(next(teacher.parameters()).dtype))
    assert torch.allclose(a.y, expected.to(a.y.dtype).reshape(a.y.shape))
    with pytest.raises(ValueError, match="teacher"):
        data.teacher_student(8, 5, teacher=teacher, seed=0)  # wrong input width


def test_teacher_student_with_tuple_and_dict_teachers():
    """REVIEW B10: a teacher returning (out, aux) or {"logits": out} gives the same targets."""

    class Wrap(torch.nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.lin, self.kind = torch.nn.Linear(4, 2), kind

        def forward(self, x):
            z = self.lin(x)
            return (z, z.sum()) if self.kind == "tuple" else {"logits": z}

    torch.manual_seed(0)
    t, d = Wrap("tuple"), Wrap("dict")
    d.load_state_dict(t.state_dict())
    a = data.teacher_student(32, 4, teacher=t, seed=0)
    b = data.teacher_student(32, 4, teacher=d, seed=0)
    c = data.teacher_student(32, 4, teacher=t.lin, seed=0)
    assert torch.equal(a.y, b.y) and torch.equal(a.y, c.y)


def test_train_test_split_names_data_that_is_not_a_pair():
    with pytest.raises(TypeError, match="`data` must be a pair"):
        data.train_test_split("data")
    with pytest.raises(TypeError, match="`data` must be a pair"):
        data.train_test_split((torch.zeros(4, 2),))


def test_pk_batches_balanced_seeded_leave_the_global_rng_and_feed_fit():
    x = torch.randn(120, 3, generator=torch.Generator().manual_seed(0))
    y = torch.arange(12).repeat_interleave(10)
    state = torch.random.get_rng_state()
    a, b = (
        data.PKBatches(x, y, 12, k=3, per_epoch=4, seed=5),
        data.PKBatches(x, y, 12, k=3, per_epoch=4, seed=5),
    )
    first = list(a)
    assert torch.equal(state, torch.random.get_rng_state())
    assert len(first) == len(a) == 4
    for (xa, ya), (xb, yb) in zip(first, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        counts = torch.bincount(ya)
        assert sorted(counts[counts > 0].tolist()) == [3] * 4  # P = 4 classes, K = 3 each
        idx = [int(torch.nonzero((x == r).all(1))[0]) for r in xa]
        assert len(set(idx)) == 12 and torch.equal(y[idx], ya)  # distinct points with their labels
    assert not torch.equal(first[0][1], first[1][1])
    assert len(list(a)) == 4  # re-iterable: a second pass draws 4 more batches
    from lossviz.papers import n06_hard_negative_collapse as n06

    assert n06.PKBatches is data.PKBatches
    for kw, word in (
        ({"batch_size": 10}, "batch_size"),
        ({"k": 1}, "k"),
        ({"batch_size": 60, "k": 3}, "classes"),
    ):
        with pytest.raises(ValueError, match=word):
            data.PKBatches(x, y, **{"batch_size": 12, **kw})
