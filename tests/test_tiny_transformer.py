"""TinyTransformer (models) and copy_task (data): causality, shapes, qk-LN bound, seeding, bad input."""

import math

import pytest
import torch

from lossviz import data
from lossviz.models import TinyTransformer


def _idx(b=3, t=9, v=11, seed=0):
    return torch.randint(0, v, (b, t), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_no_biases():
    net = TinyTransformer(11, 12, d_model=16, depth=3, heads=4, seed=0)
    idx = _idx()
    assert net(idx).shape == (3, 9, 11)
    assert net.attention_logits(idx).shape == (3, 3, 4, 9, 9)
    assert not any(name.endswith("bias") for name, _ in net.named_parameters())
    assert "last_attention_max" not in net.state_dict()


@pytest.mark.parametrize("qk", [False, True])
def test_causality(qk):
    net = TinyTransformer(11, 12, d_model=16, depth=2, heads=2, qk_layernorm=qk, seed=1, dtype=torch.float64)
    idx = _idx(t=10)
    out = net(idx)
    for t in (0, 4, 8):
        changed = idx.clone()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 11
        out2 = net(changed)
        assert torch.equal(out[:, : t + 1], out2[:, : t + 1])
        assert not torch.allclose(out[:, t + 1], out2[:, t + 1])  # the change is seen where it may be


def test_attention_logits_match_forward_and_last_max():
    net = TinyTransformer(11, 12, d_model=16, depth=2, heads=2, seed=2, dtype=torch.float64, embed_std=3.0)
    idx = _idx(t=7)
    out = net(idx)
    logits = net.attention_logits(idx)
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    assert torch.isinf(logits[..., ~mask]).all() and torch.isfinite(logits[..., mask]).all()
    expect = logits[..., mask].abs().max()
    assert torch.allclose(net.last_attention_max, expect)
    assert net.last_attention_max.requires_grad is False
    # recompute the forward by hand from the returned logits: same output
    x = net.tok(idx) + net.pos[:7]
    with torch.no_grad():
        for block, lg in zip(net.blocks, logits):
            _, v = block.attention_logits(x)
            att = lg.softmax(-1)
            x = x + block.proj((att @ v).transpose(1, 2).reshape(3, 7, 16))
            x = x + block.fc2(block.act(block.fc1(block.ln2(x))))
        assert torch.allclose(net.head(net.ln_f(x)), out)
    # attention_logits sets nothing on the model
    before = net.last_attention_max.clone()
    net.attention_logits(_idx(t=7, seed=5))
    assert torch.equal(net.last_attention_max, before)


def test_qk_layernorm_bound_holds_and_base_exceeds_it():
    d_h = 8
    qk = TinyTransformer(11, 12, d_model=16, heads=2, qk_layernorm=True, seed=0)
    base = TinyTransformer(11, 12, d_model=16, heads=2, qk_layernorm=False, seed=0)
    with torch.no_grad():  # large q/k weights: pre-LN does not bound the raw logits
        for b in [*qk.blocks, *base.blocks]:
            b.qkv.weight.mul_(10.0)
    idx = _idx()
    qk(idx), base(idx)
    assert qk.last_attention_max <= math.sqrt(d_h) + 1e-4
    assert base.last_attention_max > 10 * math.sqrt(d_h)  # the bound is not automatic
    with torch.no_grad():  # gains scale the bound: sqrt(d_h) max|g_q| max|g_k|
        for b in qk.blocks:
            b.q_ln.weight.mul_(3.0)
            b.k_ln.weight.mul_(2.0)
    qk(idx)
    assert qk.last_attention_max <= 6 * math.sqrt(d_h) + 1e-3
    assert qk.last_attention_max > math.sqrt(d_h)


def test_seeded_init_reproducible_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = TinyTransformer(11, 12, seed=3)
    b = TinyTransformer(11, 12, seed=3)
    c = TinyTransformer(11, 12, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.tok.weight, c.tok.weight)
    w = TinyTransformer(11, 12, d_model=256, seed=0, dtype=torch.float64).blocks[0].fc1.weight
    assert abs(w.std().item() - 1 / 16) < 0.003  # N(0, 1/fan_in)
    e = TinyTransformer(400, 12, d_model=64, embed_std=0.5, seed=0, dtype=torch.float64).tok.weight
    assert abs(e.std().item() - 0.5) < 0.02


def test_forward_leaves_model_unchanged():
    net = TinyTransformer(11, 12, seed=0)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net(_idx())
    net.attention_logits(_idx())
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device(dtype):
    net = TinyTransformer(11, 12, dtype=dtype, device="cpu", seed=0)
    assert all(p.dtype == dtype and p.device.type == "cpu" for p in net.parameters())
    out = net(_idx())
    assert out.dtype == dtype and net.last_attention_max.dtype == dtype
    assert net.attention_logits(_idx()).dtype == dtype
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_input():
    with pytest.raises(ValueError, match="heads"):
        TinyTransformer(11, 12, d_model=10, heads=3)
    with pytest.raises(ValueError, match="vocab_size"):
        TinyTransformer(1, 12)
    with pytest.raises(TypeError, match="qk_layernorm"):
        TinyTransformer(11, 12, qk_layernorm=1)
    with pytest.raises(TypeError, match="dtype"):
        TinyTransformer(11, 12, dtype=torch.int64)
    with pytest.raises(ValueError, match="activation"):
        TinyTransformer(11, 12, activation="nope")
    net = TinyTransformer(11, 4, seed=0)
    with pytest.raises(ValueError, match="max_len"):
        net(_idx(t=5))
    with pytest.raises((TypeError, ValueError), match="idx"):
        net(torch.zeros(2, 3))
    with pytest.raises((TypeError, ValueError), match="idx"):
        net(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="idx"):
        net(torch.zeros(2, 3, dtype=torch.bool))


def test_copy_task():
    ds = data.copy_task(50, length=6, vocab_size=9, seed=0)
    s = ds.info["sequences"]
    assert ds.x.shape == ds.y.shape == (50, 11) and s.shape == (50, 12)
    assert ds.x.dtype == ds.y.dtype == torch.int64
    assert torch.equal(s[:, :6], s[:, 6:]) and torch.equal(ds.x, s[:, :-1])
    assert (ds.y[:, :5] == -100).all() and torch.equal(ds.y[:, 5:], s[:, :6])
    assert int(s.min()) >= 0 and int(s.max()) < 9
    assert len(torch.unique(s)) == 9  # all tokens are used
    state = torch.get_rng_state()
    again = data.copy_task(50, length=6, vocab_size=9, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again.x, ds.x) and not torch.equal(
        data.copy_task(50, length=6, vocab_size=9, seed=1).x, ds.x
    )
    one = data.copy_task(3, length=1, vocab_size=4, seed=0, ignore_index=-1)
    assert one.x.shape == (3, 1) and (one.y != -1).all()  # length 1: every target is a copy
    # the target at the first copied position is predictable from the tokens seen
    assert torch.equal(ds.y[:, 5], ds.x[:, 0])


def test_copy_task_bad_input():
    with pytest.raises(ValueError, match="ignore_index"):
        data.copy_task(4, vocab_size=8, ignore_index=3)
    with pytest.raises(ValueError, match="vocab_size"):
        data.copy_task(4, vocab_size=1)
    with pytest.raises((TypeError, ValueError), match="length"):
        data.copy_task(4, length=0)
    with pytest.raises((TypeError, ValueError), match="n"):
        data.copy_task(0)
