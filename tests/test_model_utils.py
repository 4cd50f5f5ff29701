import pytest
import torch

from lossviz._model import collate, eval_mode, mean_loss, parameters_of, preserved
from lossviz.testing import BNDropoutNet, assert_model_unchanged, snapshot


def test_snapshot_detects_every_kind_of_change():
    """The model-unchanged helper must be able to fail, for each thing it promises to watch."""
    mutations = {
        "value": lambda m: m.fc1.weight.data.add_(1e-7),
        "requires_grad": lambda m: m.fc1.weight.requires_grad_(False),
        "grad value": lambda m: m.fc1.weight.grad.add_(1.0),
        "grad none": lambda m: setattr(m.fc1.weight, "grad", None),
        "grad replaced": lambda m: setattr(m.fc1.weight, "grad", m.fc1.weight.grad.clone()),
        "training": lambda m: m.bn.eval(),
        "buffer": lambda m: m.bn.running_mean.add_(1.0),
        "num_batches_tracked": lambda m: m.bn.num_batches_tracked.add_(1),
        "dtype": lambda m: m.head.double(),
    }
    for what, mutate in mutations.items():
        model = BNDropoutNet()
        with pytest.raises(AssertionError, match="changed|replaced|requires_grad|training|grad"):
            with assert_model_unchanged(model):
                mutate(model)
        assert what


def test_snapshot_bitwise_nan_and_signed_zero():
    model = BNDropoutNet()
    with torch.no_grad():
        model.fc1.bias[0] = 0.0
    before = snapshot(model)
    with torch.no_grad():
        model.fc1.bias[0] = -0.0
    assert before.differences(snapshot(model)), "-0.0 vs +0.0 must count as a change (bitwise)"


def test_unchanged_block_passes(bn_model):
    with assert_model_unchanged(bn_model):
        with eval_mode(bn_model):
            assert not bn_model.bn.training
            with torch.no_grad():
                bn_model(torch.randn(5, 4))


def test_preserved_restores_everything(bn_model):
    with assert_model_unchanged(bn_model):
        with preserved(bn_model, values=True):
            bn_model.eval()
            bn_model.fc1.weight.requires_grad_(False)
            bn_model.train()
            bn_model(torch.randn(8, 4)).sum().backward()
            with torch.no_grad():
                bn_model.head.weight.mul_(2)


def test_eval_mode_restores_mixed_flags(bn_model):
    bn_model.drop.eval()
    with eval_mode(bn_model):
        pass
    assert bn_model.training and not bn_model.drop.training and bn_model.bn.training


def test_mean_loss_weights_batches_by_size():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    full = collate((x, y))
    split = collate([(x[:7], y[:7]), (x[7:], y[7:])])
    assert split.weights == (0.7, 0.3)
    mse = torch.nn.functional.mse_loss
    params = parameters_of(model)
    a = mean_loss(model, mse, full, params)
    b = mean_loss(model, mse, split, params)
    assert torch.allclose(a, b, rtol=1e-12)
    assert a.dtype == torch.float64


def test_mean_loss_rejects_nonscalar_loss():
    model = torch.nn.Linear(3, 1)
    data = collate((torch.randn(4, 3), torch.randn(4, 1)))
    with pytest.raises(ValueError, match="loss_fn"):
        mean_loss(model, lambda o, t: (o - t) ** 2, data, parameters_of(model))


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        ([], ValueError, "empty"),
        (torch.zeros(3), TypeError, "tuple"),
        ((torch.zeros(3, 2), torch.zeros(4)), ValueError, "3 inputs but 4 targets"),
        ((torch.full((3, 2), float("nan")), torch.zeros(3)), ValueError, "non-finite"),
        ([(torch.zeros(3, 2),)], TypeError, "batch 0"),
        ((torch.zeros(0, 2), torch.zeros(0)), ValueError, "empty"),
    ],
)
def test_collate_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        collate(bad)


def test_collate_dataset_and_cast():
    from lossviz.data import two_moons

    b = collate(two_moons(10, seed=0)).to(dtype=torch.float64)
    x, y = b.cat()
    assert x.dtype == torch.float64 and y.dtype == torch.long and b.total == 10
