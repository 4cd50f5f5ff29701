"""tests/_models.py: the ResNet-18 and GPT-2 fixtures other tests and benchmarks rely on."""

from __future__ import annotations

import torch

from tests._models import require_transformers, resnet18, tiny_gpt2


def test_resnet18_is_torchvisions_layout():
    net = resnet18(num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == 11_181_642  # torchvision resnet18(num_classes=10)
    names = dict(net.named_modules())
    for n in ("conv1", "bn1", "maxpool", "layer1.0.conv1", "layer2.0.downsample.1", "layer4.1.bn2", "fc"):
        assert n in names, n
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 20
    state = torch.random.get_rng_state()
    a, b = resnet18(seed=3), resnet18(seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # seeded: the global RNG is left alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_tiny_gpt2():
    require_transformers()
    model = tiny_gpt2()
    assert sum(p.numel() for p in model.parameters()) == 108_544
    assert model.config._attn_implementation == "eager"
    wrapped = tiny_gpt2(logits_only=True)
    with torch.no_grad():
        assert wrapped(torch.randint(0, 100, (2, 8))).shape == (2, 8, 100)
