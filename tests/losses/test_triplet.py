"""Tests for lossviz.losses._triplet (triplet loss with batch-hard / semi-hard / random negatives)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossviz.losses as L


def _batch(seed=0, p=4, k=3, n=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(p * k, n, generator=g, dtype=dtype)
    y = torch.arange(p).repeat_interleave(k)
    perm = torch.randperm(p * k, generator=g)
    return z[perm], y[perm]


def _dist(u, v, distance):
    u, v = np.asarray(u, float), np.asarray(v, float)
    if distance == "cosine":
        return 1 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    d = np.linalg.norm(u - v)
    return d * d if distance == "squared" else d


def _brute(z, y, margin, mining, distance):
    """Per-anchor terms by enumerating every triplet (a, p, n)."""
    z, y = z.detach().numpy(), y.numpy()
    out = []
    for a in range(len(y)):
        P = [p for p in range(len(y)) if y[p] == y[a] and p != a]
        N = [q for q in range(len(y)) if y[q] != y[a]]
        if mining == "hard":
            # batch-hard = the largest hinge over all triplets of this anchor
            out.append(
                max(
                    max(_dist(z[a], z[p], distance) - _dist(z[a], z[q], distance) + margin, 0.0)
                    for p, q in itertools.product(P, N)
                )
            )
        else:  # semi-hard, with the farthest positive
            dap = max(_dist(z[a], z[p], distance) for p in P)
            dn = [_dist(z[a], z[q], distance) for q in N]
            outside = [d for d in dn if d > dap]
            dan = min(outside) if outside else max(dn)
            out.append(max(dap - dan + margin, 0.0))
    return np.array(out)


@pytest.mark.parametrize("mining", ["hard", "semi-hard"])
@pytest.mark.parametrize("distance", ["euclidean", "squared", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_over_all_triplets(mining, distance, seed):
    z, y = _batch(seed)
    margin = 0.3 if distance != "squared" else 2.0
    got = L.triplet_loss(z, y, margin=margin, mining=mining, distance=distance, reduction="none")
    want = _brute(z, y, margin, mining, distance)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    mean = L.triplet_loss(z, y, margin=margin, mining=mining, distance=distance)
    total = L.triplet_loss(z, y, margin=margin, mining=mining, distance=distance, reduction="sum")
    assert float(mean) == pytest.approx(want.mean(), rel=1e-10)
    assert float(total) == pytest.approx(want.sum(), rel=1e-10)


def test_semi_hard_uses_the_fallback_when_no_negative_is_farther():
    # anchor 0's negatives are all closer than its positive: semi-hard falls back to the farthest
    z = torch.tensor([[0.0], [3.0], [1.0], [2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    got = L.triplet_loss(z, y, margin=0.0, mining="semi-hard", reduction="none")
    assert float(got[0]) == pytest.approx(3.0 - 2.0)
    assert float(L.triplet_loss(z, y, margin=0.0, reduction="none")[0]) == pytest.approx(3.0 - 1.0)


def test_gradient_matches_brute_force_autograd():
    z, y = _batch(3)
    z = z.requires_grad_(True)
    (g,) = torch.autograd.grad(L.triplet_loss(z, y, margin=0.5), z)
    # reference: the max over all triplets of each anchor, by autograd through the full distance matrix
    d = torch.cdist(z, z)
    same = y[:, None] == y[None, :]
    terms = []
    for a in range(len(y)):
        P = [p for p in range(len(y)) if same[a, p] and p != a]
        N = [q for q in range(len(y)) if not same[a, q]]
        hinge = F.relu(d[a, P][:, None] - d[a, N][None, :] + 0.5)
        terms.append(hinge.max())
    (want,) = torch.autograd.grad(torch.stack(terms).mean(), z)
    torch.testing.assert_close(g, want)
    assert torch.autograd.gradcheck(
        lambda t: L.triplet_loss(t, y, margin=0.5), (z.detach().clone().requires_grad_(),)
    )


def test_collapse_gives_the_margin_with_finite_gradients():
    z = torch.zeros(8, 3, requires_grad=True)
    y = torch.arange(4).repeat_interleave(2)
    for mining in ("hard", "semi-hard", "random"):
        loss = L.triplet_loss(z, y, margin=0.2, mining=mining, generator=torch.Generator().manual_seed(0))
        assert float(loss.detach()) == pytest.approx(0.2)
        (g,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(g).all()


def test_random_negatives_are_negatives_uniform_and_seeded():
    # distinct distances make each anchor's hinge value identify its negative
    z = torch.tensor([[0.0], [0.1], [1.0], [2.5], [4.5], [7.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    counts = {}
    for s in range(400):
        t = L.triplet_loss(
            z, y, margin=10.0, mining="random", reduction="none", generator=torch.Generator().manual_seed(s)
        )
        dan = 0.1 + 10.0 - float(t[0])  # anchor 0: positive at 0.1
        counts[round(dan, 6)] = counts.get(round(dan, 6), 0) + 1
    assert torch.equal(torch.random.get_rng_state(), before)
    assert set(counts) == {1.0, 2.5, 4.5, 7.0}
    assert min(counts.values()) > 60  # ~100 each
    a = L.triplet_loss(z, y, mining="random", reduction="none", generator=torch.Generator().manual_seed(7))
    b = L.triplet_loss(z, y, mining="random", reduction="none", generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_coinciding_negatives_make_random_equal_hard():
    z, _ = _batch(4, p=2, k=3)
    z[3:] = z[3]  # the class-0 anchors' negatives all sit at one point
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    r = L.triplet_loss(z, y, mining="random", reduction="none", generator=torch.Generator().manual_seed(0))
    h = L.triplet_loss(z, y, mining="hard", reduction="none")
    torch.testing.assert_close(r[:3], h[:3])


def test_dtype_and_device_follow_the_input_and_labels_of_any_integer_dtype():
    z, y = _batch(5, dtype=torch.float32)
    out = L.triplet_loss(z, y.to(torch.int32))
    assert out.dtype == torch.float32 and out.device == z.device
    half = L.triplet_loss(z.half(), y)
    assert half.dtype == torch.float16
    assert float(half) == pytest.approx(float(out), abs=2e-2)
    np_out = L.triplet_loss(z.numpy(), y.numpy())
    assert float(np_out) == pytest.approx(float(out))


def test_inputs_are_not_modified():
    z, y = _batch(6)
    z0, y0 = z.clone(), y.clone()
    L.triplet_loss(z, y, mining="semi-hard", distance="cosine")
    assert torch.equal(z, z0) and torch.equal(y, y0)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"embeddings": torch.zeros(4)}, ValueError, "embeddings"),
        ({"embeddings": torch.zeros(4, 2, dtype=torch.long)}, TypeError, "embeddings"),
        ({"embeddings": torch.full((4, 2), float("nan"))}, ValueError, "embeddings"),
        ({"labels": torch.tensor([0, 0, 1])}, ValueError, "labels"),
        ({"labels": torch.tensor([0.0, 0.0, 1.0, 1.0])}, TypeError, "labels"),
        ({"labels": torch.tensor([0, 1, 1, 1])}, ValueError, "labels"),  # anchor 0 has no positive
        ({"labels": torch.tensor([0, 0, 0, 0])}, ValueError, "labels"),  # no negatives
        ({"margin": -0.1}, ValueError, "margin"),
        ({"mining": "hardest"}, ValueError, "mining"),
        ({"distance": "manhattan"}, ValueError, "distance"),
        ({"reduction": "avg"}, ValueError, "reduction"),
        ({"generator": 0, "mining": "random"}, TypeError, "generator"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, word):
    args = {"embeddings": torch.randn(4, 2), "labels": torch.tensor([0, 0, 1, 1])}
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        L.triplet_loss(**args)
