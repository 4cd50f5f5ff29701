"""lossviz.landscape._matching: permutation specs of conv nets and ResNets with BatchNorm (Git Re-Basin).

A spec is right iff permuting a model by any spec-consistent permutation leaves its function
unchanged (eval mode, BatchNorm statistics permuted with their channels); weight matching of a
model against a permuted copy of itself must undo the permutation (distance 0, barrier 0).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.testing import assert_model_unchanged

from .._models import resnet18

F = nn.functional


def _randomise_bn(model, seed):
    """Non-trivial BatchNorm affine parameters and running statistics (forked RNG)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(1 + 0.3 * torch.randn(n, generator=g, device=g.device))
                m.bias.copy_(0.3 * torch.randn(n, generator=g, device=g.device))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g, device=g.device))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g, device=g.device))
    return model


def convnet(seed=0, width=8):
    """Conv -> BN -> ReLU (x2, stride 2), max-pool, Flatten (64 positions per channel), Linear head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 8 * 8, 16),
            nn.ReLU(),
            nn.Linear(16, 10),
        )
    return _randomise_bn(net, seed + 1000).eval()


def _x(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g, device=g.device)


def _outputs(model, x):
    with torch.no_grad():
        return copy.deepcopy(model).eval()(x)


def _same_state(m1, m2):
    s1, s2 = m1.state_dict(), m2.state_dict()
    return list(s1) == list(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)


@pytest.fixture(scope="module")
def resnet():
    return _randomise_bn(resnet18(num_classes=10, seed=0), 1).eval()


def test_conv_spec_groups_and_function_invariance():
    net = convnet()
    spec = landscape.conv_spec(net)
    assert spec.kind == "conv" and list(spec.groups) == ["0", "3", "8"]
    assert spec.groups["0"] == (
        ("0.weight", 0),
        ("0.bias", 0),
        ("1.weight", 0),
        ("1.bias", 0),
        ("1.running_mean", 0),
        ("1.running_var", 0),
        ("3.weight", 1),
    )
    assert ("8.weight", 1) in spec.groups["3"]  # the Flatten blocks
    assert spec.sizes(net) == {"0": 8, "3": 16, "8": 16}
    x = _x()
    for seed in range(3):
        perms = landscape.random_permutations(spec, net, seed=seed)
        with assert_model_unchanged(net):
            pnet = landscape.permute(net, perms, spec)
        assert not _same_state(net, pnet)
        assert torch.allclose(_outputs(pnet, x), _outputs(net, x), atol=1e-5, rtol=0)
    # control: a spec that forgets the Flatten head's columns changes the function
    broken = landscape.PermutationSpec(
        {g: tuple(e for e in es if e != ("8.weight", 1)) for g, es in spec.groups.items()}
    )
    pnet = landscape.permute(net, landscape.random_permutations(broken, net, seed=0), broken)
    assert not torch.allclose(_outputs(pnet, x), _outputs(net, x), atol=1e-3)


def test_resnet18_spec_function_invariance(resnet):
    spec = landscape.resnet_spec(resnet)
    assert landscape.infer_spec(resnet).groups == spec.groups and spec.kind == "resnet"
    # stem + layer1 share one stream; one stream per downsampling stage; one inner group per block
    streams = ["conv1", "layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]
    assert [g for g in spec.groups if "downsample" in g or g == "conv1"] == streams
    assert len(spec.groups) == 4 + 8
    assert {n for g in streams for n, _ in spec.groups[g] if n.endswith("conv2.weight")} == {
        f"layer{k}.{i}.conv2.weight" for k in range(1, 5) for i in range(2)
    }
    sizes = spec.sizes(resnet)
    assert [sizes[g] for g in streams] == [64, 128, 256, 512]
    # every parameter and BatchNorm statistic is permuted except fc.bias and num_batches_tracked
    touched = set(spec.axes)
    assert set(resnet.state_dict()) - touched == {"fc.bias"} | {
        k for k in resnet.state_dict() if k.endswith("num_batches_tracked")
    }
    x = _x()
    perms = landscape.random_permutations(spec, resnet, seed=0)
    with assert_model_unchanged(resnet):
        pnet = landscape.permute(resnet, perms, spec)
    assert not _same_state(resnet, pnet)
    assert torch.allclose(_outputs(pnet, x), _outputs(resnet, x), atol=1e-5, rtol=0)
    # control: giving layer1's second block its own output permutation breaks the residual sum
    groups = {
        g: tuple(e for e in es if not e[0].startswith(("layer1.1.conv2", "layer1.1.bn2")))
        for g, es in spec.groups.items()
    }
    groups["extra"] = tuple(
        e for e in spec.groups["conv1"] if e[0].startswith(("layer1.1.conv2", "layer1.1.bn2"))
    )
    broken = landscape.PermutationSpec(groups)
    pnet = landscape.permute(resnet, landscape.random_permutations(broken, resnet, seed=0), broken)
    assert not torch.allclose(_outputs(pnet, x), _outputs(resnet, x), atol=1e-3)


def test_matching_recovers_a_planted_permutation_conv():
    net = convnet(seed=3)
    planted = landscape.random_permutations(landscape.conv_spec(net), net, seed=5)
    other = landscape.permute(net, planted)
    assert landscape.parameter_distance(net, other) > 1.0
    with assert_model_unchanged(net), assert_model_unchanged(other):
        res = landscape.weight_matching(net, other, check=_x())
    assert res.kind == "conv" and res.converged and res.iterations == res.sweeps >= 1
    assert res.objective[-1] >= res.objective[0]
    assert _same_state(net, res.model)  # parameters and BatchNorm statistics
    assert landscape.parameter_distance(net, res.model) == 0.0
    # the recovered permutation is the inverse of the planted one
    for g, p in res.permutation_dict.items():
        assert np.array_equal(planted[g][p], np.arange(len(p)))
    x, y = _x(16, seed=1), torch.arange(16) % 10
    path = landscape.interpolate(net, res.model, F.cross_entropy, (x, y), steps=5)
    assert path.barrier == 0.0


def test_resnet_matching_recovers_identity_and_bn_recompute_barrier():
    # the ResNet-18 layout at width 16 (stages 16-128): matching the full model takes ~20 s
    x, y = _x(8, seed=2), torch.arange(8) % 10
    net = _randomise_bn(resnet18(num_classes=10, seed=0, width=16), 1).eval()
    a = landscape.reset_bn(net, (x, y))  # its statistics are those of x, so recomputing is a no-op
    spec = landscape.resnet_spec(a)
    assert spec.sizes(a)["layer4.0.downsample.0"] == 128
    b = landscape.permute(a, landscape.random_permutations(spec, a, seed=1))
    assert landscape.parameter_distance(a, b) > 1.0
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.weight_matching(a, b)
    assert res.kind == "resnet" and res.converged
    assert res.groups == tuple(spec.groups)
    assert _same_state(a, res.model)
    assert landscape.parameter_distance(a, res.model) == 0.0
    path = landscape.interpolate(a, res.model, F.cross_entropy, (x, y), steps=3, bn="recompute")
    assert path.bn == "recompute" and abs(path.barrier) < 1e-5
    assert np.allclose(path.loss, path.loss[0], rtol=1e-5, atol=0)  # a flat path
    # control: the naive path to the permuted copy is not flat
    naive = landscape.interpolate(a, b, F.cross_entropy, (x, y), steps=3, bn="recompute")
    assert abs(naive.loss[1] - naive.loss[0]) > 1e-3


def test_reset_bn_after_merging_and_interpolate_recompute():
    a, b = convnet(seed=0), convnet(seed=1)
    x, y = _x(32, seed=3), torch.arange(32) % 10
    res = landscape.weight_matching(a, b, check=_x())
    pa, pb = dict(a.named_parameters()), dict(res.model.named_parameters())
    merged = copy.deepcopy(a)
    with torch.no_grad():
        for k, p in merged.named_parameters():
            p.copy_(0.5 * (pa[k] + pb[k]))
    with assert_model_unchanged(merged):
        fresh = landscape.reset_bn(merged, (x, y))
    assert fresh.training is merged.training
    # statistics = the batch statistics of the merged model's own activations
    with torch.no_grad():
        h = fresh[0](x)
        assert torch.allclose(fresh[1].running_mean, h.mean((0, 2, 3)), atol=1e-5)
        assert torch.allclose(fresh[1].running_var, h.var((0, 2, 3), unbiased=True), atol=1e-4)
        h2 = fresh[3](fresh[2](fresh[1](h)))
        assert torch.allclose(fresh[4].running_mean, h2.mean((0, 2, 3)), atol=1e-5)
    assert not torch.allclose(fresh[1].running_mean, merged[1].running_mean, atol=1e-3)
    # interpolate(bn="recompute") at alpha = 1/2 evaluates exactly this re-normalised merge
    path = landscape.interpolate(a, res.model, F.cross_entropy, (x, y), steps=3, bn="recompute")
    with torch.no_grad():
        direct = float(F.cross_entropy(fresh.eval()(x), y))
    assert path.loss[1] == pytest.approx(direct, rel=1e-5)
    assert path.loss[0] == pytest.approx(float(F.cross_entropy(_outputs(a, x), y)), rel=1e-6)
    assert path.loss[2] == pytest.approx(float(F.cross_entropy(_outputs(b, x), y)), rel=1e-5)
    gap = path.loss[1] - 0.5 * (path.loss[0] + path.loss[2])
    assert np.isfinite(path.barrier) and path.barrier == pytest.approx(max(gap, 0.0))
    # a model without BatchNorm comes back as an equal copy
    lin = nn.Linear(3, 2)
    copy_ = landscape.reset_bn(lin, (torch.randn(4, 3), torch.zeros(4)))
    assert copy_ is not lin and _same_state(lin, copy_)


def test_spec_builders_reject_unsupported_structures(resnet):
    with pytest.raises(ValueError, match=r"`model`.*'1'.*LayerNorm"):
        landscape.conv_spec(nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm(4), nn.Conv2d(4, 2, 3)))
    with pytest.raises(ValueError, match=r"`model`.*grouped"):
        landscape.conv_spec(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 3)))
    with pytest.raises(ValueError, match=r"`model`.*resnet_spec.*conv1"):
        landscape.resnet_spec(convnet())
    odd = copy.deepcopy(resnet)
    odd.extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"`model`.*'extra'.*Linear"):
        landscape.resnet_spec(odd)
    odd = copy.deepcopy(resnet)
    odd.layer2[0].downsample = nn.Conv2d(64, 128, 1, stride=2)
    with pytest.raises(ValueError, match=r"`model`.*downsample"):
        landscape.resnet_spec(odd)

    class Skip(nn.Module):  # a residual connection that conv_spec cannot see
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.head = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            return self.head((torch.relu(self.c2(h)) + h).mean((2, 3)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        s1, s2 = Skip(), Skip()
    with pytest.raises(ValueError, match="`model_b`.*spec"):
        landscape.weight_matching(s1, s2)
    spec = landscape.conv_spec(convnet())
    with pytest.raises(TypeError, match="`spec`"):
        landscape.weight_matching(convnet(), convnet(1), spec={"a": [("0.weight", 0)]})
    with pytest.raises(ValueError, match=r"`permutations\['0'\]` is not a permutation"):
        landscape.permute(convnet(), {"0": [0] * 8, "3": np.arange(16), "8": np.arange(16)}, spec)
    with pytest.raises(ValueError, match="two groups"):
        landscape.PermutationSpec({"a": [("w", 0)], "b": [("w", 0)]})
    with pytest.raises(ValueError, match="`model_b` has different"):
        landscape.weight_matching(convnet(), convnet(width=4))


def test_mlp_spec_matches_permute_mlp():
    from lossviz import models

    net = models.MLP(3, (6, 5), 2, seed=0)
    spec = landscape.mlp_spec(net)
    assert spec.kind == "mlp" and landscape.infer_spec(net).groups == spec.groups
    perms = landscape.random_permutations(spec, net, seed=2)
    assert _same_state(landscape.permute(net, perms), landscape.permute_mlp(net, list(perms.values())))


def test_check_probe_of_the_wrong_size_asks_for_a_batch():
    # a Flatten head sized for 28x28 inputs cannot run on the default 32x32 probe
    def net(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 28 * 28, 3)
            )

    a, b = net(0), net(1)
    with pytest.raises(ValueError, match="`check`.*check=<a batch of inputs>"):
        landscape.weight_matching(a, b)
    res = landscape.weight_matching(a, b, check=torch.randn(2, 1, 28, 28))
    assert res.kind == "conv" and [len(p) for p in res.permutations] == [4]
    with pytest.raises(TypeError, match="`check`"):
        landscape.weight_matching(a, b, check="yes")
