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

    b = collate(two_moons(10, seed=0)).on(dtype=torch.float64)
    x, y = b.cat()
    assert x.dtype == torch.float64 and y.dtype == torch.long and b.total == 10


# -- batches of any shape (issue 13 items 1-2) --------------------------------------------------


class _DictNet(torch.nn.Module):
    """A model called as model(**batch) returning a dict with logits (Hugging Face style)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, input_ids, attention_mask):
        h = (self.emb(input_ids) * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
        return {"logits": self.head(h), "hidden": h}


def test_collate_forms_and_default_split():
    from lossviz._model import Batches, logits_of

    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    b = collate((x, x, y))  # (x1, x2, y): positional inputs
    (inp, tgt) = b.batches[0]
    assert isinstance(inp, tuple) and len(inp) == 2 and tgt is y
    ids = torch.randint(0, 20, (5, 4))
    d = collate({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": y[:5]})
    inp, tgt = d.batches[0]
    assert set(inp) == {"input_ids", "attention_mask"} and tgt is not None and d.total == 5
    assert isinstance(collate([(x, y)] * 3), Batches) and collate([(x, y)] * 3).sizes == (6, 6, 6)
    # a custom split
    c = collate([{"a": x, "t": y}], split=lambda b: (b["a"], b["t"]))
    assert c.total == 6
    assert logits_of((x, y)) is x and logits_of({"logits": x}) is x
    with pytest.raises(TypeError, match="output_fn"):
        logits_of({"scores": x})
    with pytest.raises(ValueError, match="resident"):
        collate((x, y), resident="sometimes")


def test_dict_batches_through_mean_loss_and_integer_ids_not_cast():
    torch.manual_seed(0)
    net = _DictNet().double()
    ids = torch.randint(0, 20, (8, 5))
    mask = torch.ones_like(ids)
    mask[:, 3:] = 0
    y = torch.randint(0, 3, (8,))
    data = collate({"input_ids": ids, "attention_mask": mask.float(), "labels": y}).on(net)
    inp, _, _ = next(data.stream())
    assert inp["input_ids"].dtype == torch.long and inp["attention_mask"].dtype == torch.float64
    ce = torch.nn.functional.cross_entropy
    got = mean_loss(net, ce, data)
    want = ce(net(ids, mask.double())["logits"], y)
    assert torch.allclose(got, want, rtol=1e-12)


def test_dataloader_is_streamed_and_equals_all_at_once():
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x, y = torch.randn(50, 3), torch.randint(0, 2, (50,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 16, 16, 16, 2: unequal weights
    ce = torch.nn.functional.cross_entropy
    streamed = collate(loader).on(model)
    assert streamed.streaming and streamed._placed is None  # never materialised on the device
    a = mean_loss(model, ce, streamed).detach()
    b = mean_loss(model, ce, collate((x, y)).on(model)).detach()
    assert streamed.sizes == (16, 16, 16, 2)
    assert abs(float(a) - float(b)) <= 1e-6 * abs(float(b))
    resident = collate(loader, resident=True).on(model)
    assert resident._placed is not None and len(resident._placed) == 4
    assert abs(float(mean_loss(model, ce, resident).detach()) - float(b)) <= 1e-6 * abs(float(b))
    # resident=False keeps in-memory data off the device cache
    assert collate((x, y), resident=False).on(model)._placed is None


def test_float32_data_with_float64_model_is_cast():
    model = torch.nn.Linear(3, 1).double()
    x, y = torch.randn(4, 3), torch.randn(4, 1)
    loss = mean_loss(model, torch.nn.functional.mse_loss, collate((x, y)).on(model))
    assert loss.dtype == torch.float64


def test_wrong_input_width_names_data():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    data = collate((torch.randn(4, 5), torch.randn(4, 1))).on(model)
    with pytest.raises(ValueError, match=r"`data`.*expects 3 input features"):
        mean_loss(model, torch.nn.functional.mse_loss, data)


def test_dict_batch_passes_non_tensor_values_on():
    net = _DictNet()
    calls = []

    class Flag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = net

        def forward(self, input_ids, attention_mask, return_dict=True):
            calls.append(return_dict)
            out = self.inner(input_ids, attention_mask)
            return out if return_dict else (out["logits"],)

    ids = torch.randint(0, 20, (3, 4))
    y = torch.randint(0, 3, (3,))
    data = collate({"input_ids": ids, "attention_mask": torch.ones(3, 4), "return_dict": False, "labels": y})
    loss = mean_loss(Flag(), torch.nn.functional.cross_entropy, data.on(net))
    assert calls == [False] and torch.isfinite(loss)


def test_batch_loss_gets_split_batches_on_the_device():
    from lossviz import landscape, train

    net = _DictNet()
    ids = torch.randint(0, 20, (6, 4))
    batch = {"input_ids": ids, "attention_mask": torch.ones(6, 4), "labels": torch.randint(0, 3, (6,))}
    own = train.batch_loss(lambda m, b: torch.nn.functional.cross_entropy(m(**b[0])["logits"], b[1]))
    with torch.no_grad():
        want = float(torch.nn.functional.cross_entropy(net(ids, torch.ones(6, 4))["logits"], batch["labels"]))
    res = landscape.line(net, own, batch, steps=3)
    assert res.origin_loss == pytest.approx(want, rel=1e-6)
