"""lossviz.papers.k05_softmax_collapse: PairEmbeddingMLP and perpGrad."""

from __future__ import annotations

import torch

from lossviz import data, models, train
from lossviz.papers import k05_softmax_collapse as k05

torch.set_num_threads(1)


def test_pair_embedding_equals_the_one_hot_mlp():
    p = 7
    pairs = torch.tensor([[a, b] for a in range(p) for b in range(p)])
    net = k05.PairEmbeddingMLP(p, 16, p, seed=3)
    ref = models.MLP(2 * p, (16,), p, bias=False, seed=3)
    onehot = torch.cat(
        [torch.nn.functional.one_hot(pairs[:, 0], p), torch.nn.functional.one_hot(pairs[:, 1], p)], 1
    )
    assert torch.allclose(net(pairs), ref(onehot.float()), atol=1e-6)


def test_orthogonal_gradient_removes_the_weight_component():
    net = k05.PairEmbeddingMLP(5, 8, 5, seed=0)
    x, y, _, _ = data.modular_arithmetic(5, "add", train_fraction=0.8, encoding="index", seed=0)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    cos = k05.gradient_weight_cosine(net.parameters())
    assert abs(k05.orthogonal_gradient_(net.parameters()) - cos) < 1e-12
    g = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    w = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    assert abs(float(g @ w)) < 1e-5 * float(g.norm() * w.norm())
    # as a fit grad_hook
    hist = train.fit(net, torch.nn.functional.cross_entropy, (x, y), steps=3, lr=0.1, progress=False,
                     grad_hook=lambda step, m, h: h.record("cos", step, k05.orthogonal_gradient_(m.parameters())))  # fmt: skip
    assert hist.steps("cos") == [0, 1, 2]


def _collapse_run(steps):
    x, y, _, _ = data.modular_arithmetic(31, "add", train_fraction=0.8, encoding="index", seed=0)
    net = k05.PairEmbeddingMLP(31, 128, 31, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-25)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]), net(x).detach()


def test_flush_denormals_changes_nothing_the_notebook_measures_and_restores():
    # 800 Adam steps (eps 1e-25) past 100% train accuracy: the phase where denormals made K05 slow
    # (2.3 s here against 0.9 s with them flushed, on an AMD EPYC core)
    ref, _ = _collapse_run(800)
    with k05.flush_denormals():
        flushed, _ = _collapse_run(800)
    assert torch.equal(flushed, ref)  # same weights, bit for bit
    assert torch.tensor([1e-40]).item() > 0  # denormals are back after the block
    try:
        with k05.flush_denormals():
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert torch.tensor([1e-40]).item() > 0  # restored on error too
