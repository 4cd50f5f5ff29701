r"""Loss along lines and planes through a model's parameters (Li et al. 2018), on a grid.

.. math:: L(\alpha) = L(\theta + \alpha d), \qquad L(\alpha, \beta) = L(\theta + \alpha d_1 + \beta d_2)

for directions ``d`` from :mod:`lossviz.landscape._directions`. The grid coordinates always
contain 0 exactly (:func:`grid_axis`), so the original model is a grid point and is evaluated
with its own parameters; planes are indexed ``loss[i, j] <-> (alphas[i], betas[j])``
(``indexing="ij"``). The loss at a grid point is :func:`lossviz._model.mean_loss` (the one
sample-weighted evaluator); metrics come from the same forward pass
(:func:`lossviz.landscape._metrics.evaluate`).

Reference: Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein, "Visualizing the Loss
Landscape of Neural Nets", NeurIPS 2018, arXiv:1712.09913 (filter-normalised planes).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._model import (
    Batches,
    BatchLoss,
    buffers_of,
    check_model_and_loss,
    collate,
    eval_mode,
    loss_scalar,
    parameters_of,
)
from .._result import Result
from .._validate import check_choice, check_float, check_int
from ._directions import Directions, as_directions, random_directions
from ._metrics import MetricFn, check_metrics, evaluate

__all__ = ["Line", "Plane", "line", "plane", "grid_axis", "cpu_workers", "ENGINES"]

ENGINES = ("auto", "loop", "vmap")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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


def _default_threads(params: Mapping[str, torch.Tensor]) -> tuple[int, bool]:
    """``(workers, pin)`` of the default path: one worker; on a busy CPU at one intra-op thread.

    Measured on the benchmark plane (41x41, MLP 2-64-64-2, 1,000 points, interleaved with
    loss-landscapes, benchmarks/landscape.md): a second worker thread gains nothing on an idle
    2-core machine (0.35 s against 0.29-0.34 s for one worker: the per-point work is small and
    holds the GIL), torch's intra-op threads help slightly when the cores are free (0.29 s at 2
    threads, 0.34 s at 1) and cost 15x when they are not (4.8 s under load).
    """
    dev = next(iter(params.values())).device
    return 1, dev.type == "cpu" and cpu_workers() == 1


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


def _resolve_engine(engine, base, loss_fn) -> str:
    """``"loop"`` or ``"vmap"`` for ``engine`` (``ValueError`` naming ``engine`` if unknown)."""
    engine = check_choice(engine, "engine", ENGINES)
    if isinstance(loss_fn, BatchLoss):
        if engine == "vmap":
            raise ValueError(
                "`engine='vmap'` needs a loss_fn(outputs, targets); a batch_loss runs with engine='loop'"
            )
        return "loop"
    if engine == "auto":
        return "loop" if next(iter(base.values())).device.type == "cpu" else "vmap"
    return engine


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
    engine = _resolve_engine(engine, base, loss_fn)
    if engine == "vmap":
        chunk = check_int(chunk, "chunk", minimum=1)
        return _grid_eval_vmap(model, loss_fn, batches, base, dirs, coords, metrics, chunk, progress, desc)
    # Parallelism is chosen once, here (see _default_threads): the default is one worker, pinned
    # to one intra-op thread when the CPU is busy; explicit workers > 1 run each thread at one
    # intra-op thread; an explicit workers=1 keeps the caller's thread setting.
    if workers is None:
        workers, pin = _default_threads(base)
    else:
        workers = check_int(workers, "workers", minimum=1)
        pin = next(iter(base.values())).device.type == "cpu" and workers > 1
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

    # The hot loop. Without metrics (and for a plain loss_fn(outputs, targets)) the loss is summed
    # here with the one scalar check `loss_scalar`, instead of calling `mean_loss` per grid point:
    # mean_loss's per-call overhead measured 5% of a 41x41 plane of the benchmark MLP (1 thread).
    # The value is the same sample-weighted mean (tests compare both).
    plain = not metrics and not isinstance(loss_fn, BatchLoss)
    # resident batches are listed once; streamed ones (a loader) are moved per grid point
    pairs = list(batches.stream()) if batches._placed is not None else None
    _ = batches.sizes  # a loader's batches are counted once, before any worker thread streams it
    forward = batches.forward

    def point_loss(module):
        loss = None
        for x, y, w in pairs if pairs is not None else batches.stream():
            value = loss_scalar(loss_fn(forward(module, x), y))
            if w != 1.0:
                value = value * w
            loss = value if loss is None else loss + value
        return loss

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
                if plain:
                    losses[g] = point_loss(module)
                    if progress:
                        bar.update(1)
                    continue
                loss, vals = evaluate(module, loss_fn, batches, metrics)
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
                loss, vals = evaluate(model, loss_fn, batches, metrics, params, buffers)
                losses[g] = loss
                for k, v in vals.items():
                    mvals[k][g] = v
                if progress:
                    bar.update(1)

    threads = torch.get_num_threads()
    if pin and threads != 1:
        torch.set_num_threads(1)
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
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
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
        out = batches.forward(model, x, {**fixed, **p})
        loss = loss_scalar(loss_fn(out, y))
        vals = [
            torch.as_tensor(metrics[k](out, y), dtype=torch.float64, device=out.device).reshape(())
            for k in names
        ]
        return (loss, *vals)

    batched = torch.func.vmap(point, in_dims=(0, None, None))
    # the grid's results live on the host (numpy/plotting next)
    losses = torch.empty(G, dtype=torch.float64, device="cpu")
    mvals = {k: torch.empty(G, dtype=torch.float64, device="cpu") for k in names}
    with torch.no_grad():
        origin = [g for g in range(G) if not np.any(coords[g])]
        for g in origin:  # exact parameters, no arithmetic
            out = evaluate(model, loss_fn, batches, metrics, base, buffers)
            losses[g] = float(out[0])
            for k in names:
                mvals[k][g] = float(out[1][k])
        rest = np.array([g for g in range(G) if np.any(coords[g])], dtype=np.int64)
        for start in tqdm(range(0, len(rest), chunk), desc=desc, disable=not progress, leave=False):
            idx = rest[start : start + chunk]
            c = torch.as_tensor(coords[idx], dtype=torch.float64, device="cpu")
            params = {}
            for n in moving:
                t = base[n].unsqueeze(0).expand(len(idx), *base[n].shape).clone()
                for k, d in enumerate(dirs):
                    ck = c[:, k].to(device=t.device, dtype=t.dtype).reshape(-1, *([1] * base[n].ndim))
                    t = t + ck * d[n]
                params[n] = t
            tot = None
            for x, y, w in batches.stream():
                res = batched(params, x, y)
                res = [r.to(torch.float64) * w for r in res]
                tot = res if tot is None else [a + b for a, b in zip(tot, res)]
            it = torch.as_tensor(idx, device="cpu")
            losses[it] = tot[0].cpu()
            for k, v in zip(names, tot[1:]):
                mvals[k][it] = v.cpu()
    return losses.numpy(), {k: v.numpy() for k, v in mvals.items()}, 1


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

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_line` (``ax=``: matplotlib)."""
        from .plotting import plot_line

        return plot_line(self, backend=backend, ax=ax, **kw)


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

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_plane` (``ax=``: matplotlib)."""
        from .plotting import plot_plane

        return plot_plane(self, backend=backend, ax=ax, **kw)


# ----------------------------------------------------------------------------------------------
# line and plane


def _prepare(model, loss_fn, data, engine):
    check_model_and_loss(model, loss_fn)
    check_choice(engine, "engine", ENGINES)  # before any work, also on the loop path
    return collate(data, "data").on(model)


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
    data : a batch ``(inputs, targets)`` / dict, an iterable or ``DataLoader`` of batches, or
        :func:`lossviz.data.collate` of them (weighted by size; floating inputs cast to the model's
        dtype; a loader is streamed, one batch on the device at a time, at every grid point)
    direction : Directions, dict or flat tensor, optional
        Default: one filter-normalised Gaussian direction (:func:`random_directions` with
        ``norm``, ``ignore``, ``seed``).
    span, steps : the grid ``linspace(-span, span, steps)`` (0 always included, see :func:`grid_axis`)
    extent : (lo, hi), optional, replaces ``span`` (must contain 0)
    metrics : dict name -> callable(outputs, targets), evaluated on the same forward pass
    workers : int, optional
        Threads evaluating grid points (default and thread handling as in :func:`plane`).
    engine : ``"auto"`` | ``"loop"`` | ``"vmap"``
        How grid points are evaluated, as in :func:`plane` (``ValueError`` for anything else).
    progress : bool
        tqdm progress bar.

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
    batches = _prepare(model, loss_fn, data, engine)
    metrics = check_metrics(metrics, loss_fn)
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
            engine,
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


def _plane_tile(model, loss_fn, data, vectors, metrics, engine, coords):
    """One tile (grid rows ``coords``) of :func:`plane`, on one thread, from picklable pieces.

    Works on a private copy of the module, so tiles sharing one model object (a thread pool) never
    switch the user's model between train and eval mode under each other."""
    model = _private_copy(model) or model
    batches = _prepare(model, loss_fn, data, engine)
    with eval_mode(model):
        loss, mvals, _ = _grid_eval(
            model, loss_fn, batches, parameters_of(model), vectors, coords, metrics, 1, False, "plane", engine
        )
    return loss, mvals


def _plane_key(model, loss_fn, data, directions, metrics, engine):
    """Everything besides the grid rows that determines a plane: the model's class and state,
    the data, the directions, the loss and metric functions (by name) and the engine."""
    from .. import parallel

    cls = type(model)
    try:
        key = {
            "model": [f"{cls.__module__}.{cls.__qualname__}", dict(model.state_dict())],
            "data": data,
            "directions": [dict(v) for v in directions.vectors],
            "loss_fn": parallel.callable_key(loss_fn, "loss_fn"),
            "metrics": {k: parallel.callable_key(m, f"metrics[{k!r}]") for k, m in metrics.items()},
            "engine": engine,
        }
        parallel.tile_key(key, None)
    except TypeError as exc:
        raise TypeError(
            f"`cache` needs a key for this plane: {exc} (data must be tensors, tuples or dicts of "
            "tensors, not a DataLoader)"
        ) from exc
    return ["landscape.plane", key]


def _plane_on_executor(
    executor, model, loss_fn, data, directions, coords, row, metrics, engine, progress, cache
):
    """:func:`plane`'s grid as tiles of ``row`` points on ``executor``, stitched in order."""
    import functools

    from .. import parallel

    key = None if cache is None else _plane_key(model, loss_fn, data, directions, metrics, engine)
    fn = functools.partial(_plane_tile, model, loss_fn, data, directions.vectors, dict(metrics), engine)
    tiles = [coords[a : a + row] for a in range(0, coords.shape[0], row)]
    parts = parallel.map_tiles(
        fn, tiles, executor=executor, cache=cache, key=key, progress=progress, desc="plane"
    )
    loss = np.concatenate([p[0] for p in parts])
    mvals = {k: np.concatenate([p[1][k] for p in parts]) for k in metrics}
    return loss, mvals, 1


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
    executor=None,
    cache=None,
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
    metrics : dict name -> callable(outputs, targets) -> scalar (e.g. :func:`accuracy_metric`)
    workers : int, optional
        Threads, each with a private copy of the module. Default: 1, at torch's intra-op thread
        setting when a core is free and at one intra-op thread when the CPU is busy
        (:func:`cpu_workers` says which; measured in benchmarks/landscape.md: a second thread
        gains nothing on small models, spinning intra-op threads on a busy CPU cost 15x).
        ``workers > 1`` run each thread at one intra-op thread; the setting is restored after
        the call. An explicit ``workers=1`` keeps yours.
    engine : ``"auto"`` | ``"loop"`` | ``"vmap"``
        ``"loop"``: one forward pass per grid point on private module copies (measured as fast
        as ``"vmap"`` on CPU for small models, see benchmarks/landscape.md); ``"vmap"``:
        ``torch.func.vmap`` over chunks of 64 grid points, one batched forward per chunk (for
        GPUs; needs a vmappable model and loss). ``"auto"``: loop on CPU, vmap otherwise.
    progress : bool
        tqdm progress bar.
    executor : concurrent.futures-style executor, optional
        Evaluate the rows of the grid (one tile per ``alpha``) on a process pool or a Dask
        ``distributed.Client`` (:mod:`lossviz.parallel`); the model, ``loss_fn``, ``data``,
        directions and metrics are pickled to the workers (module-level functions, not lambdas),
        each row runs on one thread there (``workers`` is ignored), and the stitched plane is
        bit-for-bit the one-process plane with ``engine="loop"``.
    cache : directory or :class:`lossviz.parallel.TileCache`, optional
        Keep finished rows on disk, keyed by the model's class and state, the data (tensors), the
        directions, the loss and metric functions (by qualified name: no lambdas) and the
        engine, so an interrupted plane resumes with only the missing rows (in this process
        when ``executor`` is None).

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
    batches = _prepare(model, loss_fn, data, engine)
    metrics = check_metrics(metrics, loss_fn)
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
    if executor is not None or cache is not None:
        loss, mvals, used = _plane_on_executor(
            executor, model, loss_fn, data, directions, coords, len(betas), metrics, engine, progress, cache
        )
    else:
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
