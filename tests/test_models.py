import pytest
import torch

from lossviz.models import MLP, UFM, DeepLinear
from lossviz.papers.k05_softmax_collapse import PairEmbeddingMLP


def test_mlp_shapes_and_features():
    net = MLP(3, (8, 5), 2, activation="tanh", seed=0)
    x = torch.randn(4, 3)
    assert net(x).shape == (4, 2) and net.features(x).shape == (4, 5)
    assert torch.allclose(net.head(net.features(x)), net(x))
    assert net.widths == (3, 8, 5, 2)
    linear = MLP(3, (), 2)
    assert torch.allclose(linear(x), linear.head(x))


def test_mlp_bias_and_init():
    net = MLP(3, (8,), 2, bias=False, seed=0)
    assert all(layer.bias is None for layer in [*net.layers, net.head])
    normal = MLP(100, (2000,), 1, init="normal", gain=2.0, seed=0, dtype=torch.float64)
    std = normal.layers[0].weight.std().item()
    assert abs(std - 2.0 / 10) < 0.01
    assert normal.layers[0].bias.abs().max() == 0


def test_mlp_seeded_and_dtype():
    a, b = MLP(3, (8,), 2, seed=5), MLP(3, (8,), 2, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = MLP(3, (8,), 2, seed=5, dtype=torch.float64)
    assert c(torch.randn(2, 3, dtype=torch.float64)).dtype == torch.float64


def test_deep_linear_product():
    net = DeepLinear((4, 6, 5, 3), seed=0, dtype=torch.float64)
    x = torch.randn(7, 4, dtype=torch.float64)
    assert torch.allclose(net(x), x @ net.product().T)
    small = DeepLinear((4, 4), init_scale=1e-3, seed=0)
    assert small.layers[0].weight.abs().max() < 1e-2


def test_ufm():
    m = UFM(12, 5, 3, depth=3, seed=0, dtype=torch.float64)
    assert m().shape == (12, 3)
    idx = torch.tensor([0, 4])
    assert torch.allclose(m(idx), m()[idx])
    assert len(m.layer_features()) == 3
    reg = m.penalty(0.1, 0.2)
    manual = 0.05 * m.H.square().sum() / 12 + 0.1 * sum(layer.weight.square().sum() for layer in m.layers)
    assert torch.allclose(reg, manual)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: MLP(0, (3,), 1), ValueError, "in_features"),
        (lambda: MLP(2, (3, -1), 1), ValueError, "hidden"),
        (lambda: MLP(2, (3,), 1, activation="swishy"), ValueError, "activation"),
        (lambda: MLP(2, (3,), 1, init="xavier"), ValueError, "init"),
        (lambda: MLP(2, (3,), 1, dtype="float128"), TypeError, "dtype"),
        (lambda: DeepLinear((3,)), ValueError, "dims"),
        (lambda: UFM(10, 3, 1), ValueError, "num_classes"),
        (lambda: UFM(10, 3, 3, depth=0), ValueError, "depth"),
        (lambda: UFM(10, 3, 3)(torch.tensor([0.5])), TypeError, "idx"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_pair_embedding_mlp_equals_mlp_on_one_hot():
    from lossviz.data import modular_arithmetic

    idx = modular_arithmetic(7, encoding="index", seed=1)
    hot = modular_arithmetic(7, encoding="onehot", seed=1, dtype=torch.float64)
    assert torch.equal(idx.train.y, hot.train.y)
    fast = PairEmbeddingMLP(7, 16, 7, seed=3, dtype=torch.float64)
    ref = MLP(14, (16,), 7, bias=False, seed=3, dtype=torch.float64)
    assert torch.equal(fast.embed, ref.layers[0].weight.T)
    out_fast, out_ref = fast(idx.train.x), ref(hot.train.x)
    assert torch.allclose(out_fast, out_ref, atol=1e-12)
    torch.nn.functional.cross_entropy(out_fast, idx.train.y).backward()
    torch.nn.functional.cross_entropy(out_ref, hot.train.y).backward()
    assert torch.allclose(fast.embed.grad, ref.layers[0].weight.grad.T, atol=1e-12)
    assert torch.allclose(fast.head.weight.grad, ref.head.weight.grad, atol=1e-12)
    with pytest.raises(ValueError, match="pairs"):
        fast(torch.tensor([[0, 7]]))
    with pytest.raises(TypeError, match="pairs"):
        fast(torch.zeros(3, 2))


def test_pair_embedding_mlp_moved_with_a_deprecation_alias():
    from lossviz import models

    with pytest.warns(DeprecationWarning, match="papers.k05_softmax_collapse"):
        assert models.PairEmbeddingMLP is PairEmbeddingMLP


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP(3, (8, 4), 2, seed=0),
        lambda: MLP(3, (8,), 2, init="normal", seed=1),
        lambda: DeepLinear((3, 4, 2), seed=0),
        lambda: UFM(10, 4, 3, depth=2, bias=True, seed=0),
    ],
)
def test_seeded_constructors_leave_the_global_rng_alone(make):
    state = torch.random.get_rng_state()
    a = make()
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(999)  # a different global state: same seeded weights
    b = make()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
