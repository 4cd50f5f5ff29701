import math

import pytest
import torch
import torch.nn.functional as F

from lossviz import data, models, train
from lossviz.testing import BNDropoutNet


def _problem(seed=0):
    x, y = data.two_moons(128, noise=0.1, seed=seed)
    return x, y, models.MLP(2, (32,), 2, activation="tanh", seed=seed)


def test_fit_learns_and_records():
    x, y, net = _problem()
    rec = train.Recorder(
        every=25,
        at=[1, 3],
        metrics={"acc": train.accuracy(x, y)},
        parameters=True,
        features=lambda m: m.features(x),
    )
    hist = train.fit(
        net, F.cross_entropy, (x, y), steps=100, optimizer="adam", lr=0.02, callbacks=[rec], progress=False
    )
    assert len(hist.loss) == 101 and hist.num_steps == 100
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert hist.steps("acc") == [0, 1, 3, 25, 50, 75, 100]
    assert hist.values("acc")[-1] > 0.9
    assert hist.values("features")[0].shape == (128, 32)
    p0, p100 = hist.values("parameters")[0], hist.values("parameters")[-1]
    assert not torch.equal(p0["head.weight"], p100["head.weight"])
    # the recorded loss at step t is the loss of the parameters after t updates
    with torch.no_grad():
        assert math.isclose(F.cross_entropy(net(x), y).item(), hist.loss[-1], rel_tol=1e-5)
    with pytest.raises(KeyError, match="nothing recorded"):
        hist.values("nope")


def test_fit_is_seeded_minibatch():
    runs = []
    for _ in range(2):
        x, y, net = _problem()
        runs.append(
            train.fit(
                net, F.cross_entropy, (x, y), epochs=3, batch_size=32, lr=0.1, seed=4, progress=False
            ).loss
        )
    assert runs[0] == runs[1] and len(runs[0]) == 3 * 4 + 1


def test_fit_restores_mode_and_grads():
    model = BNDropoutNet(train=False)
    for p in model.parameters():
        p.grad = None
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    train.fit(model, F.cross_entropy, (x, y), steps=3, progress=False)
    assert not model.training and not model.bn.training
    assert all(p.grad is None for p in model.parameters())


def test_fit_divergence_and_early_stop():
    x, y, net = _problem()
    hist = train.fit(
        net,
        F.cross_entropy,
        (x, y),
        steps=200,
        lr=1e6,
        momentum=0.9,
        progress=False,
        divergence_threshold=1e3,
    )
    assert hist.diverged and len(hist.loss) < 201
    x, y, net = _problem()
    hist = train.fit(
        net,
        F.cross_entropy,
        (x, y),
        steps=50,
        lr=0.1,
        progress=False,
        callbacks=[lambda step, m, loss, h: step >= 5],
    )
    assert hist.stopped_early and len(hist.loss) == 6


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(), ValueError, "steps"),
        (dict(steps=3, epochs=2), ValueError, "steps"),
        (dict(steps=3, optimizer="rmsprop"), ValueError, "optimizer"),
        (dict(steps=3, lr=float("nan")), ValueError, "lr"),
        (dict(steps=3, batch_size=0), ValueError, "batch_size"),
        (dict(steps=3, callbacks=[3]), TypeError, "callbacks"),
        (dict(steps=3, schedule="step"), ValueError, "schedule"),
    ],
)
def test_fit_bad_input(kw, exc, match):
    x, y, net = _problem()
    with pytest.raises(exc, match=match):
        train.fit(net, F.cross_entropy, (x, y), progress=False, **kw)


def test_recorder_bad_input():
    with pytest.raises(TypeError, match="metrics"):
        train.Recorder(metrics={"a": 3})
    with pytest.raises(ValueError, match="every"):
        train.Recorder(every=0)


def test_callbacks_accepting_final_see_the_last_step():
    x, y, net = _problem()
    seen = []

    def cb(step, model, loss, history, final=False):
        seen.append((step, final))

    train.fit(
        net, F.cross_entropy, (x, y), steps=3, lr=0.1, progress=False, callbacks=[cb, lambda s, m, l, h: None]
    )
    assert seen == [(0, False), (1, False), (2, False), (3, True)]


def test_early_stop_calls_plain_callbacks_once_per_step():
    x, y, net = _problem()
    steps = []
    rec = train.Recorder(every=100, metrics={"acc": train.accuracy(x, y)})

    def stopper(step, model, loss, history):
        steps.append(step)
        return step >= 4

    hist = train.fit(net, F.cross_entropy, (x, y), steps=50, lr=0.1, progress=False, callbacks=[stopper, rec])
    assert steps == [0, 1, 2, 3, 4]
    assert hist.steps("acc") == [0, 4], "the Recorder still records the stopping step"


def test_grad_hook_and_orthogonal_gradient():
    x, y, net = _problem()
    cosines = []

    def hook(step, model, history):
        cosines.append(train.orthogonal_gradient_(model.parameters()))
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        w = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        assert abs(float(g @ w)) <= 1e-5 * float(g.norm() * w.norm()), "gradient must be orthogonal to w"
        history.record("cos", step, cosines[-1])

    hist = train.fit(net, F.cross_entropy, (x, y), steps=5, lr=0.1, progress=False, grad_hook=hook)
    assert len(cosines) == 5 and hist.steps("cos") == [0, 1, 2, 3, 4]
    assert all(-1 <= c <= 1 for c in cosines)
    # plain SGD with a projected gradient keeps ||w|| from growing to first order
    with pytest.raises(TypeError, match="grad_hook"):
        train.fit(net, F.cross_entropy, (x, y), steps=1, progress=False, grad_hook=3)
    with pytest.raises(ValueError, match="backward"):
        train.gradient_weight_cosine([torch.nn.Parameter(torch.ones(2))])
