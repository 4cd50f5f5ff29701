import math

import pytest
import torch
import torch.nn.functional as F

from lossviz import data, models, train
from lossviz.papers import k05_softmax_collapse as k05
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
        cosines.append(k05.orthogonal_gradient_(model.parameters()))
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
        k05.gradient_weight_cosine([torch.nn.Parameter(torch.ones(2))])


# ---------------------------------------------------------------------------------------------
# the one callback contract, transform= and batch_loss


class _Steps(train.Callback):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = []

    def on_step(self, step, model, loss, history):
        self.seen.append(step)


def _tiny():
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    return torch.nn.Linear(3, 2), (x, y)


def test_callback_records_every_and_the_final_step():
    net, d = _tiny()
    cb = _Steps(every=5)
    train.fit(net, torch.nn.functional.cross_entropy, d, steps=7, callbacks=[cb], progress=False)
    assert cb.seen == [0, 5, 7]


def test_callback_at_and_final_false():
    net, d = _tiny()
    cb = _Steps(at=[1, 3], final=False)
    train.fit(net, torch.nn.functional.cross_entropy, d, steps=7, callbacks=[cb], progress=False)
    assert cb.seen == [1, 3]


def test_callback_never_acts_twice_and_early_stop_is_final():
    class StopAt(_Steps):
        def on_step(self, step, model, loss, history):
            super().on_step(step, model, loss, history)
            return step == 3

    net, d = _tiny()
    stop, watch = StopAt(every=1), _Steps(every=10)
    hist = train.fit(
        net, torch.nn.functional.cross_entropy, d, steps=20, callbacks=[stop, watch], progress=False
    )
    assert hist.stopped_early and stop.seen == [0, 1, 2, 3]
    assert watch.seen == [0, 3]  # the stopping step is offered as final


def test_run_callbacks_for_special_solvers():
    cb = _Steps(every=4)
    stops = [train.run_callbacks([cb], t, None, 0.0, None, final=(t == 6)) for t in range(7)]
    assert cb.seen == [0, 4, 6] and not any(stops)


def test_callback_validates_arguments():
    with pytest.raises(ValueError, match="every"):
        _Steps(every=0)
    with pytest.raises(TypeError, match="final"):
        _Steps(final="yes")
    with pytest.raises(NotImplementedError):
        train.Callback()(0, None, 0.0, None)


def test_transform_is_applied_to_training_batches_with_fit_generator():
    seen = []

    def noisy(xb, yb, gen):
        seen.append(torch.rand(1, generator=gen).item())
        return xb + 0.1, yb

    runs = []
    for _ in range(2):
        net, d = _tiny()
        torch.nn.init.zeros_(net.weight)
        torch.nn.init.zeros_(net.bias)
        train.fit(net, torch.nn.functional.cross_entropy, d, steps=3, transform=noisy, seed=4, progress=False)
        runs.append(net.weight.detach().clone())
    assert len(seen) == 6 and seen[:3] == seen[3:]  # same seed -> same draws
    assert torch.equal(runs[0], runs[1])
    with pytest.raises(TypeError, match="transform"):
        train.fit(net, torch.nn.functional.cross_entropy, d, steps=1, transform=3, progress=False)


def test_batch_loss_sees_model_and_batch():
    calls = []

    def two_view(model, batch):
        a, b = batch
        calls.append(a.shape[0])
        return (model(a) - model(b)).square().mean()

    net = torch.nn.Linear(3, 2)
    x1, x2 = torch.randn(10, 3), torch.randn(10, 3)
    hist = train.fit(net, train.batch_loss(two_view), (x1, x2), steps=4, batch_size=5, lr=0.1, progress=False)
    assert calls == [5] * 5 and hist.loss[-1] < hist.loss[0]
    with pytest.raises(ValueError, match="loss_fn"):
        train.fit(net, train.batch_loss(lambda m, b: m(b[0])), (x1, x2), steps=1, progress=False)


def test_fit_seed_fixes_dropout_and_leaves_global_rng_alone():
    def make():
        torch.manual_seed(123)
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))

    _, d = _tiny()
    out = []
    for _ in range(2):
        net = make()
        state = torch.random.get_rng_state()
        train.fit(net, torch.nn.functional.cross_entropy, d, steps=5, seed=1, progress=False)
        assert torch.equal(torch.random.get_rng_state(), state)
        out.append([p.detach().clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*out))


def test_accuracy_metric_does_not_touch_batchnorm_or_rng():
    from lossviz.testing import BNDropoutNet, assert_model_unchanged

    net = BNDropoutNet(3, 8, 2, seed=0)
    net.train()
    x = torch.randn(32, 3)
    y = torch.zeros(32, dtype=torch.long)
    state = torch.random.get_rng_state()
    with assert_model_unchanged(net):
        a = train.accuracy(x, y)(net)
    assert 0.0 <= a <= 1.0 and torch.equal(torch.random.get_rng_state(), state)


def test_perpgrad_moved_with_deprecation_aliases():
    for name in ("orthogonal_gradient_", "gradient_weight_cosine"):
        with pytest.warns(DeprecationWarning, match=f"papers.k05_softmax_collapse.{name}"):
            assert getattr(train, name) is getattr(k05, name)
    with pytest.raises(AttributeError):
        train.no_such_name  # noqa: B018


def test_accuracy_with_tuple_dict_outputs_and_token_logits():
    """REVIEW B10: (logits, aux) and {"logits": ...} outputs; (B, T, V) logits with -100 padding."""

    class Wrap(torch.nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.lin, self.kind = torch.nn.Linear(3, 4), kind

        def forward(self, x):
            z = self.lin(x)
            return (z, z.sum()) if self.kind == "tuple" else {"logits": z}

    torch.manual_seed(0)
    x = torch.randn(10, 3)
    y = torch.randint(0, 4, (10,))
    t, d = Wrap("tuple"), Wrap("dict")
    d.load_state_dict(t.state_dict())
    want = (t.lin(x).argmax(-1) == y).float().mean().item()
    assert train.accuracy(x, y)(t) == want == train.accuracy(x, y)(d)
    assert train.accuracy(x.double(), y)(t) == want  # float64 inputs cast to the model's dtype
    seq = torch.randn(2, 5, 3)
    labels = torch.randint(0, 4, (2, 5))
    labels[1, 3:] = -100
    pred = t.lin(seq).argmax(-1)
    keep = labels >= 0
    assert train.accuracy(seq, labels)(t) == (pred[keep] == labels[keep]).float().mean().item()


def test_fit_casts_float32_data_for_a_float64_model_and_takes_dict_batches():
    """REVIEW B4: fit with a float64 model and float32 data trains (data cast to the model's dtype)."""
    net = models.MLP(3, (8,), 2, seed=0).double()
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    hist = train.fit(net, F.cross_entropy, (x, y), steps=3, progress=False)
    assert len(hist.loss) == 4 and all(math.isfinite(v) for v in hist.loss)

    class KW(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, features, scale):
            return {"logits": self.lin(features) * scale}

    kw = KW()
    batch = {"features": x, "scale": torch.ones(16, 1), "labels": y}
    hist = train.fit(kw, F.cross_entropy, batch, steps=5, batch_size=4, lr=0.5, progress=False)
    assert len(hist.loss) == 6 and hist.loss[-1] < hist.loss[0] + 1.0


def test_fit_refuses_non_finite_parameters_and_accuracy_checks_label_length():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    x, y = torch.randn(6, 3), torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="`model` has non-finite parameters: 'weight'"):
        train.fit(net, torch.nn.functional.cross_entropy, (x, y), steps=1, progress=False)
    with pytest.raises(ValueError, match="`y` has shape"):
        train.accuracy(x, y[:4])(torch.nn.Linear(3, 2))


# ---- Entropy-SGD (Chaudhari et al. 2017) -----------------------------------------------------------


def _quadratic_fit(opt_kwargs, x0=2.0, steps=1, a=1.0):
    w = torch.nn.Module()
    w.x = torch.nn.Parameter(torch.tensor([x0], dtype=torch.float64))
    w.forward = lambda inputs: w.x
    loss = train.batch_loss(lambda m, b: (a * m.x**2 / 2).sum())
    z = torch.zeros(1, 1, dtype=torch.float64)
    hist = train.fit(
        w, loss, (z, z), steps=steps, optimizer=lambda p: train.EntropySGD(p, **opt_kwargs), progress=False
    )
    return w, hist


def test_entropy_sgd_noise_free_step_is_exact_on_a_quadratic():
    # T = 0: the inner chain converges to argmin a x'^2/2 + gamma (x' - x)^2 / 2 = gamma x / (a + gamma);
    # the outer step x - lr gamma (x - mu) is then exact
    a, gamma, lr = 3.0, 1.0, 0.5
    w, hist = _quadratic_fit(
        {
            "lr": lr,
            "gamma": gamma,
            "temperature": 0.0,
            "inner_steps": 400,
            "inner_lr": 0.1,
            "persistent": False,
        },
        a=a,
    )
    mu = gamma * 2.0 / (a + gamma)
    assert float(w.x) == pytest.approx(2.0 - lr * gamma * (2.0 - mu), abs=1e-10)
    assert len(hist.loss) == 2 and w.x.grad is None


def test_entropy_sgd_samples_the_gibbs_mean_and_is_seeded():
    # with noise the chain's average estimates the Gibbs mean gamma x / (a + gamma): fixed point x = 0 drift
    kw = {"lr": 1.0, "gamma": 1.0, "temperature": 0.5, "inner_steps": 4000, "inner_lr": 0.01, "alpha": 0.999}
    w1, _ = _quadratic_fit({**kw, "seed": 3})
    w2, _ = _quadratic_fit({**kw, "seed": 3})
    w3, _ = _quadratic_fit({**kw, "seed": 4})
    assert float(w1.x) == float(w2.x) and float(w1.x) != float(w3.x)
    state = torch.random.get_rng_state()
    _quadratic_fit({**kw, "seed": 3, "inner_steps": 10})
    assert torch.equal(state, torch.random.get_rng_state())
    # mu ~ 1 (Gibbs mean x/2 at x = 2): x after the step ~ 1 (the average over ~1000 samples)
    assert abs(float(w1.x) - 1.0) < 0.2


def test_entropy_sgd_bad_inputs():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="gamma"):
        train.EntropySGD(p, gamma=0.0)
    with pytest.raises(ValueError, match="inner_steps"):
        train.EntropySGD(p, inner_steps=0)
    with pytest.raises(ValueError, match="alpha"):
        train.EntropySGD(p, alpha=1.0)
    with pytest.raises(TypeError, match="persistent"):
        train.EntropySGD(p, persistent=1)
    with pytest.raises(ValueError, match="closure"):
        train.EntropySGD(p).step()


class _CountingLoader:
    """A re-iterable of batches (like a DataLoader) that records every batch it hands out."""

    def __init__(self, x, y, batch):
        self.inputs, self.targets, self.batch, self.handed = x, y, batch, []

    def __len__(self):
        return math.ceil(len(self.inputs) / self.batch)

    def __iter__(self):
        for i in range(0, len(self.inputs), self.batch):
            self.handed.append(len(self.inputs[i : i + self.batch]))
            yield self.inputs[i : i + self.batch], self.targets[i : i + self.batch]


def test_fit_streams_a_loader_one_step_per_batch_without_concatenating():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 2, generator=g), torch.randint(0, 3, (10,), generator=g)
    loader = _CountingLoader(x, y, batch=4)  # batches of 4, 4, 2
    net = models.MLP(2, (8,), 3, seed=0)
    ref = models.MLP(2, (8,), 3, seed=0)
    hist = train.fit(net, F.cross_entropy, loader, epochs=2, lr=0.1, progress=False)
    # the same updates by hand: SGD on the loader's batches in order, two passes
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    manual = []
    for _ in range(2):
        for xb, yb in ((x[i : i + 4], y[i : i + 4]) for i in range(0, 10, 4)):
            opt.zero_grad()
            loss = F.cross_entropy(ref(xb), yb)
            manual.append(float(loss))
            loss.backward()
            opt.step()
    assert len(hist.loss) == 7  # 6 updates + the final loss (on the next pass's first batch)
    assert hist.loss[:6] == pytest.approx(manual, rel=1e-6)
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert max(loader.handed) == 4  # one batch at a time, never the whole data set
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(net, F.cross_entropy, loader, steps=2, batch_size=4, progress=False)


def test_fit_streams_a_torch_dataloader_with_its_own_shuffling_reproducibly():
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 2, generator=g), torch.randint(0, 2, (12,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True)
    runs = []
    state = torch.random.get_rng_state()
    for _ in range(2):
        net = models.MLP(2, (6,), 2, seed=0)
        train.fit(net, F.cross_entropy, loader, epochs=3, lr=0.1, seed=3, progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(runs[0], runs[1])  # the loader's shuffle draws from the seeded global RNG
    assert torch.equal(state, torch.random.get_rng_state())  # and the caller's RNG is left alone


def _one_cycle(opt, steps=40):
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.5, total_steps=steps, pct_start=0.3, three_phase=True, div_factor=10.0
    )


class _LRLog(train.Callback):
    def __init__(self):
        super().__init__(every=1, final=False)
        self.lrs, self.momenta = [], []

    def on_step(self, step, model, loss, history):
        group = self.opt.param_groups[0]
        self.lrs.append(group["lr"])
        self.momenta.append(group["momentum"])


def test_fit_scheduler_matches_a_hand_written_loop_bit_for_bit():
    x, y, net = _problem()
    ref = models.MLP(2, (32,), 2, activation="tanh", seed=0)
    steps = 40
    # the hand-written loop: backward, optimizer.step(), scheduler.step()
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    sched_ref = _one_cycle(opt_ref, steps)
    lrs_ref, momenta_ref = [], []
    for _ in range(steps):
        lrs_ref.append(opt_ref.param_groups[0]["lr"])
        momenta_ref.append(opt_ref.param_groups[0]["momentum"])
        opt_ref.zero_grad(set_to_none=True)
        F.cross_entropy(ref(x), y).backward()
        opt_ref.step()
        sched_ref.step()
    # fit builds the optimiser; the scheduler is built from it
    log = _LRLog()
    built = []

    def make(opt):
        log.opt = opt
        built.append(opt)
        return _one_cycle(opt, steps)

    hist = train.fit(
        net,
        F.cross_entropy,
        (x, y),
        steps=steps,
        lr=0.1,
        momentum=0.9,
        scheduler=make,
        callbacks=[log],
        progress=False,
    )
    assert len(built) == 1 and not hist.diverged
    assert log.lrs[:steps] == lrs_ref and log.momenta[:steps] == momenta_ref
    assert max(lrs_ref) == pytest.approx(0.5) and lrs_ref[0] == pytest.approx(0.05)
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name


def test_fit_scheduler_steps_once_per_update_with_a_given_optimizer_and_epochs():
    x, y, net = _problem()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    calls = []

    def make(o):
        assert o is opt
        return torch.optim.lr_scheduler.LambdaLR(o, lambda t: calls.append(t) or 1.0 / (1 + t))

    train.fit(
        net, F.cross_entropy, (x, y), epochs=4, batch_size=32, optimizer=opt, scheduler=make, progress=False
    )
    # LambdaLR evaluates its lambda once at construction (t = 0) and once per step: 16 updates
    assert calls == list(range(17))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 / 17)


def test_fit_scheduler_bad_input():
    x, y, net = _problem()
    kw = dict(steps=3, progress=False)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="scheduler"):
        train.fit(net, F.cross_entropy, (x, y), scheduler="onecycle", **kw)
    with pytest.raises(TypeError, match="scheduler.*callable"):
        train.fit(net, F.cross_entropy, (x, y), scheduler=torch.optim.lr_scheduler.StepLR(opt, 1), **kw)
    with pytest.raises(TypeError, match="scheduler.*LRScheduler"):
        train.fit(net, F.cross_entropy, (x, y), scheduler=lambda o: 0.1, **kw)
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        train.fit(net, F.cross_entropy, (x, y), scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau, **kw)
    with pytest.raises(ValueError, match="scheduler"):
        train.fit(
            net, F.cross_entropy, (x, y), scheduler=lambda o: torch.optim.lr_scheduler.StepLR(opt, 1), **kw
        )
    with pytest.raises(ValueError, match="schedule"):
        train.fit(
            net,
            F.cross_entropy,
            (x, y),
            schedule="cosine",
            scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 1),
            **kw,
        )
