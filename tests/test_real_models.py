"""Every lossviz family on models nobody here wrote: ResNet-18 and a tiny Hugging Face GPT-2.

ResNet-18 (torchvision's layout, random init, 10 classes, 8 images of 32x32) and GPT-2 (2 layers,
width 64, eager attention) with a padded batch and an attention mask go through a landscape
plane and interpolation, the top Hessian eigenvalue, the trace, the spectral density, the GGN,
the empirical NTK, neural-collapse metrics of the penultimate features and a training step with
a temperature loss. Both models are left "mid-training" (train mode, updated BatchNorm
statistics, populated ``.grad``) and every call is checked to leave them exactly as they were.

Cost: curvature on ResNet-18 differentiates ``layer4.1`` and ``fc`` only (4.7M of 11.2M
parameters; the forward and backward still run through the whole network) with a short
Lanczos run, so the module stays well under 90 s on one thread. The values are checked against
what they must satisfy (Rayleigh quotients of the returned eigenvectors, a direct forward, the
DataLoader-streamed result against the all-at-once one), not against fixed numbers.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossviz import collapse, curvature, landscape, losses, ntk, train
from lossviz.data import collate
from lossviz.testing import assert_model_unchanged

from ._models import require_transformers, resnet18, tiny_gpt2

# -- set-ups -----------------------------------------------------------------------------------


def _mid_training(model, loss):
    """Leave ``model`` as training leaves it: train mode, updated BatchNorm statistics, ``.grad``."""
    model.train()
    loss(model).backward()
    return model


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=gen)
    y = torch.arange(8) % 4  # four classes present, two samples each
    return x, y


@pytest.fixture(scope="module")
def resnet(images):
    x, y = images
    return _mid_training(resnet18(num_classes=10, seed=0), lambda m: F.cross_entropy(m(x), y))


def _sel(name, p):
    return name.startswith("layer4.1") or name.startswith("fc")


def lm_loss(logits, labels):
    """Next-token cross-entropy; ``-100`` labels (padding) are ignored."""
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), ignore_index=-100)


@pytest.fixture(scope="module")
def tokens():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (4, 10), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding
    mask[3, 5:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


@pytest.fixture(scope="module")
def gpt2(tokens):
    require_transformers()
    model = tiny_gpt2(seed=0)
    return _mid_training(model, lambda m: m(**tokens).loss)


# -- ResNet-18 ---------------------------------------------------------------------------------


def test_resnet_landscape_plane_and_interpolation(resnet, images):
    x, y = images
    with assert_model_unchanged(resnet):
        res = landscape.plane(resnet, F.cross_entropy, (x, y), steps=3, workers=1)
    own = _eval_loss(resnet, x, y)
    assert res.loss.shape == (3, 3) and np.isfinite(res.loss).all()
    assert res.origin_loss == pytest.approx(own, rel=1e-5)
    other = _mid_training(resnet18(num_classes=10, seed=1), lambda m: F.cross_entropy(m(x), y))
    with assert_model_unchanged(resnet), assert_model_unchanged(other):
        rec = landscape.interpolate(resnet, other, F.cross_entropy, (x, y), steps=3, bn="recompute")
    # REVIEW F: the first point is model A's own loss (its own running statistics)
    assert rec.loss[0] == pytest.approx(own, rel=1e-5)
    assert rec.loss[-1] == pytest.approx(_eval_loss(other, x, y), rel=1e-5)


def _eval_loss(model, x, y):
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        return float(F.cross_entropy(m(x), y))


def test_resnet_curvature_hessian_trace_density_ggn(resnet, images):
    x, y = images
    with assert_model_unchanged(resnet):
        op = curvature.HessianOperator(resnet, F.cross_entropy, (x, y), params=_sel)
        top = curvature.top_eigenvalues(op, k=1, method="lanczos", maxiter=20, tol=1e-2)
        tr = curvature.trace(op, matvecs=6, seed=0)
        dens = curvature.spectral_density(op, num_probes=1, steps=6, seed=0)
        ggn = curvature.top_eigenvalues(
            resnet,
            F.cross_entropy,
            (x, y),
            k=1,
            method="lanczos",
            maxiter=20,
            tol=1e-2,
            matrix="ggn",
            params=_sel,
        )
    lam, v = top.eigenvalues[0], top.eigenvectors[:, 0]
    hv = op.matvec(v)
    rayleigh = float(v @ hv / (v @ v))
    assert top.converged[0] and lam > 0 and rayleigh == pytest.approx(lam, rel=1e-3)
    assert float((hv - lam * v).norm()) == pytest.approx(top.residual_norms[0], rel=0.05, abs=1e-3 * lam)
    assert np.isfinite(tr.trace) and np.isfinite(tr.standard_error) and tr.matvecs == 6
    w = np.asarray(dens.weights)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-6)
    assert ggn.converged[0] and ggn.eigenvalues[0] > 0  # the GGN of cross-entropy is PSD


def test_resnet_hvp_streamed_over_a_dataloader_equals_all_at_once(resnet, images):
    from torch.utils.data import DataLoader, TensorDataset

    x, y = images
    full = curvature.HessianOperator(resnet, F.cross_entropy, (x, y), params=_sel)
    v = full.random_vectors(1, seed=1)[0]
    ref = full.matvec(v)
    loader = DataLoader(TensorDataset(x, y), batch_size=3)  # 3, 3, 2
    with assert_model_unchanged(resnet):
        streamed = curvature.HessianOperator(resnet, F.cross_entropy, loader, params=_sel).matvec(v)
    assert float((streamed - ref).norm() / ref.norm()) < 1e-6


def test_resnet_ntk_and_collapse_features(resnet, images):
    x, y = images
    with assert_model_unchanged(resnet):
        k = ntk.empirical(resnet, x[:3], output_fn=lambda out: out[:, :2], output="trace_sum")
        h, labels = collapse.features(resnet, [(x[:5], y[:5]), (x[5:], y[5:])])  # input of fc
        m = collapse.nc_metrics(
            h, labels, classifier=(resnet.fc.weight[:4], resnet.fc.bias[:4])
        )  # 4 classes used
    assert k.kernel.shape == (3, 3) and torch.allclose(k.kernel, k.kernel.T, rtol=1e-5)
    assert bool((torch.linalg.eigvalsh(k.kernel.double()) > 0).all())
    net = copy.deepcopy(resnet).eval()
    with torch.no_grad():
        z = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        z = net.layer4(net.layer3(net.layer2(net.layer1(z))))
        want = torch.flatten(net.avgpool(z), 1)
    assert h.shape == (8, 512) and torch.allclose(h, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(labels, y) and np.isfinite(m.nc1)
    with pytest.raises(ValueError, match="fc"):  # every module name is listed, fc included
        collapse.features(resnet, (x, y), layer="classifier")
    with pytest.raises(ValueError, match=r"`data`.*3 input channels"):
        collapse.features(resnet, (torch.randn(2, 1, 32, 32), y[:2]))


def test_resnet_training_step_with_a_temperature_loss(resnet, images):
    x, y = images
    model = copy.deepcopy(resnet)
    before = [p.detach().clone() for p in model.parameters()]
    hist = train.fit(
        model,
        lambda logits, t: losses.tempered_cross_entropy(logits, t, tau=2.0),
        (x, y),
        steps=1,
        lr=0.01,
        progress=False,
    )
    assert len(hist.loss) == 2 and all(np.isfinite(hist.loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- GPT-2 (Hugging Face) ----------------------------------------------------------------------


def test_gpt2_landscape_with_dict_batches_and_attention_mask(gpt2, tokens):
    with assert_model_unchanged(gpt2):
        res = landscape.plane(gpt2, lm_loss, tokens, steps=3, workers=1)
        other = tiny_gpt2(seed=1)
        inter = landscape.interpolate(gpt2, other, lm_loss, tokens, steps=3)
    m = copy.deepcopy(gpt2).eval()
    with torch.no_grad():
        own = float(m(**tokens).loss)  # the model's own masked next-token loss
    assert res.origin_loss == pytest.approx(own, rel=1e-5)
    assert inter.loss[0] == pytest.approx(own, rel=1e-5) and np.isfinite(inter.loss).all()


def test_gpt2_curvature_and_streaming(gpt2, tokens):
    from torch.utils.data import DataLoader

    with assert_model_unchanged(gpt2):
        top = curvature.top_eigenvalues(gpt2, lm_loss, tokens, k=1)
        tr = curvature.trace(gpt2, lm_loss, tokens, matvecs=9, seed=0)
        dens = curvature.spectral_density(gpt2, lm_loss, tokens, num_probes=1, steps=10)
        ggn = curvature.top_eigenvalues(gpt2, lm_loss, tokens, k=1, matrix="ggn")
        op = curvature.HessianOperator(gpt2, lm_loss, tokens)
        v = op.random_vectors(1, seed=0)[0]
        ref = op.matvec(v)
        rows = [{k: t[i] for k, t in tokens.items()} for i in range(4)]
        loader = DataLoader(rows, batch_size=3)  # dict batches of 3 and 1 sequences
        streamed = curvature.HessianOperator(gpt2, lm_loss, loader).matvec(v)
    assert top.converged[0] and top.eigenvalues[0] > 0
    assert np.isfinite(tr.trace) and np.isfinite(np.asarray(dens.weights)).all()
    assert ggn.eigenvalues[0] > 0
    # the per-batch means are weighted by sequences (n_b / N), not tokens: compare with the
    # loss that weights each batch's own token mean the same way
    ref_batched = _weighted_hvp(gpt2, tokens, v, [slice(0, 3), slice(3, 4)])
    assert float((streamed - ref_batched).norm() / ref_batched.norm()) < 1e-5
    assert ref.shape == streamed.shape


def _weighted_hvp(model, tokens, v, slices):
    """Reference HVP of sum_b (n_b / N) lm_loss(batch b), batches given as slices (same data)."""
    parts = [collate({k: t[s] for k, t in tokens.items()}) for s in slices]
    sizes = [p.total for p in parts]
    out = None
    for p, n in zip(parts, sizes):
        h = curvature.HessianOperator(model, lm_loss, p).matvec(v) * (n / sum(sizes))
        out = h if out is None else out + h
    return out


def test_gpt2_ntk_with_token_ids_and_features(gpt2, tokens):
    inputs = {k: tokens[k] for k in ("input_ids", "attention_mask")}
    with assert_model_unchanged(gpt2):
        k = ntk.empirical(gpt2, inputs, output_fn=lambda out: out.logits[:, -1], output="trace_sum")
        with pytest.raises(ValueError, match="pool"):
            collapse.features(gpt2, {**inputs, "labels": torch.tensor([0, 1, 0, 1])})
        h, labels = collapse.features(gpt2, {**inputs, "labels": torch.tensor([0, 1, 0, 1])}, pool="last")
        m = collapse.nc_metrics(h, labels)
    assert k.kernel.shape == (4, 4) and torch.allclose(k.kernel, k.kernel.T, rtol=1e-4, atol=1e-6)
    assert bool((torch.linalg.eigvalsh(k.kernel.double()) > -1e-6 * k.kernel.diag().max()).all())
    ref = copy.deepcopy(gpt2).eval()
    with torch.no_grad():
        hidden = ref(**inputs, output_hidden_states=True).hidden_states[-1]
    last = inputs["attention_mask"].sum(1) - 1  # last real token of each (right-padded) sequence
    assert torch.allclose(h, hidden[torch.arange(4), last], rtol=1e-5, atol=1e-6)
    assert np.isfinite(m.nc1)


def test_gpt2_training_step_with_a_temperature_loss(gpt2, tokens):
    model = copy.deepcopy(gpt2)

    def loss(logits, labels):
        v = logits.shape[-1]
        return losses.tempered_cross_entropy(
            logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), tau=2.0
        )

    hist = train.fit(model, loss, tokens, steps=2, lr=0.05, progress=False)
    assert len(hist.loss) == 3 and all(np.isfinite(hist.loss))
    acc = train.accuracy({k: tokens[k] for k in ("input_ids", "attention_mask")}, tokens["labels"])(model)
    assert 0.0 <= acc <= 1.0


def test_sdpa_attention_error_says_eager(tokens):
    require_transformers()
    import transformers

    cfg = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=16, attn_implementation="sdpa"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(cfg)
    if model.config._attn_implementation != "sdpa":
        pytest.skip("this transformers build does not use SDPA attention")
    v = torch.ones(sum(p.numel() for p in model.parameters()))
    try:
        curvature.hvp(model, lm_loss, tokens, v)
    except RuntimeError as exc:
        assert 'attn_implementation="eager"' in str(exc)
    else:
        pytest.skip("SDPA has a double backward on this torch build")
    with pytest.raises(RuntimeError, match='attn_implementation="eager"'):
        curvature.top_eigenvalues(model, lm_loss, tokens, k=1, matrix="ggn")
