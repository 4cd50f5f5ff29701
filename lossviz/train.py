"""A small training loop with recording callbacks and an in-memory history.

:func:`fit` trains ``model`` **in place**: that is its purpose, and the one place where lossviz
changes a model's parameters on request. It restores every submodule's ``.training`` flag when it
returns and leaves no ``.grad`` behind that was not there (grads are set to ``None`` at the end
unless ``keep_grads=True``).

Step convention: at step ``t`` the model has received ``t`` updates; callbacks are called at
``t = 0`` (the initialisation) and after every update, with the training loss of the current
batch at the current parameters. So ``history.loss[t]`` is the loss after ``t`` updates.

>>> import torch
>>> from lossviz import data, models, train
>>> x, y = data.two_moons(64, seed=0)
>>> net = models.MLP(2, (16,), 2, seed=0)
>>> rec = train.Recorder(every=10, metrics={"acc": train.accuracy(x, y)})
>>> hist = train.fit(net, torch.nn.functional.cross_entropy, (x, y), steps=20, lr=0.5,
...                  callbacks=[rec], progress=False)
>>> len(hist.loss), hist.steps("acc")
(21, [0, 10, 20])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._model import collate
from ._validate import check_choice, check_float, check_int, check_module

__all__ = [
    "fit",
    "History",
    "Recorder",
    "accuracy",
    "Callback",
    "gradient_weight_cosine",
    "orthogonal_gradient_",
]

Callback = Callable[[int, nn.Module, float, "History"], Any]


@dataclass
class History:
    """What :func:`fit` recorded, kept in memory (no files).

    Attributes
    ----------
    loss : list of float
        Training loss after ``t`` updates, ``t = 0..T`` (batch loss for mini-batch training).
    records : dict name -> list of (step, value)
        Written by :class:`Recorder` callbacks (metrics, parameter snapshots, features).
    diverged : bool
        Training stopped because the loss became non-finite (or above ``divergence_threshold``).
    stopped_early : bool
        A callback returned ``True``.
    """

    loss: list[float] = field(default_factory=list)
    records: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    diverged: bool = False
    stopped_early: bool = False

    def record(self, name: str, step: int, value: Any) -> None:
        self.records.setdefault(name, []).append((step, value))

    def steps(self, name: str) -> list[int]:
        """Steps at which ``name`` was recorded."""
        return [s for s, _ in self._get(name)]

    def values(self, name: str) -> list[Any]:
        """Recorded values of ``name`` in step order."""
        return [v for _, v in self._get(name)]

    def _get(self, name: str):
        if name not in self.records:
            raise KeyError(f"nothing recorded under {name!r}; recorded: {sorted(self.records)}")
        return self.records[name]

    @property
    def num_steps(self) -> int:
        return max(len(self.loss) - 1, 0)


class Recorder:
    """Callback that records metrics, parameters and features at chosen steps.

    Parameters
    ----------
    every : int, optional
        Record every ``every`` steps (always including step 0 and the last step).
    at : iterable of int, optional
        Record exactly at these steps (in addition to ``every``), e.g. ``[0, 1, 2, 4, 8]``.
    metrics : mapping name -> callable(model) -> number or tensor
        Evaluated under ``torch.no_grad()`` in eval mode (the model's mode is restored).
    parameters : bool
        Record a detached copy of ``model.state_dict()`` under ``"parameters"``.
    features : callable(model) -> tensor, optional
        Record a detached copy of its output under ``"features"``.
    """

    def __init__(
        self,
        every: int | None = None,
        *,
        at: Iterable[int] | None = None,
        metrics: Mapping[str, Callable[[nn.Module], Any]] | None = None,
        parameters: bool = False,
        features: Callable[[nn.Module], torch.Tensor] | None = None,
    ):
        if every is None and at is None:
            every = 1
        self.every = None if every is None else check_int(every, "every", minimum=1)
        self.at = set() if at is None else {check_int(s, "at[i]", minimum=0) for s in at}
        self.metrics = dict(metrics or {})
        for k, fn in self.metrics.items():
            if not callable(fn):
                raise TypeError(f"`metrics[{k!r}]` must be callable(model), got {type(fn).__name__}")
        self.parameters = bool(parameters)
        if features is not None and not callable(features):
            raise TypeError("`features` must be callable(model) -> tensor")
        self.features = features
        self.last_step: int | None = None

    def wants(self, step: int, final: bool = False) -> bool:
        return step in self.at or (self.every is not None and (step % self.every == 0 or final))

    def __call__(self, step: int, model: nn.Module, loss: float, history: History, final: bool = False):
        if not self.wants(step, final) or self.last_step == step:
            return None
        self.last_step = step
        flags = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                for name, fn in self.metrics.items():
                    value = fn(model)
                    if isinstance(value, torch.Tensor):
                        value = value.item() if value.numel() == 1 else value.detach().clone()
                    history.record(name, step, value)
                if self.parameters:
                    history.record(
                        "parameters", step, {k: v.detach().clone() for k, v in model.state_dict().items()}
                    )
                if self.features is not None:
                    history.record("features", step, self.features(model).detach().clone())
        finally:
            for m, flag in flags:
                m.training = flag
        return None


def accuracy(x: torch.Tensor, y: torch.Tensor) -> Callable[[nn.Module], float]:
    """A metric for :class:`Recorder`: classification accuracy of ``model(x)`` against ``y``."""

    def metric(model: nn.Module) -> float:
        out = model(x)
        if out.ndim == 1 or out.shape[-1] == 1:
            pred = (out.reshape(-1) > 0).long()
        else:
            pred = out.argmax(-1)
        return (pred == y).float().mean().item()

    return metric


def _accepts_final(cb) -> bool:
    """Whether a callback takes the ``final=`` keyword (set on the last step of training)."""
    try:
        params = inspect.signature(cb).parameters
    except (TypeError, ValueError):
        return False
    return "final" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _make_optimizer(optimizer, params, lr, momentum, weight_decay):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer(params)
    check_choice(optimizer, "optimizer", ("sgd", "adam", "adamw"))
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: str | torch.optim.Optimizer | Callable = "sgd",
    lr: float = 0.1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    schedule: str | None = None,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    grad_hook: Callable[[int, nn.Module, History], Any] | None = None,
    callbacks: Sequence[Callback] = (),
    divergence_threshold: float = math.inf,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
    keep_grads: bool = False,
) -> History:
    """Train ``model`` in place on ``data`` and return the :class:`History`.

    Parameters
    ----------
    loss_fn : callable(outputs, targets) -> scalar mean loss
    data : ``(inputs, targets)`` tensors or a :class:`lossviz.data.Dataset`
    steps, epochs : int
        Number of optimiser updates, or of passes over the data (exactly one must be given).
    batch_size : int, optional
        Mini-batch size (shuffled each epoch with ``seed``); ``None`` = full batch.
    optimizer : ``"sgd"`` | ``"adam"`` | ``"adamw"``, an optimiser, or ``callable(params)``
    schedule : ``None`` | ``"cosine"``
        Learning-rate schedule over the total number of steps.
    regularizer : callable(model) -> scalar, added to the loss (e.g. a feature penalty)
    grad_hook : callable(step, model, history), optional
        Called after ``backward()`` and before the optimiser step: may read or change the
        gradients (e.g. :func:`orthogonal_gradient_`) and record into ``history``.
    callbacks : callables ``cb(step, model, loss, history)``; returning ``True`` stops training.
        A callback that accepts a ``final`` keyword gets ``final=True`` on the last step.
    divergence_threshold : float
        Stop and set ``history.diverged`` once the loss is non-finite or above this.
    """
    check_module(model, "model")
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable(outputs, targets), got {type(loss_fn).__name__}")
    batches = collate(data, "data")
    x, y = batches.cat()
    n = x.shape[0]
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of `steps` or `epochs`")
    bs = n if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    bs = min(bs, n)
    per_epoch = math.ceil(n / bs)
    total = (
        check_int(steps, "steps", minimum=0)
        if steps is not None
        else check_int(epochs, "epochs", minimum=0) * per_epoch
    )
    lr = check_float(lr, "lr", minimum=0.0)
    if grad_hook is not None and not callable(grad_hook):
        raise TypeError("`grad_hook` must be callable(step, model, history)")
    check_float(momentum, "momentum", minimum=0.0)
    check_float(weight_decay, "weight_decay", minimum=0.0)
    if schedule is not None:
        check_choice(schedule, "schedule", ("cosine",))
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"`callbacks[{i}]` must be callable(step, model, loss, history)")
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, lr, momentum, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1)) if schedule else None
    history = History()
    flags = [(m, m.training) for m in model.modules()]
    had_grad = [p.grad is not None for p in model.parameters()]

    def batch_iter():
        while True:
            if bs >= n:
                yield x, y
            else:
                perm = torch.randperm(n, generator=gen).to(x.device)
                for i in range(per_epoch):
                    idx = perm[i * bs : (i + 1) * bs]
                    yield x[idx], y[idx]

    wants_final = [_accepts_final(cb) for cb in callbacks]

    def run_callbacks(step, loss_value, final=False, only_final=False):
        stop = False
        for cb, takes_final in zip(callbacks, wants_final):
            if only_final and not takes_final:
                continue
            out = (
                cb(step, model, loss_value, history, final=final)
                if takes_final
                else cb(step, model, loss_value, history)
            )
            stop = stop or out is True
        return stop

    def objective(xb, yb):
        loss = loss_fn(model(xb), yb)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("`loss_fn` must return a scalar tensor")
        if regularizer is not None:
            loss = loss + regularizer(model)
        return loss

    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc or "training", disable=not progress, leave=False)
        it = batch_iter()
        model.train()
        for step in range(total + 1):
            xb, yb = next(it)
            final = step == total
            if final:
                with torch.no_grad():
                    loss = objective(xb, yb)
            else:
                opt.zero_grad(set_to_none=True)
                loss = objective(xb, yb)
            value = float(loss.detach())
            history.loss.append(value)
            if not math.isfinite(value) or value > divergence_threshold:
                history.diverged = True
                break
            if run_callbacks(step, value, final=final):
                history.stopped_early = True
                # callbacks that take `final` (Recorders) see the stopping step as the last one;
                # plain callbacks were already called for this step and are not called twice
                run_callbacks(step, value, final=True, only_final=True)
                break
            if final:
                break
            loss.backward()
            if grad_hook is not None:
                grad_hook(step, model, history)
            opt.step()
            if sched is not None:
                sched.step()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{value:.4g}")
        bar.close()
    finally:
        for m, flag in flags:
            m.training = flag
        if not keep_grads:
            for p, had in zip(model.parameters(), had_grad):
                if not had:
                    p.grad = None
    return history


def _flat_grad_and_weights(params) -> tuple[torch.Tensor, torch.Tensor, list[torch.nn.Parameter]]:
    params = [p for p in params if p.grad is not None]
    if not params:
        raise ValueError("`params` have no gradients: call backward() first")
    g = torch.cat([p.grad.reshape(-1) for p in params])
    w = torch.cat([p.detach().reshape(-1) for p in params])
    return g, w, params


def gradient_weight_cosine(params) -> float:
    """``cos(-grad, w)`` over all ``params`` (with ``.grad`` set).

    Near 1 the gradient mostly rescales the weights: the "naive loss minimisation" direction of
    Prieto, Barsbey, Mediano and Birdal, *Grokking at the Edge of Numerical Stability* (ICLR 2025,
    arXiv:2501.04697), which grows the logits without changing the predictions.
    """
    g, w, _ = _flat_grad_and_weights(list(params))
    return _cosine(-g, w)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else 0.0


def orthogonal_gradient_(params) -> float:
    """⊥Grad, in place: remove from the gradient its component along the weights.

    ``g <- g - (g . w / w . w) w`` over the concatenation of all ``params`` (Prieto et al. 2025,
    arXiv:2501.04697, Section 5): the update can no longer just scale the weights up, which is what
    drives softmax collapse. Use it as a :func:`fit` ``grad_hook``. Returns ``cos(-g, w)`` before
    the projection.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    >>> w.grad = torch.tensor([-3.0, 0.0], dtype=torch.float64)
    >>> round(orthogonal_gradient_([w]), 3)
    0.6
    >>> abs(float(w.grad @ w.detach())) < 1e-5
    True
    """
    g, w, params = _flat_grad_and_weights(list(params))
    cos = _cosine(-g, w)
    ww = w @ w
    if ww > 0:
        coef = (g @ w) / ww
        with torch.no_grad():
            for p in params:
                p.grad -= coef * p.detach()
    return cos
