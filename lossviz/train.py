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

from ._deprecate import moved
from ._model import (
    BatchLoss,
    batch_value,
    call_model,
    cast,
    collate,
    eval_mode,
    input_size,
    logits_of,
    loss_scalar,
    map_inputs,
    model_dtype_device,
)
from ._validate import check_choice, check_finite_parameters, check_float, check_int, check_module

__all__ = [
    "fit",
    "History",
    "Callback",
    "Recorder",
    "run_callbacks",
    "batch_loss",
    "accuracy",
    "EntropySGD",
]


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


class Callback:
    """The one callback contract of lossviz: when to act (``every``/``at``/``final``) and what.

    A training loop (:func:`fit`, or a special solver through :func:`run_callbacks`) calls
    ``cb(step, model, loss, history, final=...)`` at step 0 (the initialisation) and after every
    update; the last step of training, also when a callback or divergence stops it early, is
    always offered with ``final=True``. The callback acts, by calling :meth:`on_step`, when

    * ``step`` is in ``at``, or
    * ``every`` is set and ``step % every == 0``, or
    * ``final=True`` and the callback was built with ``final=True`` (the default),

    and never twice for one step. So a 7-step run with ``every=5`` acts at steps 0, 5 and 7.
    :meth:`on_step` returning ``True`` stops training. Subclasses override :meth:`on_step` (and
    usually offer ``result()``); ``every`` and ``at`` both ``None`` means every step.

    Parameters
    ----------
    every : int, optional
        Act every ``every`` steps (>= 1).
    at : iterable of int, optional
        Act exactly at these steps (>= 0), in addition to ``every``.
    final : bool
        Act at the final step (default ``True``).

    Examples
    --------
    >>> class Count(Callback):
    ...     def on_step(self, step, model, loss, history):
    ...         self.seen.append(step)
    >>> cb = Count(every=5); cb.seen = []
    >>> for t in range(8):
    ...     _ = cb(t, None, 0.0, None, final=(t == 7))
    >>> cb.seen
    [0, 5, 7]
    """

    def __init__(self, every: int | None = None, *, at: Iterable[int] | None = None, final: bool = True):
        if every is None and at is None:
            every = 1
        self.every = None if every is None else check_int(every, "every", minimum=1)
        self.at = frozenset() if at is None else frozenset(check_int(s, "at[i]", minimum=0) for s in at)
        if not isinstance(final, bool):
            raise TypeError(f"`final` must be a bool, got {final!r}")
        self.final = final
        self.last_step: int | None = None

    def wants(self, step: int, final: bool = False) -> bool:
        """Whether the callback acts at ``step`` (see the class docstring)."""
        return (
            step in self.at
            or (self.every is not None and step % self.every == 0)
            or (bool(final) and self.final)
        )

    def __call__(
        self, step: int, model: nn.Module, loss: float, history: History | None, final: bool = False
    ):
        if not self.wants(step, final) or self.last_step == step:
            return None
        self.last_step = step
        return self.on_step(step, model, loss, history)

    def on_step(self, step: int, model: nn.Module, loss: float, history: History | None):
        """Act at ``step``; return ``True`` to stop training. Subclasses override this."""
        raise NotImplementedError


class Recorder(Callback):
    """Callback that records metrics, parameters and features at chosen steps.

    Parameters
    ----------
    every, at, final
        When to record (see :class:`Callback`; the final step is always recorded by default).
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
        final: bool = True,
        metrics: Mapping[str, Callable[[nn.Module], Any]] | None = None,
        parameters: bool = False,
        features: Callable[[nn.Module], torch.Tensor] | None = None,
    ):
        super().__init__(every, at=at, final=final)
        self.metrics = dict(metrics or {})
        for k, fn in self.metrics.items():
            if not callable(fn):
                raise TypeError(f"`metrics[{k!r}]` must be callable(model), got {type(fn).__name__}")
        self.parameters = bool(parameters)
        if features is not None and not callable(features):
            raise TypeError("`features` must be callable(model) -> tensor")
        self.features = features

    def on_step(self, step: int, model: nn.Module, loss: float, history: History | None):
        if history is None:
            raise ValueError("`history` is required: Recorder writes into the training History")
        with eval_mode(model), torch.no_grad():
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
        return None


def accuracy(
    x, y: torch.Tensor, *, output_fn: Callable[[Any], torch.Tensor] | None = None
) -> Callable[[nn.Module], float]:
    """A metric for :class:`Recorder`: classification accuracy of ``model(x)`` against ``y``.

    One output column is read as a logit (positive = class 1); several as class scores (argmax,
    over the last dimension, so (B, T, V) logits against (B, T) labels work too). ``x`` is a
    tensor, a tuple of positional inputs or a dict of keyword inputs (``model(**x)``); floating
    inputs are cast to the model's dtype and device, token ids are not. ``output_fn`` turns the
    model's output into scores (default :func:`lossviz._model.logits_of`: a tensor, a tuple's
    first element, a dict's / ``ModelOutput``'s ``"logits"``). The returned ``metric(model)``
    evaluates in eval mode under ``no_grad`` and restores the model's modes, so it changes no
    BatchNorm statistics and draws no random numbers.
    """
    output_fn = logits_of if output_fn is None else output_fn
    if not callable(output_fn):
        raise TypeError(f"`output_fn` must be callable(output) -> tensor, got {type(output_fn).__name__}")

    def metric(model: nn.Module) -> float:
        dtype, device = model_dtype_device(model)
        xs = map_inputs(x, lambda t: cast(t, dtype, device))
        with eval_mode(model), torch.no_grad():
            out = call_model(model, xs, None, None, "x")
        try:
            out = output_fn(out)
        except TypeError as exc:
            raise TypeError(f"`model` output: {exc}") from None
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"`output_fn` must return a tensor of scores, got {type(out).__name__}")
        if out.ndim == 1 or out.shape[-1] == 1:
            pred = (out.reshape(-1) > 0).long()
        else:
            pred = out.argmax(-1)
        target = y.to(pred.device) if isinstance(y, torch.Tensor) else torch.as_tensor(y, device=pred.device)
        if target.shape != pred.shape:
            raise ValueError(
                f"`y` has shape {tuple(target.shape)} but the model gives {tuple(pred.shape)} predictions for `x`"
            )
        if not target.is_floating_point() and bool((target < 0).any()):  # -100: padding, ignored
            keep = target >= 0
            return (pred[keep] == target[keep]).float().mean().item()
        return (pred == target).float().mean().item()

    return metric


def batch_loss(fn: Callable[[nn.Module, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]) -> BatchLoss:
    """Mark ``fn(model, (inputs, targets)) -> scalar`` as a loss that sees the model and the batch.

    For :func:`fit` (and every lossviz function taking ``loss_fn``) when the objective is not
    ``loss_fn(outputs, targets)``: two views per sample, per-sample temperatures looked up by
    sample index, or a regularised objective.

    >>> import torch
    >>> from lossviz import train
    >>> two_view = train.batch_loss(lambda m, b: (m(b[0]) - m(b[1])).square().mean())
    >>> x1, x2 = torch.randn(8, 3), torch.randn(8, 3)
    >>> hist = train.fit(torch.nn.Linear(3, 2), two_view, (x1, x2), steps=3, progress=False)
    >>> len(hist.loss)
    4
    """
    return BatchLoss(fn)


def _accepts_final(cb) -> bool:
    """Whether a plain callable callback takes the ``final=`` keyword."""
    if isinstance(cb, Callback):
        return True
    try:
        params = inspect.signature(cb).parameters
    except (TypeError, ValueError):
        return False
    return "final" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_callbacks(
    callbacks: Sequence,
    step: int,
    model: nn.Module,
    loss: float,
    history: History | None,
    *,
    final: bool = False,
) -> bool:
    """Call every callback for ``step`` (the contract of :class:`Callback`); ``True`` = stop.

    For special solvers (L-BFGS, closed-form flows, batched maps) so they share :func:`fit`'s
    contract: call it at step 0, after every update, and once with ``final=True`` at the end.
    Plain callables ``cb(step, model, loss, history)`` are supported; they get ``final=`` only if
    their signature takes it.
    """
    stop = False
    for cb in callbacks:
        out = (
            cb(step, model, loss, history, final=final)
            if _accepts_final(cb)
            else cb(step, model, loss, history)
        )
        stop = stop or out is True
    return stop


def _check_callbacks(callbacks) -> list:
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(
                f"`callbacks[{i}]` must be a train.Callback or callable(step, model, loss, history)"
            )
    return callbacks


class EntropySGD(torch.optim.Optimizer):
    r"""Entropy-SGD: gradient descent on the local entropy, with an inner Langevin (SGLD) chain.

    Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun & Zecchina, *Entropy-SGD:
    Biasing Gradient Descent Into Wide Valleys*, ICLR 2017, arXiv:1611.01838 (Algorithm 1). The
    outer step descends the smoothed energy :math:`f_{\gamma,T}` (see
    :func:`lossviz.landscape.local_entropy`), whose gradient is :math:`\gamma (x - \langle x'\rangle)`;
    the mean is estimated by ``inner_steps`` steps of SGLD on
    :math:`f(x') + \frac{\gamma}{2}\|x - x'\|^2` at temperature :math:`T`,

    .. math::

        x' \leftarrow x' - \eta' \big(\nabla f(x') + \gamma (x' - x)\big) + \sqrt{2\eta' T}\,\xi,
        \qquad \mu \leftarrow \alpha\mu + (1 - \alpha) x',

    then :math:`x \leftarrow x - \eta\gamma(x - \mu)`. ``alpha`` weighs the *old* average (the
    authors' code uses 0.75). The noise :math:`\sqrt{2\eta' T}\,\xi` makes the chain sample the Gibbs
    density of the local entropy at temperature ``temperature`` (the paper writes a thermal noise
    :math:`\sqrt{\eta'}\,\varepsilon`; ours is that with :math:`\varepsilon = \sqrt{2T}`).

    ``persistent=True`` (default) continues the chain :math:`x'` from where the last outer step
    left it; ``False`` restarts it at :math:`x` every step, as in the paper's Algorithm 1 (on
    small toys a short restarted chain rarely leaves a sharp well). :math:`\mu` restarts at the
    chain's first point each outer step.

    ``step(closure)`` needs a closure that zeroes the gradients, evaluates the loss at the current
    parameters, calls ``backward()`` and returns the loss; :func:`fit` passes one (on the current
    training batch) to any optimiser with ``requires_closure = True``. The noise comes from this
    optimiser's own generator (``seed``), never from the global RNG.

    Parameters
    ----------
    lr : outer step :math:`\eta` (the update is ``lr * gamma * (x - mu)``)
    gamma : scope :math:`\gamma > 0`
    temperature : :math:`T > 0` (``0`` gives a noise-free inner gradient descent)
    inner_steps : :math:`L`
    inner_lr : :math:`\eta'`
    alpha : averaging weight of the old mean, in ``[0, 1)``
    persistent : continue the inner chain across outer steps
    seed : seed of the optimiser's generator

    After a step, ``optimizer.last_inner_loss`` is the closure's last value (at :math:`x'`).

    Examples
    --------
    >>> import torch
    >>> from lossviz import train
    >>> w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    >>> opt = train.EntropySGD([w], lr=1.0, gamma=1.0, temperature=0.0, inner_steps=200, inner_lr=0.1)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = (w**2 / 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> _ = opt.step(closure)   # noise-free: mu -> x / 2, so x -> x - 1 * (x - x / 2)
    >>> round(float(w), 4)
    1.0
    """

    requires_closure = True

    def __init__(
        self,
        params,
        lr: float = 1.0,
        *,
        gamma: float = 0.03,
        temperature: float = 1e-4,
        inner_steps: int = 20,
        inner_lr: float = 0.1,
        alpha: float = 0.75,
        persistent: bool = True,
        seed: int = 0,
    ):
        defaults = {
            "lr": check_float(lr, "lr", minimum=0.0),
            "gamma": check_float(gamma, "gamma", positive=True),
            "temperature": check_float(temperature, "temperature", minimum=0.0),
            "inner_steps": check_int(inner_steps, "inner_steps", minimum=1),
            "inner_lr": check_float(inner_lr, "inner_lr", positive=True),
            "alpha": check_float(alpha, "alpha", minimum=0.0, maximum=1.0 - 1e-12),
        }
        if not isinstance(persistent, bool):
            raise TypeError(f"`persistent` must be a bool, got {type(persistent).__name__}")
        super().__init__(params, defaults)
        self.persistent = persistent
        self.seed = check_int(seed, "seed", minimum=0)
        self._generators: dict = {}
        self.last_inner_loss = math.nan

    def _generator(self, device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def step(self, closure=None):  # noqa: D102  (documented on the class)
        if closure is None:
            raise ValueError("EntropySGD.step needs a `closure` (zero grads, loss, backward, return loss)")
        groups = [(g, [p for p in g["params"] if p.requires_grad]) for g in self.param_groups]
        if len({(g["inner_steps"]) for g, _ in groups}) != 1:
            raise ValueError("`inner_steps` must be the same in every parameter group")
        with torch.no_grad():
            for _, ps in groups:
                for p in ps:
                    st = self.state[p]
                    st["x"] = p.detach().clone()
                    if not self.persistent or "x_prime" not in st:
                        st["x_prime"] = p.detach().clone()
                    st["mu"] = st["x_prime"].clone()
                    p.copy_(st["x_prime"])
        loss = None
        for _ in range(groups[0][0]["inner_steps"]):
            with torch.enable_grad():
                loss = closure()
            with torch.no_grad():
                for g, ps in groups:
                    noise = math.sqrt(2.0 * g["inner_lr"] * g["temperature"])
                    for p in ps:
                        st = self.state[p]
                        grad = torch.zeros_like(p) if p.grad is None else p.grad
                        p.add_(grad + g["gamma"] * (p - st["x"]), alpha=-g["inner_lr"])
                        if noise > 0:
                            gen = self._generator(p.device)
                            p.add_(
                                torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype),
                                alpha=noise,
                            )
                        st["mu"].mul_(g["alpha"]).add_(p, alpha=1.0 - g["alpha"])
        with torch.no_grad():
            for g, ps in groups:
                for p in ps:
                    st = self.state[p]
                    st["x_prime"] = p.detach().clone()
                    p.copy_(st["x"] - g["lr"] * g["gamma"] * (st["x"] - st["mu"]))
        self.last_inner_loss = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        return loss


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


def _make_scheduler(scheduler, opt):
    sched = scheduler(opt)
    if not isinstance(sched, torch.optim.lr_scheduler.LRScheduler):
        raise TypeError(
            f"`scheduler` must return a torch.optim.lr_scheduler.LRScheduler, got {type(sched).__name__}"
        )
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise TypeError(
            "`scheduler` returned a ReduceLROnPlateau, which is stepped with a metric: step it in a "
            "train.Callback instead"
        )
    if sched.optimizer is not opt:
        raise ValueError(
            "`scheduler` must schedule the optimiser it is given (it returned a scheduler of another "
            "optimiser)"
        )
    return sched


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | BatchLoss,
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
    scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    grad_hook: Callable[[int, nn.Module, History], Any] | None = None,
    transform: Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple] | None = None,
    callbacks: Sequence[Callback | Callable] = (),
    divergence_threshold: float = math.inf,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
    keep_grads: bool = False,
) -> History:
    """Train ``model`` in place on ``data`` and return the :class:`History`.

    This is the one training loop of lossviz: every set-up that trains with a torch optimiser
    calls it.

    Parameters
    ----------
    loss_fn : callable(outputs, targets) -> scalar mean loss, or :func:`batch_loss`
        A :func:`batch_loss` is called as ``fn(model, (x_batch, y_batch))``.
    data : ``(inputs, targets)`` tensors, a dict batch (Hugging Face style), a :class:`lossviz.data.Dataset`, an iterable of batches, or :func:`lossviz.data.collate` of them
        In-memory batches are concatenated once, on the model's device with floating inputs in
        the model's dtype (token ids keep theirs); ``batch_size`` decides the training batches.
        A ``DataLoader`` (or any re-iterable) is streamed instead: one optimiser step per batch it
        yields, moved to the device as it comes, the loader re-iterated every epoch (its own
        shuffling and augmentation apply; ``batch_size`` must then be ``None``). The model's
        output goes through ``output_fn`` (see :func:`lossviz.data.collate`; default: a tensor,
        a tuple's first element, a ``ModelOutput``'s ``logits``).
    steps, epochs : int
        Number of optimiser updates, or of passes over the data (exactly one must be given).
    batch_size : int, optional
        Mini-batch size (shuffled each epoch with ``seed``); ``None`` = full batch (in-memory
        data) or the loader's own batches (a ``DataLoader``).
    optimizer : ``"sgd"`` | ``"adam"`` | ``"adamw"``, an optimiser, or ``callable(params)``
        ``callable(params)`` receives the trainable parameters and may build param groups from
        the model itself. An optimiser with ``requires_closure = True`` (:class:`EntropySGD`) is
        stepped with a closure that re-evaluates the loss (and its gradients) on the current
        training batch at whatever point the optimiser has set.
    schedule : ``None`` | ``"cosine"``
        Learning-rate schedule over the total number of steps.
    scheduler : callable(optimizer) -> ``torch.optim.lr_scheduler.LRScheduler``, optional
        Any torch learning-rate scheduler (``OneCycleLR``, ``LambdaLR``, ``SequentialLR``, ...),
        built by this callable from the optimiser ``fit`` uses (the one it builds, or the one
        passed as ``optimizer``), e.g.
        ``scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 0.3, total_steps=300)``.
        It is stepped once per optimiser step, right after ``optimizer.step()``, exactly as in
        the loop ``for batch: loss.backward(); opt.step(); sched.step()``: update ``t + 1`` uses
        the scheduler's value after ``t`` steps, and ``t`` updates step it ``t`` times (a
        ``OneCycleLR`` with ``total_steps=steps`` is used up exactly). The lr an update used is
        ``optimizer.param_groups[i]["lr"]`` as a callback sees it at the step before. Not
        together with ``schedule``; ``ReduceLROnPlateau`` (stepped with a metric) is not accepted.
    regularizer : callable(model) -> scalar, added to the loss (e.g. a feature penalty)
    grad_hook : callable(step, model, history), optional
        Called after ``backward()`` and before the optimiser step: may read or change the
        gradients (e.g. ⊥Grad) and record into ``history``.
    transform : callable(x_batch, y_batch, generator) -> (x_batch, y_batch), optional
        Applied to every *training* batch before the loss (data augmentation such as mixup,
        whose targets become soft). ``generator`` is this run's own ``torch.Generator`` (seeded
        with ``seed``), so the same seed gives the same run. The loss recorded at the final
        step (no update follows) is on the untransformed batch.
    callbacks : :class:`Callback` instances (or plain ``cb(step, model, loss, history)``)
        Called at step 0 and after every update; the last step is offered with ``final=True``,
        also when a callback stops training early. A callback returning ``True`` stops training.
        A diverged step (non-finite loss) is not offered to callbacks.
    divergence_threshold : float
        Stop and set ``history.diverged`` once the loss is non-finite or above this.
    seed : int
        Seeds the mini-batch order, ``transform``'s generator and, for the duration of the
        call, torch's global generator (Dropout draws from it), so the same seed gives the same
        model; the caller's global RNG state is restored afterwards.

    Examples
    --------
    >>> import torch
    >>> from lossviz import data, models, train
    >>> x, y = data.two_moons(64, seed=0)
    >>> net = models.MLP(2, (16,), 2, seed=0)
    >>> one_cycle = lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=30)
    >>> hist = train.fit(net, torch.nn.functional.cross_entropy, (x, y), steps=30,
    ...                  scheduler=one_cycle, progress=False)
    >>> len(hist.loss), hist.loss[-1] < hist.loss[0]
    (31, True)
    """
    check_module(model, "model")
    check_finite_parameters(model, "model")
    if not callable(loss_fn):
        raise TypeError(
            f"`loss_fn` must be callable(outputs, targets) or train.batch_loss, got {type(loss_fn).__name__}"
        )
    batches = collate(data, "data").on(model)  # floating inputs in the model's dtype and device
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of `steps` or `epochs`")
    if batches.streaming:
        # a DataLoader (or any re-iterable): its batches are the training batches, streamed to
        # the device one at a time and re-iterated every epoch (its shuffling and augmentation
        # apply); nothing is concatenated
        if batch_size is not None:
            raise ValueError(
                "`batch_size` must be None when `data` is a DataLoader or another re-iterable: "
                "its own batches are the training batches (set the batch size on the loader)"
            )
        loader_len = getattr(batches.loader, "__len__", None)
        per_epoch = int(loader_len()) if loader_len is not None else len(batches)
        x = y = None
        n = bs = 0
    else:
        x, y = batches.cat()
        n = input_size(x)
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
    if transform is not None and not callable(transform):
        raise TypeError("`transform` must be callable(x_batch, y_batch, generator) -> (x_batch, y_batch)")
    if regularizer is not None and not callable(regularizer):
        raise TypeError("`regularizer` must be callable(model) -> scalar")
    check_float(momentum, "momentum", minimum=0.0)
    check_float(weight_decay, "weight_decay", minimum=0.0)
    if schedule is not None:
        check_choice(schedule, "schedule", ("cosine",))
    if scheduler is not None:
        if isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) or not callable(scheduler):
            raise TypeError(
                "`scheduler` must be callable(optimizer) -> torch.optim.lr_scheduler.LRScheduler "
                "(fit builds the optimiser, so pass e.g. `lambda opt: OneCycleLR(opt, ...)`), got "
                f"{type(scheduler).__name__}"
            )
        if schedule is not None:
            raise ValueError("give at most one of `schedule` and `scheduler`")
    callbacks = _check_callbacks(callbacks)
    seed = check_int(seed, "seed", minimum=0)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, lr, momentum, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1)) if schedule else None
    if scheduler is not None:
        sched = _make_scheduler(scheduler, opt)
    history = History()
    device = model_dtype_device(model)[1]
    flags = [(m, m.training) for m in model.modules()]
    had_grad = [p.grad is not None for p in model.parameters()]

    def batch_iter():
        while True:
            if batches.streaming:
                empty = True
                for xb, yb, _ in batches.stream(weights=False):
                    empty = False
                    yield xb, yb
                if empty:
                    raise ValueError("`data` is empty: the loader yielded no batches")
            elif bs >= n:
                yield x, y
            else:
                perm = torch.randperm(n, generator=gen, device=gen.device).to(device)
                for i in range(per_epoch):
                    idx = perm[i * bs : (i + 1) * bs]
                    yield map_inputs(x, lambda t, idx=idx: t[idx]), (None if y is None else y[idx])

    def objective(xb, yb):
        loss = batch_value(model, loss_fn, xb, yb, None, batches.output_fn, "data")
        if regularizer is not None:
            loss = loss + loss_scalar(regularizer(model), "regularizer")
        return loss

    from tqdm.auto import tqdm

    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
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
                    if transform is not None:
                        xb, yb = transform(xb, yb, gen)
                    loss = objective(xb, yb)
                value = float(loss.detach())
                history.loss.append(value)
                if not math.isfinite(value) or value > divergence_threshold:
                    # callbacks are not offered a diverged state (their metrics would be NaN)
                    history.diverged = True
                    break
                if run_callbacks(callbacks, step, model, value, history, final=final):
                    history.stopped_early = True
                    # the stopping step is the last one: offer it as final (a Callback never acts
                    # twice for one step; plain callables without `final` are not called again)
                    run_callbacks(
                        [cb for cb in callbacks if _accepts_final(cb)],
                        step,
                        model,
                        value,
                        history,
                        final=True,
                    )
                    break
                if final:
                    break
                loss.backward()
                if grad_hook is not None:
                    grad_hook(step, model, history)
                if getattr(opt, "requires_closure", False):
                    # Entropy-SGD and friends re-evaluate the loss at their own inner points
                    def closure(xb=xb, yb=yb):
                        opt.zero_grad(set_to_none=True)
                        inner = objective(xb, yb)
                        inner.backward()
                        return inner

                    opt.step(closure)
                else:
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


__getattr__ = moved(
    __name__,
    {
        "orthogonal_gradient_": "lossviz.papers.k05_softmax_collapse:orthogonal_gradient_",
        "gradient_weight_cosine": "lossviz.papers.k05_softmax_collapse:gradient_weight_cosine",
    },
)
