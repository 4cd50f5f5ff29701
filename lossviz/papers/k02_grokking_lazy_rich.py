r"""K02: grokking as the transition from lazy to rich training (the toy set-up of the notebook).

Tanishq Kumar, Blake Bordelon, Samuel J. Gershman, Cengiz Pehlevan, "Grokking as the Transition
from Lazy to Rich Training Dynamics", ICLR 2024, arXiv:2310.06110.

The model is the authors' centred two-layer network with fixed unit readouts,

.. math::

    f(x) = \frac{\alpha}{N} \sum_{i=1}^N \big[\phi(w_i \cdot x) - \phi(w_i(0) \cdot x)\big],
    \qquad \phi(h) = h + \frac{\epsilon}{2} h^2,

trained by full-batch gradient descent on ``(1 / (2 alpha^2)) mean(r^2)`` with learning rate
``~ N``. A large output scale ``alpha`` makes training lazy (the NTK stays put: Chizat, Oyallon &
Bach, "On Lazy Training in Differentiable Programming", NeurIPS 2019, arXiv:1812.07956): the
training set is fitted by the initial kernel first and the test loss drops only later, when the
features have rotated toward the target direction (grokking).

:func:`train_two_layer` is a special solver (closed-form gradient, about 5x faster than autograd
for this model; tested against autograd); it shares the training contract of lossviz through
:func:`lossviz.train.run_callbacks` (step 0, every update, the final step offered with
``final=True``), so any :class:`lossviz.train.Callback` (e.g. :class:`lossviz.ntk.NTKSnapshots`)
can be passed to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import ntk
from .._model import model_dtype_device
from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor
from ..train import Callback, History, run_callbacks

__all__ = ["CenteredTwoLayer", "TwoLayerRun", "train_two_layer"]


class CenteredTwoLayer(nn.Module):
    """``f(x) = (alpha / N) sum_i [phi(w_i . x) - phi(w_i(0) . x)]`` with fixed unit readouts.

    The output scale ``alpha`` interpolates between rich (small ``alpha``: features must move to fit)
    and lazy (large ``alpha``: a tiny weight change fits the data, the NTK stays put) training.
    Subtracting the initial function ``f_0`` (kept as a buffer ``w0``) makes ``f = 0`` at
    initialisation for every ``alpha``. ``phi(h) = h + eps h^2 / 2`` (``activation="quadratic"``) as
    in Kumar et al. (2023); train it with the loss ``(1 / (2 alpha^2)) mean(r^2)`` and learning rate
    ``~ N``.

    The only trainable tensor is ``layer.weight`` (an ``nn.Linear`` without bias), so
    :func:`lossviz.ntk.empirical` uses the structured path. ``w_i(0) ~ N(0, weight_std^2 I)`` drawn
    from ``seed`` only (the global torch RNG is not touched). ``center=False`` drops the ``- f_0``
    term.

    Examples
    --------
    >>> net = CenteredTwoLayer(5, 64, alpha=10.0, seed=0)
    >>> float(net(torch.randn(3, 5)).abs().max())
    0.0
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        *,
        alpha: float = 1.0,
        eps: float = 0.1,
        activation: str = "quadratic",
        weight_std: float = 1.0,
        center: bool = True,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.center = bool(center)
        in_features = check_int(in_features, "in_features", minimum=1)
        width = check_int(width, "width", minimum=1)
        self.alpha = check_float(alpha, "alpha", positive=True)
        self.eps = check_float(eps, "eps")
        check_choice(activation, "activation", ("quadratic", "relu", "tanh"))
        self.activation = activation
        self.width = width
        # skip_init: no draw from the global RNG (the weights come from `seed` below)
        device = torch.device("cpu") if device is None else torch.device(device)
        self.layer = nn.utils.skip_init(nn.Linear, in_features, width, bias=False, dtype=dtype, device=device)
        gen = torch.Generator(device=device)
        gen.manual_seed(check_int(seed, "seed", minimum=0))
        with torch.no_grad():
            self.layer.weight.normal_(
                0.0, check_float(weight_std, "weight_std", positive=True), generator=gen
            )
        self.register_buffer("w0", self.layer.weight.detach().clone())

    def phi(self, h: torch.Tensor) -> torch.Tensor:
        if self.activation == "quadratic":
            return h + 0.5 * self.eps * h * h
        return torch.relu(h) if self.activation == "relu" else torch.tanh(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.phi(self.layer(x))
        if self.center:
            h = h - self.phi(torch.nn.functional.linear(x, self.w0))
        return h.sum(-1) * (self.alpha / self.width)

    def initial_output(self, x: torch.Tensor) -> torch.Tensor:
        """``(alpha / N) sum_i phi(w_i(0) . x)``: the uncentred function at initialisation."""
        with torch.no_grad():
            return self.phi(torch.nn.functional.linear(x, self.w0)).sum(-1) * (self.alpha / self.width)

    def feature_matrix(self) -> torch.Tensor:
        """``W^T W - W_0^T W_0`` (D x D): how the first-layer weights changed (learned features)."""
        w = self.layer.weight.detach()
        return w.T @ w - self.w0.T @ self.w0


@dataclass(frozen=True, repr=False)
class TwoLayerRun(Result):
    """History of :func:`train_two_layer` (losses are ``(1 / (2 alpha^2)) mean(r^2)``).

    ``train_loss[t]`` is the loss after ``t`` updates (``t = 0..steps_run``); ``test_loss`` at
    ``test_steps``; ``kernels`` / ``features`` map snapshot steps to the empirical NTK on the
    training inputs (float64) and to :meth:`CenteredTwoLayer.feature_matrix`.
    """

    train_loss: np.ndarray
    test_steps: np.ndarray
    test_loss: np.ndarray | None
    kernels: dict
    features: dict
    steps_run: int
    stopped_early: bool

    def drop_step(self, which: str = "train", fraction: float = 0.5) -> int | None:
        """First step where the loss is below ``fraction`` x its initial value (None if never)."""
        if which == "train":
            steps, loss = np.arange(len(self.train_loss)), self.train_loss
        else:
            if self.test_loss is None:
                raise ValueError("no test loss was recorded")
            steps, loss = self.test_steps, self.test_loss
        below = np.nonzero(loss < fraction * loss[0])[0]
        return int(steps[below[0]]) if below.size else None

    def loss_at(self, step: int, which: str = "test") -> float:
        """The recorded loss at the last recorded step ``<= step``."""
        if which == "train":
            return float(self.train_loss[min(int(step), len(self.train_loss) - 1)])
        if self.test_loss is None:
            raise ValueError("no test loss was recorded")
        i = int(np.searchsorted(self.test_steps, step, side="right")) - 1
        return float(self.test_loss[max(i, 0)])


class _Monitor(Callback):
    """Test loss every ``test_every`` steps, NTK/feature snapshots, and the early-stop rule."""

    def __init__(self, model, x, test_loss, *, steps, test_every, snapshot_at, stop_fraction, patience,
                 stop_factor, snapshot_fraction):  # fmt: skip
        super().__init__(every=1)
        self.model, self.x, self.test_loss_fn = model, x, test_loss
        self.steps, self.test_every = steps, test_every
        self.snaps = set(int(s) for s in snapshot_at)
        self.stop_fraction, self.patience, self.stop_factor = stop_fraction, patience, stop_factor
        self.snapshot_fraction = snapshot_fraction
        self.test_steps: list[int] = []
        self.test_values: list[float] = []
        self.kernels: dict[int, torch.Tensor] = {}
        self.features: dict[int, torch.Tensor] = {}
        self.stop_at: int | None = None
        self.snap_drop_done = False

    def _snapshot(self, step):
        if step not in self.kernels:
            self.kernels[step] = ntk.empirical(self.model, self.x).kernel.to(torch.float64)
            self.features[step] = self.model.feature_matrix().to(torch.float64)

    def __call__(self, step, model, loss, history, final=False):
        if final and self.last_step == step:  # another callback stopped training at this step
            self._snapshot(step)
            return None
        return super().__call__(step, model, loss, history, final=final)

    def on_step(self, step, model, loss, history):
        have_test = self.test_loss_fn is not None
        stop = self.stop_at is not None and step >= self.stop_at
        last = step == self.steps or stop
        if have_test and (step % self.test_every == 0 or last):
            value = self.test_loss_fn()
            self.test_steps.append(step)
            self.test_values.append(value)
            first = self.test_values[0]
            if self.stop_at is None and self.stop_fraction is not None and value < self.stop_fraction * first:
                self.stop_at = max(step + self.patience, int(math.ceil(self.stop_factor * step)))
                stop = step >= self.stop_at
                last = last or stop
            if (
                not self.snap_drop_done
                and self.snapshot_fraction is not None
                and value < self.snapshot_fraction * first
            ):
                self.snaps.add(step)
                self.snap_drop_done = True
        if step in self.snaps or last:
            self._snapshot(step)
        return True if stop else None


def train_two_layer(
    model: CenteredTwoLayer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    steps: int,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    test_every: int = 1,
    snapshot_at: Sequence[int] = (),
    stop_test_fraction: float | None = None,
    patience: int = 0,
    stop_factor: float = 1.0,
    snapshot_test_fraction: float | None = None,
    callbacks: Sequence = (),
    progress: bool = False,
) -> TwoLayerRun:
    """Full-batch gradient descent on ``(1 / (2 alpha^2)) mean((f(x) - y)^2)`` for :class:`CenteredTwoLayer`.

    Trains ``model`` **in place** (like :func:`lossviz.train.fit`) with the closed-form gradient
    ``dL/dW = (1 / (alpha N P)) (r * phi'(X W^T))^T X`` (a unit test checks it against autograd),
    the initial function ``f_0`` being computed once. This is a special solver: it offers every
    step to ``callbacks`` through :func:`lossviz.train.run_callbacks` (the final step with
    ``final=True``; a callback returning ``True`` stops training).

    ``snapshot_at`` steps store the empirical NTK on ``x`` and the feature matrix (the final step
    is always included). ``stop_test_fraction``: once the test loss first falls below that fraction
    of its initial value, at step ``t_drop``, stop at ``max(t_drop + patience, stop_factor * t_drop)``
    (e.g. ``stop_factor=3``: train to three times the grokking time, to see the late drop through).
    ``snapshot_test_fraction``: also take a snapshot when the test loss first falls below that
    fraction (e.g. 0.5: at the grokking time).
    """
    if not isinstance(model, CenteredTwoLayer):
        raise TypeError(f"`model` must be a CenteredTwoLayer, got {type(model).__name__}")
    dtype, device = model_dtype_device(model)
    x = check_tensor(x, "x", ndim=2, floating=True).to(dtype=dtype, device=device)
    y = check_tensor(y, "y", ndim=1, floating=True).to(dtype=dtype, device=device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`y` has {y.shape[0]} entries but `x` has {x.shape[0]} rows")
    lr = check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    test_every = check_int(test_every, "test_every", minimum=1)
    patience = check_int(patience, "patience", minimum=0)
    stop_factor = check_float(stop_factor, "stop_factor", minimum=1.0)
    have_test = x_test is not None
    if have_test:
        x_test = check_tensor(x_test, "x_test", ndim=2, floating=True).to(dtype=dtype, device=device)
        y_test = check_tensor(y_test, "y_test", ndim=1, floating=True).to(dtype=dtype, device=device)
    if (stop_test_fraction is not None or snapshot_test_fraction is not None) and not have_test:
        raise ValueError("`stop_test_fraction` and `snapshot_test_fraction` need `x_test` and `y_test`")
    alpha, n_units, p = model.alpha, model.width, x.shape[0]
    scale = alpha / n_units
    w = model.layer.weight
    f0 = model.initial_output(x) if model.center else torch.zeros_like(y)
    f0t = (model.initial_output(x_test) if model.center else torch.zeros_like(y_test)) if have_test else None
    quad = model.activation == "quadratic"

    def dphi(h):
        if model.activation == "relu":
            return (h > 0).to(h.dtype)
        return 1 - torch.tanh(h) ** 2

    def output(xx, h):
        if quad:  # sum_i phi(h_i) = x . sum_i w_i + (eps/2) ||h||^2: one pass over h
            return (xx @ w.sum(0) + (0.5 * model.eps) * torch.linalg.vector_norm(h, dim=1).square()) * scale
        return model.phi(h).sum(1) * scale

    def test_loss():
        with torch.no_grad():
            rt = output(x_test, x_test @ w.T) - f0t - y_test
            return float(0.5 / alpha**2 * (rt * rt).mean())

    monitor = _Monitor(
        model, x, test_loss if have_test else None, steps=steps, test_every=test_every,
        snapshot_at=snapshot_at, stop_fraction=stop_test_fraction, patience=patience,
        stop_factor=stop_factor, snapshot_fraction=snapshot_test_fraction,
    )  # fmt: skip
    cbs = [monitor, *callbacks]
    history = History()
    from tqdm.auto import tqdm

    t = 0
    with torch.no_grad():
        for t in tqdm(range(steps + 1), disable=not progress, leave=False, desc=f"alpha={alpha:g}"):
            h = x @ w.T
            r = output(x, h) - f0 - y
            value = float(0.5 / alpha**2 * (r * r).mean())
            history.loss.append(value)
            final = t == steps
            with torch.enable_grad():  # callbacks (the NTK) may need autograd
                stop = run_callbacks(cbs, t, model, value, history, final=final)
                if stop and not final:
                    history.stopped_early = True
                    run_callbacks(cbs, t, model, value, history, final=True)
            if final or stop:
                break
            if quad:  # (r * (1 + eps h))^T X = 1 (r^T X) + eps (r * h)^T X
                grad = torch.addmm((r @ x).expand(n_units, -1), h.mul_(r[:, None]).T, x, alpha=model.eps)
            else:
                grad = (r[:, None] * dphi(h)).T @ x
            w.sub_(grad, alpha=lr / (alpha * n_units * p))
    return TwoLayerRun(
        np.array(history.loss),
        np.array(monitor.test_steps),
        np.array(monitor.test_values) if have_test else None,
        monitor.kernels,
        monitor.features,
        int(t),
        bool(t < steps),
    )
