"""Loss along lines and planes in parameter space, linear interpolation, trajectories.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein, "Visualizing the Loss Landscape
of Neural Nets", NeurIPS 2018, arXiv:1712.09913 (filter-normalised planes, PCA trajectories).
Ian J. Goodfellow, Oriol Vinyals, Andrew M. Saxe, "Qualitatively characterizing neural network
optimization problems", ICLR 2015, arXiv:1412.6544 (linear interpolation between two models).
Jonathan Frankle, Gintare Karolina Dziugaite, Daniel M. Roy, Michael Carbin, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis", ICML 2020, arXiv:1912.05671 (the barrier).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._model import Batches, buffers_of, check_model_and_loss, collate, eval_mode, parameters_of
from .._result import Result
from .._validate import check_choice, check_float, check_int
from ._directions import Directions, as_directions, random_directions

__all__ = [
    "Line",
    "Plane",
    "Interpolation",
    "Trajectory",
    "line",
    "plane",
    "interpolate",
    "trajectory",
    "accuracy",
    "grid_axis",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Classification accuracy of a batch (argmax of logits; sign for a single output)."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        pred = (outputs.reshape(-1) > 0).to(targets.dtype)
        if targets.is_floating_point():  # +-1 or 0/1 targets
            t = targets.reshape(-1)
            t = (t > 0).to(targets.dtype)
            return (pred == t).double().mean()
        return (pred == targets.reshape(-1)).double().mean()
    return (outputs.argmax(-1) == targets).double().mean()


# ----------------------------------------------------------------------------------------------
# grid coordinates


def grid_axis(span, steps, name: str = "steps", extent: tuple[float, float] | None = None) -> np.ndarray:
    """Coordinates ``linspace(-span, span, steps)`` (or over ``extent``) that contain 0 exactly.

    For odd ``steps`` the middle point is set to exactly 0.0; if 0 is not on the grid (even
    ``steps`` or an asymmetric ``extent``) it is inserted, so the axis has ``steps + 1`` points.
    The original model is therefore always a grid point, and it is evaluated.
    """
    steps = check_int(steps, name, minimum=2)
    if extent is None:
        span = check_float(span, "span", positive=True)
        lo, hi = -span, span
    else:
        lo, hi = (check_float(v, "extent") for v in extent)
        if not lo <= 0.0 <= hi or not lo < hi:
            raise ValueError(f"`extent` must satisfy lo <= 0 <= hi and lo < hi, got ({lo}, {hi})")
    c = np.linspace(lo, hi, steps)
    tol = 1e-12 * (hi - lo)
    k = int(np.argmin(np.abs(c)))
    if abs(c[k]) <= tol:
        c[k] = 0.0
    else:
        c = np.sort(np.append(c, 0.0))
    return c


def _pair(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"`{name}` must be a number or a pair (for alphas, betas), got {value!r}")
        return value[0], value[1]
    return value, value


# ----------------------------------------------------------------------------------------------
# evaluation engine


def _default_workers(points: int, params: Mapping[str, torch.Tensor]) -> int:
    dev = next(iter(params.values())).device
    if dev.type != "cpu" or points < 16:
        return 1
    return cpu_workers()


def cpu_workers(limit: int = 2) -> int:
    """Threads worth using on this CPU now: up to ``limit``, but 1 if the other cores are busy.

    Measured, not assumed: with the 1-minute load average ``L`` (which counts this process too),
    a second worker thread is used only if ``L <= cores - 0.5``. On a machine whose cores are
    already taken, extra threads only add GIL hand-over latency (measured: up to 1.7x slower).
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        load = 0.0
    free = cores if load <= 0 else int(max(1.0, cores - load + 1.0))
    return max(1, min(limit, cores, free if load > cores - 0.5 else cores))


def _loss_value(loss, name="loss_fn"):
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"`{name}` must return a scalar tensor (the mean loss over the batch), got {got}")
    return loss.reshape(())


def _evaluate(module, loss_fn, batches: Batches, params, buffers, metrics):
    """Sample-weighted mean loss and metrics of ``module`` at ``params`` (no grad)."""
    state = dict(params)
    state.update(buffers)
    loss = None
    vals: dict[str, torch.Tensor] = {}
    for (x, y), w in zip(batches.batches, batches.weights):
        out = torch.func.functional_call(module, state, (x,))
        value = _loss_value(loss_fn(out, y)) * w
        loss = value if loss is None else loss + value
        for k, fn in metrics.items():
            m = fn(out, y)
            m = torch.as_tensor(m, dtype=torch.float64).reshape(()) if not isinstance(m, torch.Tensor) else m
            m = _loss_value(m, f"metrics[{k!r}]").to(torch.float64) * w
            vals[k] = m if k not in vals else vals[k] + m
    return loss, vals


def _private_copy(model: nn.Module) -> nn.Module | None:
    """A deep copy of ``model`` whose parameters we may overwrite (``None`` if it cannot be copied)."""
    try:
        m = copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - e.g. modules holding non-copyable objects
        return None
    for p in m.parameters():
        p.grad = None
        p.requires_grad_(False)
    return m


def _evaluate_module(module, loss_fn, batches: Batches, metrics):
    """Like :func:`_evaluate` but calls ``module`` directly (its parameters already set)."""
    loss = None
    vals: dict[str, torch.Tensor] = {}
    for (x, y), w in zip(batches.batches, batches.weights):
        out = module(x)
        value = _loss_value(loss_fn(out, y))
        value = value * w if w != 1.0 else value
        loss = value if loss is None else loss + value
        for k, fn in metrics.items():
            m = fn(out, y)
            m = torch.as_tensor(m, dtype=torch.float64).reshape(()) if not isinstance(m, torch.Tensor) else m
            m = _loss_value(m, f"metrics[{k!r}]").to(torch.float64) * w
            vals[k] = m if k not in vals else vals[k] + m
    return loss, vals


def _grid_eval(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    base: dict[str, torch.Tensor],
    dirs: Sequence[Mapping[str, torch.Tensor]],
    coords: np.ndarray,
    metrics: Mapping[str, MetricFn],
    workers: int | None,
    progress: bool,
    desc: str,
    engine: str = "auto",
    chunk: int = 64,
):
    """Evaluate loss (and metrics) at ``base + sum_k coords[g, k] * dirs[k]`` for every row g.

    ``engine="loop"`` (default on CPU, see below) or ``"vmap"`` (default on GPU): ``torch.func.vmap``
    of ``functional_call`` over chunks of ``chunk`` grid points, one batched forward per chunk
    (needs a vmappable model and loss; the origin is still evaluated with the exact parameters).

    The model must already be in eval mode. Each worker thread evaluates a strided share of the
    grid points on a private deep copy of the module whose parameters it overwrites in place
    (cheaper than ``torch.func.functional_call`` and safe across threads: the user's model is
    never written). If the model cannot be deep-copied, a single-threaded functional path is used.
    The original point (all coordinates 0) is evaluated with the model's own parameter values.
    """
    G = coords.shape[0]
    check_choice(engine, "engine", ("auto", "loop", "vmap"))
    if engine == "auto":
        engine = "loop" if next(iter(base.values())).device.type == "cpu" else "vmap"
    if engine == "vmap":
        chunk = check_int(chunk, "chunk", minimum=1)
        return _grid_eval_vmap(model, loss_fn, batches, base, dirs, coords, metrics, chunk, progress, desc)
    workers = _default_workers(G, base) if workers is None else check_int(workers, "workers", minimum=1)
    workers = min(workers, G)
    names = list(base)
    moving = [n for n in names if any(bool(d[n].any()) for d in dirs)]
    losses: list[torch.Tensor | None] = [None] * G
    mvals: dict[str, list] = {k: [None] * G for k in metrics}
    copies = [_private_copy(model) for _ in range(workers)]
    if any(c is None for c in copies):
        copies, workers = [None], 1

    from tqdm.auto import tqdm

    bar = tqdm(total=G, desc=desc, disable=not progress, leave=False)

    def run_copy(module, idx):
        own = dict(module.named_parameters())
        targets = [(own[n], base[n], [d[n] for d in dirs]) for n in moving]
        at_origin = True
        with torch.no_grad():
            for g in idx:
                c = [float(v) for v in coords[g]]
                if not any(c):
                    if not at_origin:
                        for p, b0, _ in targets:
                            p.copy_(b0)
                        at_origin = True
                else:
                    for p, b0, ds in targets:
                        p.copy_(b0)
                        for ck, d in zip(c, ds):
                            if ck != 0.0:
                                p.add_(d, alpha=ck)
                    at_origin = False
                loss, vals = _evaluate_module(module, loss_fn, batches, metrics)
                losses[g] = loss
                for k, v in vals.items():
                    mvals[k][g] = v
                if progress:
                    bar.update(1)

    def run_functional(idx):
        buffers = buffers_of(model)
        with torch.no_grad():
            for g in idx:
                c = coords[g]
                params = dict(base)
                for n in moving:
                    t = base[n]
                    for ck, d in zip(c, dirs):
                        if ck != 0.0:
                            t = torch.add(t, d[n], alpha=float(ck))
                    params[n] = t
                loss, vals = _evaluate(model, loss_fn, batches, params, buffers, metrics)
                losses[g] = loss
                for k, v in vals.items():
                    mvals[k][g] = v
                if progress:
                    bar.update(1)

    try:
        if copies[0] is None:
            run_functional(range(G))
        elif workers == 1:
            run_copy(copies[0], range(G))
        else:
            chunks = [range(G)[i::workers] for i in range(workers)]
            with ThreadPoolExecutor(workers) as pool:
                futures = [pool.submit(run_copy, m, ch) for m, ch in zip(copies, chunks)]
                for f in futures:
                    f.result()
    finally:
        bar.close()
    loss = torch.stack(losses).detach().to(torch.float64).cpu().numpy()
    out = {k: torch.stack(v).detach().cpu().numpy() for k, v in mvals.items()}
    return loss, out, workers


def _grid_eval_vmap(model, loss_fn, batches, base, dirs, coords, metrics, chunk, progress, desc):
    """The ``engine="vmap"`` path of :func:`_grid_eval` (functional; the model is only read)."""
    from tqdm.auto import tqdm

    G = coords.shape[0]
    buffers = buffers_of(model)
    moving = [n for n in base if any(bool(d[n].any()) for d in dirs)]
    fixed = {n: t for n, t in base.items() if n not in moving}
    fixed.update(buffers)
    names = list(metrics)

    def point(p, x, y):
        out = torch.func.functional_call(model, {**fixed, **p}, (x,))
        loss = _loss_value(loss_fn(out, y))
        vals = [torch.as_tensor(metrics[k](out, y), dtype=torch.float64).reshape(()) for k in names]
        return (loss, *vals)

    batched = torch.func.vmap(point, in_dims=(0, None, None))
    losses = torch.empty(G, dtype=torch.float64)
    mvals = {k: torch.empty(G, dtype=torch.float64) for k in names}
    with torch.no_grad():
        origin = [g for g in range(G) if not np.any(coords[g])]
        for g in origin:  # exact parameters, no arithmetic
            out = _evaluate(model, loss_fn, batches, base, buffers, metrics)
            losses[g] = float(out[0])
            for k in names:
                mvals[k][g] = float(out[1][k])
        rest = np.array([g for g in range(G) if np.any(coords[g])], dtype=np.int64)
        for start in tqdm(range(0, len(rest), chunk), desc=desc, disable=not progress, leave=False):
            idx = rest[start : start + chunk]
            c = torch.as_tensor(coords[idx], dtype=torch.float64)
            params = {}
            for n in moving:
                t = base[n].unsqueeze(0).expand(len(idx), *base[n].shape).clone()
                for k, d in enumerate(dirs):
                    ck = c[:, k].to(device=t.device, dtype=t.dtype).reshape(-1, *([1] * base[n].ndim))
                    t = t + ck * d[n]
                params[n] = t
            tot = None
            for (x, y), w in zip(batches.batches, batches.weights):
                res = batched(params, x, y)
                res = [r.to(torch.float64) * w for r in res]
                tot = res if tot is None else [a + b for a, b in zip(tot, res)]
            it = torch.as_tensor(idx)
            losses[it] = tot[0].cpu()
            for k, v in zip(names, tot[1:]):
                mvals[k][it] = v.cpu()
    return losses.numpy(), {k: v.numpy() for k, v in mvals.items()}, 1


def _check_metrics(metrics):
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"`metrics` must be a dict name -> callable(outputs, targets), got {type(metrics).__name__}"
        )
    for k, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"`metrics[{k!r}]` must be callable(outputs, targets)")
    return dict(metrics)


# ----------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True, repr=False)
class Line(Result):
    """Loss along ``theta + alpha * d``.

    Attributes: ``alphas`` (m,), ``loss`` (m,), ``metrics`` name -> (m,), ``direction``
    (:class:`Directions` with one vector), ``origin_index`` (``alphas[origin_index] == 0``),
    ``origin_loss``, ``diverged`` (m,) bool (non-finite loss), ``evaluations``, ``seconds``.
    """

    alphas: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray]
    direction: Directions
    origin_index: int
    origin_loss: float
    diverged: np.ndarray
    evaluations: int
    seconds: float
    workers: int

    def plot(self, **kw):
        from .plotting import plot_line

        return plot_line(self, **kw)


@dataclass(frozen=True, repr=False)
class Plane(Result):
    """Loss on the plane ``theta + alpha * d1 + beta * d2``.

    Attributes
    ----------
    alphas, betas : ndarray
        Grid coordinates along ``d1`` and ``d2``; both contain 0 exactly.
    loss : ndarray (len(alphas), len(betas))
        ``loss[i, j]`` is the loss at ``(alphas[i], betas[j])`` (``indexing="ij"``: rows follow
        alphas, whatever the grid's aspect ratio).
    metrics : dict name -> ndarray of the same shape
    directions : Directions
    origin_index : (i0, j0) with ``alphas[i0] == betas[j0] == 0``; ``loss[i0, j0] == origin_loss``
        is the loss of the unperturbed model.
    diverged : bool ndarray, True where the loss is not finite
    evaluations, seconds, workers : diagnostics
    """

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray]
    directions: Directions
    origin_index: tuple[int, int]
    origin_loss: float
    diverged: np.ndarray
    evaluations: int
    seconds: float
    workers: int

    def plot(self, **kw):
        from .plotting import plot_plane

        return plot_plane(self, **kw)


@dataclass(frozen=True, repr=False)
class Interpolation(Result):
    r"""Loss along the straight path ``(1 - alpha) theta_A + alpha theta_B``, ``alpha in [0, 1]``.

    ``barrier = max_alpha [L(alpha) - ((1 - alpha) L(0) + alpha L(1))]`` (Frankle et al. 2020),
    attained at ``alphas[barrier_index]``; ``alphas[0] == 0`` and ``alphas[-1] == 1`` are the two
    end models themselves. ``bn`` records the BatchNorm buffer policy.
    """

    alphas: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray]
    barrier: float
    barrier_index: int
    bn: str
    diverged: np.ndarray
    evaluations: int
    seconds: float

    def plot(self, **kw):
        from .plotting import plot_interpolation

        return plot_interpolation(self, **kw)


@dataclass(frozen=True, repr=False)
class Trajectory(Result):
    """A parameter trajectory projected onto two (or more) directions.

    ``coords[t]`` are the coordinates of ``theta_t - theta_center`` in the basis ``directions``
    (least squares; an orthonormal PCA basis makes them plain projections). ``residual[t]`` is the
    relative norm of the part of ``theta_t - theta_center`` outside their span.
    ``explained_variance`` is the fraction of the (centred) variance of the path captured by each
    PCA direction (NaN for given directions).
    """

    coords: np.ndarray
    directions: Directions
    explained_variance: np.ndarray
    residual: np.ndarray
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def extent(self, margin: float = 0.25) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((a0, a1), (b0, b1))`` covering the path and the origin with a relative margin."""
        out = []
        for k in range(2):
            lo, hi = min(0.0, float(self.coords[:, k].min())), max(0.0, float(self.coords[:, k].max()))
            pad = margin * max(hi - lo, 1e-12)
            out.append((lo - pad, hi + pad))
        return tuple(out)


# ----------------------------------------------------------------------------------------------
# line and plane


def _prepare(model, loss_fn, data):
    check_model_and_loss(model, loss_fn)
    batches = collate(data, "data")
    return batches


def line(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    direction=None,
    span: float = 1.0,
    steps: int = 41,
    *,
    extent: tuple[float, float] | None = None,
    norm: str = "filter",
    ignore: Sequence[str] = ("bias", "norm"),
    seed: int = 0,
    metrics: Mapping[str, MetricFn] | None = None,
    workers: int | None = None,
    engine: str = "auto",
    progress: bool = False,
) -> Line:
    r"""Loss along a line :math:`L(\theta + \alpha d)` through the model's parameters.

    Parameters
    ----------
    model : nn.Module
        Evaluated in eval mode, functionally; never modified (parameters, ``requires_grad``,
        ``.grad``, buffers and mode flags are left as they were).
    loss_fn : callable(outputs, targets) -> scalar mean loss
    data : ``(inputs, targets)`` or an iterable of batches (weighted by size; collated once)
    direction : Directions, dict or flat tensor, optional
        Default: one filter-normalised Gaussian direction (:func:`random_directions` with
        ``norm``, ``ignore``, ``seed``).
    span, steps : the grid ``linspace(-span, span, steps)`` (0 always included, see :func:`grid_axis`)
    extent : (lo, hi), optional, replaces ``span`` (must contain 0)
    metrics : dict name -> callable(outputs, targets), evaluated on the same forward pass
    workers : int, optional
        Threads evaluating grid points (default: :func:`cpu_workers`; 1 on GPU).

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape
    >>> net = torch.nn.Linear(2, 1)
    >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
    >>> res = landscape.line(net, torch.nn.functional.mse_loss, (x, y), steps=5)
    >>> res.alphas.tolist(), bool(res.loss[res.origin_index] == res.origin_loss)
    ([-1.0, -0.5, 0.0, 0.5, 1.0], True)
    """
    t0 = time.perf_counter()
    batches = _prepare(model, loss_fn, data)
    metrics = _check_metrics(metrics)
    alphas = grid_axis(span, steps, "steps", extent)
    if direction is None:
        direction = random_directions(model, 1, norm=norm, ignore=ignore, seed=seed)
    direction = as_directions(model, direction, 1, "direction")
    base = parameters_of(model)
    with eval_mode(model):
        loss, mvals, used = _grid_eval(
            model,
            loss_fn,
            batches,
            base,
            direction.vectors,
            alphas[:, None],
            metrics,
            workers,
            progress,
            "line",
        )
    i0 = int(np.flatnonzero(alphas == 0.0)[0])
    return Line(
        alphas,
        loss,
        mvals,
        direction,
        i0,
        float(loss[i0]),
        ~np.isfinite(loss),
        len(alphas),
        time.perf_counter() - t0,
        used,
    )


def plane(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    directions=None,
    span: float | tuple[float, float] = 1.0,
    steps: int | tuple[int, int] = 41,
    *,
    extent: tuple[tuple[float, float], tuple[float, float]] | None = None,
    norm: str = "filter",
    ignore: Sequence[str] = ("bias", "norm"),
    seed: int = 0,
    metrics: Mapping[str, MetricFn] | None = None,
    workers: int | None = None,
    engine: str = "auto",
    progress: bool = False,
) -> Plane:
    r"""Loss on a 2-D slice :math:`L(\theta + \alpha d_1 + \beta d_2)` (Li et al. 2018).

    Conventions (each a bug in a popular implementation, tested here):

    * coordinates are explicit arrays and ``loss`` is indexed ``[i, j] <-> (alphas[i], betas[j])``
      (``indexing="ij"``), also for non-square grids (``steps=(41, 21)``);
    * the original model is exactly the grid point ``(0, 0)`` and is evaluated there with its own
      parameters (no walking the grid by repeated in-place additions);
    * directions are Gaussian, filter-normalised, with biases and normalisation-layer parameters
      left fixed by default (``ignore``);
    * the model is untouched afterwards (evaluation is functional, in eval mode).

    Parameters
    ----------
    model, loss_fn, data : see :func:`line`
    directions : Directions, or two dicts / flat tensors, optional
        Default: :func:`random_directions` ``(model, 2, norm, ignore, seed)``.
    span : float or (span_alpha, span_beta)
    steps : int or (steps_alpha, steps_beta), each >= 2
    extent : ((a0, a1), (b0, b1)), optional, replaces ``span`` (each range must contain 0)
    metrics : dict name -> callable(outputs, targets) -> scalar (e.g. :func:`accuracy`)
    workers : int, optional
        Threads, each with a private copy of the module (default: :func:`cpu_workers`, i.e. 2 on
        a multi-core CPU whose second core is idle, else 1; always 1 on GPU).
    engine : ``"auto"`` | ``"loop"`` | ``"vmap"``
        ``"loop"``: one forward pass per grid point on private module copies (measured as fast
        as ``"vmap"`` on CPU for small models, see benchmarks/landscape.md); ``"vmap"``:
        ``torch.func.vmap`` over chunks of 64 grid points, one batched forward per chunk (for
        GPUs; needs a vmappable model and loss). ``"auto"``: loop on CPU, vmap otherwise.
    progress : bool
        tqdm progress bar.

    Returns
    -------
    Plane

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> x, y = torch.randn(32, 2), torch.randn(32, 1)
    >>> res = landscape.plane(net, torch.nn.functional.mse_loss, (x, y), steps=(5, 3))
    >>> res.loss.shape, res.origin_index
    ((5, 3), (2, 1))
    """
    t0 = time.perf_counter()
    batches = _prepare(model, loss_fn, data)
    metrics = _check_metrics(metrics)
    sa, sb = _pair(span, "span")
    na, nb = _pair(steps, "steps")
    ea, eb = (None, None) if extent is None else _pair(extent, "extent")
    alphas = grid_axis(sa, na, "steps", ea)
    betas = grid_axis(sb, nb, "steps", eb)
    if directions is None:
        directions = random_directions(model, 2, norm=norm, ignore=ignore, seed=seed)
    directions = as_directions(model, directions, 2, "directions")
    base = parameters_of(model)
    A, B = np.meshgrid(alphas, betas, indexing="ij")
    coords = np.stack([A.ravel(), B.ravel()], axis=1)
    with eval_mode(model):
        loss, mvals, used = _grid_eval(
            model,
            loss_fn,
            batches,
            base,
            directions.vectors,
            coords,
            metrics,
            workers,
            progress,
            "plane",
            engine,
        )
    shape = (len(alphas), len(betas))
    loss = loss.reshape(shape)
    mvals = {k: v.reshape(shape) for k, v in mvals.items()}
    i0 = int(np.flatnonzero(alphas == 0.0)[0])
    j0 = int(np.flatnonzero(betas == 0.0)[0])
    return Plane(
        alphas,
        betas,
        loss,
        mvals,
        directions,
        (i0, j0),
        float(loss[i0, j0]),
        ~np.isfinite(loss),
        int(loss.size),
        time.perf_counter() - t0,
        used,
    )


# ----------------------------------------------------------------------------------------------
# interpolation


def _bn_modules(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _check_same_architecture(model_a, model_b):
    pa, pb = dict(model_a.named_parameters()), dict(model_b.named_parameters())
    if list(pa) != list(pb):
        raise ValueError(
            "`model_b` has different parameters than `model_a`: "
            f"{sorted(set(pa) ^ set(pb))[:4] or 'same names in a different order'}"
        )
    for k in pa:
        if pa[k].shape != pb[k].shape or pa[k].dtype != pb[k].dtype:
            raise ValueError(
                f"`model_b` parameter {k!r} has shape {tuple(pb[k].shape)} / {pb[k].dtype}, but "
                f"`model_a` has {tuple(pa[k].shape)} / {pa[k].dtype}"
            )
    ba, bb = dict(model_a.named_buffers()), dict(model_b.named_buffers())
    if list(ba) != list(bb) or any(ba[k].shape != bb[k].shape for k in ba):
        raise ValueError("`model_b` has different buffers (e.g. BatchNorm statistics) than `model_a`")


def _recompute_bn(model, loss_fn, batches, params, buffers):
    """Fresh BatchNorm statistics of ``model`` at ``params`` over ``batches`` (cumulative mean).

    Only BatchNorm modules are switched to train mode (Dropout stays off); the statistics are
    written into copies; every BatchNorm's ``momentum`` is restored.
    """
    bns = _bn_modules(model)
    fresh = {}
    for name, b in buffers.items():
        if name.endswith("running_mean"):
            fresh[name] = torch.zeros_like(b)
        elif name.endswith("running_var"):
            fresh[name] = torch.ones_like(b)
        elif name.endswith("num_batches_tracked"):
            fresh[name] = torch.zeros_like(b)
        else:
            fresh[name] = b.clone()
    saved = [(m, m.momentum, m.training) for m in bns]
    try:
        for m in bns:
            m.momentum = None  # cumulative moving average over the batches
            m.train(True)
        state = dict(params)
        state.update(fresh)
        with torch.no_grad():
            for x, _ in batches.batches:
                torch.func.functional_call(model, state, (x,))
    finally:
        for m, mom, tr in saved:
            m.momentum = mom
            m.training = tr
    return fresh


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data,
    steps: int = 21,
    *,
    bn: str = "interpolate",
    bn_data=None,
    metrics: Mapping[str, MetricFn] | None = None,
    progress: bool = False,
) -> Interpolation:
    r"""Loss on the straight line between two models, :math:`L((1-\alpha)\theta_A + \alpha\theta_B)`.

    ``alphas = linspace(0, 1, steps)`` includes both end points (``alpha = 0`` is model A exactly,
    ``alpha = 1`` model B exactly; loss-landscapes 3.0.6 skips ``alpha = 0``). The barrier is

    .. math:: B = \max_\alpha \big[L(\alpha) - ((1-\alpha) L(0) + \alpha L(1))\big]

    (Frankle et al. 2020, arXiv:1912.05671; Ainsworth et al. 2023, arXiv:2209.04836).

    Parameters
    ----------
    model_a, model_b : nn.Module
        Same architecture (parameter and buffer names, shapes and dtypes); both are left
        unchanged. The forward of ``model_a`` is used.
    loss_fn, data : see :func:`line`
    steps : int, >= 2
    bn : ``"interpolate"`` | ``"recompute"``
        BatchNorm buffers along the path: interpolate the running statistics like parameters
        (default), or recompute them at every alpha from ``bn_data`` (default ``data``) with the
        model in train mode for BatchNorm only (the "reset BN statistics" fix of Jordan et al.
        2023, REPAIR, arXiv:2211.08403). Other buffers are taken from model A.
    metrics : dict name -> callable(outputs, targets), e.g. ``{"accuracy": accuracy}``

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> x, y = torch.randn(16, 2), torch.randn(16, 1)
    >>> res = landscape.interpolate(a, b, torch.nn.functional.mse_loss, (x, y), steps=5)
    >>> res.alphas.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    t0 = time.perf_counter()
    check_model_and_loss(model_a, loss_fn)
    from .._validate import check_module

    check_module(model_b, "model_b")
    _check_same_architecture(model_a, model_b)
    steps = check_int(steps, "steps", minimum=2)
    check_choice(bn, "bn", ("interpolate", "recompute"))
    batches = collate(data, "data")
    bn_batches = batches if bn_data is None else collate(bn_data, "bn_data")
    metrics = _check_metrics(metrics)
    alphas = np.linspace(0.0, 1.0, steps)
    alphas[0], alphas[-1] = 0.0, 1.0
    pa, pb = parameters_of(model_a), parameters_of(model_b)
    ba, bb = buffers_of(model_a), buffers_of(model_b)
    losses, mvals = [], {k: [] for k in metrics}
    from tqdm.auto import tqdm

    with eval_mode(model_a), torch.no_grad():
        for a in tqdm(alphas, desc="interpolate", disable=not progress, leave=False):
            a = float(a)
            params = {k: torch.lerp(pa[k], pb[k], a) for k in pa}
            bufs = {}
            for k in ba:
                if ba[k].is_floating_point():
                    bufs[k] = torch.lerp(ba[k], bb[k], a)
                else:
                    bufs[k] = (ba[k] if a < 0.5 else bb[k]).clone()
            if bn == "recompute" and _bn_modules(model_a):
                bufs = _recompute_bn(model_a, loss_fn, bn_batches, params, bufs)
            loss, vals = _evaluate(model_a, loss_fn, batches, params, bufs, metrics)
            losses.append(float(loss))
            for k, v in vals.items():
                mvals[k].append(float(v))
    loss = np.asarray(losses)
    chord = (1 - alphas) * loss[0] + alphas * loss[-1]
    gap = np.where(np.isfinite(loss), loss - chord, np.inf)
    k = int(np.argmax(gap))
    return Interpolation(
        alphas,
        loss,
        {k2: np.asarray(v) for k2, v in mvals.items()},
        float(gap[k]),
        k,
        bn,
        ~np.isfinite(loss),
        steps,
        time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------------------------
# trajectories


def _flatten_path(model, path) -> torch.Tensor:
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    if isinstance(path, torch.Tensor):
        if path.ndim != 2 or path.shape[1] != total:
            raise ValueError(f"`path` as a tensor must have shape (T, {total}), got {tuple(path.shape)}")
        return path.detach().to(torch.float64)
    if not isinstance(path, Sequence) or len(path) == 0:
        raise ValueError(
            "`path` must be a non-empty sequence of parameter dicts / flat tensors or a (T, P) tensor"
        )
    rows = []
    for t, item in enumerate(path):
        if isinstance(item, Mapping):
            missing = [k for k in params if k not in item]
            if missing:
                raise ValueError(f"`path[{t}]` lacks parameters {missing[:3]}")
            for k, p in params.items():
                if tuple(item[k].shape) != tuple(p.shape):
                    raise ValueError(
                        f"`path[{t}][{k!r}]` has shape {tuple(item[k].shape)}, expected {tuple(p.shape)}"
                    )
            rows.append(torch.cat([item[k].detach().reshape(-1).to(torch.float64) for k in params]))
        elif isinstance(item, torch.Tensor) and item.ndim == 1 and item.numel() == total:
            rows.append(item.detach().to(torch.float64))
        else:
            raise ValueError(
                f"`path[{t}]` must be a dict name -> tensor or a flat tensor with {total} entries"
            )
    return torch.stack(rows)


def trajectory(
    model: nn.Module,
    path,
    directions=None,
    *,
    n: int = 2,
    steps: Sequence[int] | None = None,
) -> Trajectory:
    r"""Project an optimiser trajectory onto its top PCA directions (Li et al. 2018) or given ones.

    The origin is the model's *current* parameters :math:`\theta_c` (usually the end of training):
    with :math:`\delta_t = \theta_t - \theta_c`, the PCA directions are the top-``n`` principal
    axes of the centred matrix of the :math:`\delta_t` (as in Li et al.'s code), unit-norm, and
    ``coords[t]`` solves :math:`\min_c \|D^\top c - \delta_t\|` (the projection for an orthonormal
    basis). Draw the path over :func:`plane` computed with ``directions=result.directions`` and
    ``extent=result.extent()``, both centred on the same model.

    Parameters
    ----------
    model : nn.Module
        Supplies parameter names and the origin; only read.
    path : sequence of dicts name -> tensor (e.g. ``state_dict`` snapshots recorded by
        :class:`lossviz.train.Recorder`; buffers are ignored), of flat tensors, or a ``(T, P)`` tensor
    directions : Directions or two dicts / flat tensors, optional (default: PCA)
    n : number of PCA directions
    steps : optional step numbers of the snapshots (kept on the result for plotting)
    """
    from .._validate import check_module

    check_module(model, "model")
    n = check_int(n, "n", minimum=1)
    X = _flatten_path(model, path)
    params = dict(model.named_parameters())
    center = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in params.values()]).to(X.device)
    delta = X - center
    if directions is None:
        if X.shape[0] < 2:
            raise ValueError("`path` needs at least 2 snapshots for PCA directions")
        centred = delta - delta.mean(0, keepdim=True)
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        if vh.shape[0] < n:
            raise ValueError(f"`path` has only {vh.shape[0]} independent snapshots, fewer than n={n}")
        D = vh[:n]
        # sign convention: the path starts at positive coordinates
        signs = torch.sign(D @ delta[0])
        signs[signs == 0] = 1
        D = D * signs[:, None]
        var = s**2
        explained = (var[:n] / var.sum().clamp_min(1e-300)).cpu().numpy()
        vecs = []
        for k in range(n):
            out, i = {}, 0
            for name, p in params.items():
                out[name] = D[k, i : i + p.numel()].reshape(p.shape).to(device=p.device, dtype=p.dtype)
                i += p.numel()
            vecs.append(out)
        from ._directions import _cosines

        dirs = Directions(tuple(vecs), "pca", (), None, _cosines(vecs))
    else:
        dirs = as_directions(model, directions, len(directions) if hasattr(directions, "__len__") else 2)
        D = dirs.flat().to(torch.float64).to(X.device)
        explained = np.full(len(dirs), np.nan)
    coords = torch.linalg.lstsq(D.T, delta.T).solution.T
    resid = (delta - coords @ D).norm(dim=1) / delta.norm(dim=1).clamp_min(1e-300)
    step_arr = np.arange(X.shape[0]) if steps is None else np.asarray(list(steps))
    if len(step_arr) != X.shape[0]:
        raise ValueError(f"`steps` has {len(step_arr)} entries but `path` has {X.shape[0]} snapshots")
    return Trajectory(coords.cpu().numpy(), dirs, explained, resid.cpu().numpy(), step_arr)
