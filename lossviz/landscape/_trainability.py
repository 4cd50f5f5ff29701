r"""Trainability maps: which (learning rate, learning rate) pairs train a small network.

Reference: Jascha Sohl-Dickstein, "The boundary of neural network trainability is fractal",
2024, arXiv:2402.06184.

The network is the paper's mean-field one-hidden-layer net

.. math:: f(X) = \tanh\!\big(\sqrt{2/d}\, X W_1\big) W_2 / h, \qquad
          L = \frac1n \sum_{i=1}^n (f(X)_i - Y_i)^2,

with :math:`X \in \mathbb R^{n\times d}`, :math:`W_1 \in \mathbb R^{d\times h}`,
:math:`W_2 \in \mathbb R^h`, :math:`Y \in \mathbb R^n`, all i.i.d. :math:`\mathcal N(0, 1)`
from ``seed`` (the same data and initialisation in every cell), trained by full-batch gradient
descent with one learning rate per layer, :math:`W_1 \leftarrow W_1 - \eta_{in} \nabla_{W_1} L`,
:math:`W_2 \leftarrow W_2 - \eta_{out} \nabla_{W_2} L`. Every cell of the grid is a separate
network; all are trained at once.

How it is fast (CPU): the data ``X`` is shared by all cells, so the two matrix products per step
that involve ``X`` are single large GEMMs over all cells at once (``(C h, d) @ (d, n)``); the
read-out and its gradient are batched ``bmm``; everything else is a handful of fused in-place
elementwise ops on cache-sized chunks of cells; cells whose loss diverged are dropped from the
batch every ``check_every`` steps; chunks are processed by ``workers`` threads.
"""

from __future__ import annotations

import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_dtype, check_float, check_int
from ._grid import cpu_workers

__all__ = [
    "Trainability",
    "BoxCounting",
    "trainability",
    "boundary_mask",
    "box_counting_dimension",
    "mean_field_problem",
    "mean_field_loss",
]


@dataclass(frozen=True, repr=False)
class Trainability(Result):
    """A trainability map over ``log10 lr_in`` (rows, ``x``) x ``log10 lr_out`` (columns, ``y``).

    Attributes
    ----------
    x_values, y_values : ndarray
        ``log10`` learning rates of the rows (input layer) and columns (output layer);
        cell ``[i, j]`` used ``lr_in = 10**x_values[i]``, ``lr_out = 10**y_values[j]``.
    converged : bool ndarray
        Not diverged and the mean of the last ``tail`` losses is below ``L0``.
    diverged : bool ndarray
        The loss became non-finite or exceeded ``threshold * L0`` at some step.
    score : ndarray in [0, 1]
        Converged cells: mean over steps of ``min(L_t / L0, 1)`` (small = fast convergence).
        Diverged cells: ``1 - t_div / steps`` (large = fast divergence). Others: the converged
        formula.
    diverged_step : int ndarray (-1 where not diverged); final_loss : ndarray (NaN where diverged)
    L0 : float, the loss at initialisation; steps, threshold, tail, seed, dtype: settings
    seconds, workers, cell_steps : diagnostics (``cell_steps`` = cell-updates actually computed,
        less than ``cells * steps`` because diverged cells are dropped)
    """

    x_values: np.ndarray
    y_values: np.ndarray
    converged: np.ndarray
    diverged: np.ndarray
    score: np.ndarray
    diverged_step: np.ndarray
    final_loss: np.ndarray
    L0: float
    steps: int
    threshold: float
    tail: int
    seed: int
    dtype: str
    seconds: float
    workers: int
    cell_steps: int
    x_label: str = "log10 lr_in (hidden layer)"
    y_label: str = "log10 lr_out (read-out layer)"

    @property
    def extent(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (float(self.x_values[0]), float(self.x_values[-1])), (
            float(self.y_values[0]),
            float(self.y_values[-1]),
        )

    def zoom(self, factor: float = 10.0, center: tuple[float, float] | None = None):
        """Ranges ``(x_range, y_range)`` of a ``factor``-times smaller view.

        Centred on ``center`` (log10 coordinates) or, by default, on the boundary pixel nearest to
        the centre of this view (the curriculum's zoom rule). Pass them back to
        :func:`trainability` to compute the zoomed map.
        """
        factor = check_float(factor, "factor", minimum=1.0)
        (x0, x1), (y0, y1) = self.extent
        if center is None:
            b = boundary_mask(self.converged)
            if not b.any():
                raise ValueError("this view contains no boundary to zoom into; pass `center`")
            ii, jj = np.nonzero(b)
            ci, cj = (b.shape[0] - 1) / 2, (b.shape[1] - 1) / 2
            k = int(np.argmin((ii - ci) ** 2 + (jj - cj) ** 2))
            # a boundary pixel is the top-left of a mixed 2x2 block: centre on the block
            dx = self.x_values[1] - self.x_values[0]
            dy = self.y_values[1] - self.y_values[0]
            center = (self.x_values[ii[k]] + dx / 2, self.y_values[jj[k]] + dy / 2)
        cx, cy = (float(c) for c in center)
        hx, hy = (x1 - x0) / (2 * factor), (y1 - y0) / (2 * factor)
        return (cx - hx, cx + hx), (cy - hy, cy + hy)

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_trainability` (``ax=``: matplotlib)."""
        from .plotting import plot_trainability

        return plot_trainability(self, backend=backend, ax=ax, **kw)


def mean_field_problem(
    n: int = 16, d: int = 16, h: int = 16, seed: int = 0, dtype=torch.float32, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The data ``X`` (n, d), targets ``Y`` (n,) and shared initialisation ``W1`` (d, h), ``W2`` (h,)
    that :func:`trainability` uses for ``seed`` (all i.i.d. N(0, 1), drawn in float64, then cast)."""
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    X = torch.randn(n, d, generator=g, dtype=torch.float64, device=g.device)
    Y = torch.randn(n, generator=g, dtype=torch.float64, device=g.device)
    W1 = torch.randn(d, h, generator=g, dtype=torch.float64, device=g.device)
    W2 = torch.randn(h, generator=g, dtype=torch.float64, device=g.device)
    return tuple(t.to(device=device, dtype=dtype) for t in (X, Y, W1, W2))


def mean_field_loss(X, Y, W1, W2) -> torch.Tensor:
    """Reference (autograd-friendly) loss of the mean-field net for one cell."""
    d, h = W1.shape
    H = torch.tanh(math.sqrt(2.0 / d) * X @ W1)
    return ((H @ W2 / h - Y) ** 2).mean()


def _train_chunk(X, Y, W1, W2, lr_in, lr_out, steps, limit, check_every, hist, fast_tanh=False):
    """Train ``C = len(lr_in)`` cells; write losses into ``hist`` (steps+1, C), NaN after divergence.

    ``fast_tanh``: compute ``tanh(a) = 2 sigmoid(2a) - 1`` (about 4x faster than ``torch.tanh`` on
    CPU; absolute error about one float32 ulp).
    """
    n, d = X.shape
    h = W1.shape[1]
    C = lr_in.shape[0]
    s = math.sqrt(2.0 / d)
    Xs = (s * X).contiguous()
    XsT = (2.0 * Xs.T if fast_tanh else Xs.T).contiguous()
    W1T = W1.T.contiguous().repeat(C, 1)  # (C*h, d): cell c's W1^T in rows c*h..(c+1)*h
    W2c = W2.reshape(1, h).repeat(C, 1)  # (C, h)
    cin = (2.0 / (n * h)) * lr_in.reshape(C, 1)
    cout = (2.0 / (n * h)) * lr_out.reshape(C, 1)
    idx = torch.arange(C, device=X.device)
    dtype, dev = X.dtype, X.device
    A = torch.empty(C * h, n, dtype=dtype, device=dev)
    T = torch.empty(C, h, n, dtype=dtype, device=dev)
    O = torch.empty(C, h, n, dtype=dtype, device=dev)
    ones = torch.ones(C, h, n, dtype=dtype, device=dev)
    computed = 0
    for t in range(steps + 1):
        Ca = idx.shape[0]
        torch.mm(W1T, XsT, out=A[: Ca * h])
        if fast_tanh:
            H = torch.sigmoid(A[: Ca * h]).mul_(2.0).sub_(1.0).view(Ca, h, n)
        else:
            H = torch.tanh(A[: Ca * h]).view(Ca, h, n)
        e = torch.bmm(W2c.view(Ca, 1, h), H).view(Ca, n)
        e.mul_(1.0 / h).sub_(Y)
        loss = torch.bmm(e.view(Ca, 1, n), e.view(Ca, n, 1)).view(Ca).mul_(1.0 / n)
        hist[t].index_copy_(0, idx, loss)
        if t == steps:
            break
        computed += Ca
        if t % check_every == check_every - 1:
            alive = torch.isfinite(loss) & (loss <= limit)
            if not bool(alive.all()):
                keep = alive.nonzero().view(-1)
                if keep.numel() == 0:
                    break
                idx = idx[keep]
                W1T = W1T.view(Ca, h, d)[keep].reshape(-1, d)
                W2c, cin, cout, e = W2c[keep], cin[keep], cout[keep], e[keep]
                H = H[keep]
                Ca = idx.shape[0]
        Tv, Ov, ov = T[:Ca], O[:Ca], ones[:Ca]
        torch.mul(W2c.view(Ca, h, 1), (e * cin).view(Ca, 1, n), out=Ov)
        torch.addcmul(ov, H, H, value=-1.0, out=Tv)
        Ov.mul_(Tv)
        W2c.view(Ca, h, 1).baddbmm_(H, (e * cout).view(Ca, n, 1), alpha=-1.0)
        W1T.addmm_(Ov.view(Ca * h, n), Xs, alpha=-1.0)
    return computed


def trainability(
    x_range: tuple[float, float] = (0.0, 4.0),
    y_range: tuple[float, float] = (0.5, 3.0),
    resolution: int | tuple[int, int] = 128,
    steps: int = 500,
    *,
    width: int = 16,
    n: int = 16,
    d: int = 16,
    seed: int = 0,
    threshold: float = 1e6,
    tail: int = 20,
    check_every: int = 10,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str | None = None,
    workers: int | None = None,
    chunk: int = 512,
    fast_tanh: bool | None = None,
    progress: bool = False,
    executor=None,
    cache=None,
) -> Trainability:
    r"""Train a grid of mean-field networks over (``lr_in``, ``lr_out``) and classify each cell.

    Parameters
    ----------
    x_range, y_range : (lo, hi)
        Ranges of ``log10 lr_in`` (rows) and ``log10 lr_out`` (columns); zoom by passing the
        ranges returned by :meth:`Trainability.zoom`.
    resolution : int or (rows, cols), >= 2
    steps : int
        Full-batch GD steps per cell.
    width, n, d : hidden width, number of data points, input dimension (paper: 16 each)
    seed : int
        Seed of the data and the shared initialisation.
    threshold : float
        A cell diverged once its loss is non-finite or above ``threshold * L0``; it is then dropped
        from the batch (checked every ``check_every`` steps).
    tail : int
        Converged = not diverged and the mean of the last ``tail`` losses is below ``L0``.
    dtype : float32 (the paper's; fast) or float64
    device : default CPU
    workers : threads working on chunks of cells (default: 2 on a multi-core CPU whose second
        core is idle, else 1, see :func:`lossviz.landscape.cpu_workers`); while they run, torch's
        intra-op thread count is set to 1 and restored afterwards.
    chunk : cells per chunk (sized so a chunk's activations stay in cache)
    fast_tanh : bool, optional
        Evaluate ``tanh(a)`` as ``2 sigmoid(2a) - 1`` (about 4x faster on CPU, error about one
        ulp). Default: on for float32, off for float64 (the float64 path is the exact reference
        that the tests compare with autograd).
    executor : concurrent.futures-style executor, optional
        Run the chunks of cells (the tiles) on a process pool, a Dask ``distributed.Client`` or
        Ray instead of this process's threads (``workers`` is then ignored and reported as 1;
        each tile runs with one torch thread). The map is stitched in order and is bit-for-bit
        the one-process map: every chunk has the same cells, data and initialisation. See
        :mod:`lossviz.parallel`.
    cache : directory or :class:`lossviz.parallel.TileCache`, optional
        Finished chunks are stored there under a key made of every setting above, so an
        interrupted map resumes computing only the missing chunks.

    Examples
    --------
    >>> from lossviz import landscape
    >>> res = landscape.trainability(resolution=16, steps=50)
    >>> res.converged.shape
    (16, 16)
    """
    t0 = time.perf_counter()
    rx, ry = (resolution, resolution) if not isinstance(resolution, (tuple, list)) else resolution
    rx, ry = check_int(rx, "resolution", minimum=2), check_int(ry, "resolution", minimum=2)
    steps = check_int(steps, "steps", minimum=1)
    width, n, d = (check_int(v, k, minimum=1) for v, k in ((width, "width"), (n, "n"), (d, "d")))
    seed = check_int(seed, "seed", minimum=0)
    threshold = check_float(threshold, "threshold", positive=True)
    tail = check_int(tail, "tail", minimum=1, maximum=steps + 1)
    check_every = check_int(check_every, "check_every", minimum=1)
    chunk = check_int(chunk, "chunk", minimum=1)
    dtype = check_dtype(dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"`dtype` must be float32 or float64, got {dtype}")
    for name, r in (("x_range", x_range), ("y_range", y_range)):
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise ValueError(f"`{name}` must be a pair (lo, hi) of log10 learning rates, got {r!r}")
        lo, hi = (check_float(v, name) for v in r)
        if not lo < hi:
            raise ValueError(f"`{name}` must satisfy lo < hi, got {r!r}")
    dev = torch.device("cpu") if device is None else torch.device(device)
    fast_tanh = (dtype == torch.float32) if fast_tanh is None else bool(fast_tanh)
    xs = np.linspace(float(x_range[0]), float(x_range[1]), rx)
    ys = np.linspace(float(y_range[0]), float(y_range[1]), ry)
    X, Y, W1, W2 = mean_field_problem(n, d, width, seed, dtype, dev)
    L0 = float(mean_field_loss(X.double(), Y.double(), W1.double(), W2.double()))
    LX, LY = np.meshgrid(10.0**xs, 10.0**ys, indexing="ij")
    lr_in = torch.as_tensor(LX.ravel(), dtype=dtype, device=dev)
    lr_out = torch.as_tensor(LY.ravel(), dtype=dtype, device=dev)
    cells = lr_in.shape[0]
    hist = torch.full((steps + 1, cells), float("nan"), dtype=dtype, device=dev)
    starts = list(range(0, cells, chunk))
    if workers is None:
        workers = cpu_workers() if (dev.type == "cpu" and len(starts) > 1) else 1
    workers = min(check_int(workers, "workers", minimum=1), len(starts))
    limit = threshold * L0

    if executor is not None or cache is not None:
        from .. import parallel

        spec = {
            "xs": xs,
            "ys": ys,
            "n": n,
            "d": d,
            "width": width,
            "seed": seed,
            "dtype": str(dtype).removeprefix("torch."),
            "device": str(dev),
            "steps": steps,
            "limit": limit,
            "check_every": check_every,
            "fast_tanh": fast_tanh,
        }
        tiles = [(a, min(a + chunk, cells)) for a in starts]
        parts = parallel.map_tiles(
            functools.partial(_trainability_tile, spec),
            tiles,
            executor=executor,
            cache=cache,
            key=["landscape.trainability", spec],
            progress=progress,
            desc="trainability",
        )
        for (a, b), (h_ab, _) in zip(tiles, parts):
            hist[:, a:b] = torch.from_numpy(h_ab).to(device=dev)
        computed, workers = sum(c for _, c in parts), 1
        return _classify(
            hist, limit, L0, tail, steps, xs, ys, rx, ry, threshold, seed, dtype, t0, workers, computed
        )

    from tqdm.auto import tqdm

    bar = tqdm(total=len(starts), desc="trainability", disable=not progress, leave=False)

    def job(a):
        b = min(a + chunk, cells)
        out = _train_chunk(
            X, Y, W1, W2, lr_in[a:b], lr_out[a:b], steps, limit, check_every, hist[:, a:b], fast_tanh
        )
        bar.update(1)
        return out

    old_threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            if workers == 1:
                computed = sum(job(a) for a in starts)
            else:
                torch.set_num_threads(1)
                with ThreadPoolExecutor(workers) as pool:
                    computed = sum(pool.map(job, starts))
    finally:
        torch.set_num_threads(old_threads)
        bar.close()
    return _classify(
        hist, limit, L0, tail, steps, xs, ys, rx, ry, threshold, seed, dtype, t0, workers, computed
    )


def _trainability_tile(spec: dict, tile: tuple[int, int]) -> tuple[np.ndarray, int]:
    """One chunk of cells ``[a, b)`` of a trainability map, from its settings alone (picklable).

    Rebuilds the seeded problem and the learning-rate grid, so a worker process gets exactly the
    data, initialisation and cells of the one-process run; one torch thread while it runs.
    """
    a, b = tile
    dtype, dev = getattr(torch, spec["dtype"]), torch.device(spec["device"])
    X, Y, W1, W2 = mean_field_problem(spec["n"], spec["d"], spec["width"], spec["seed"], dtype, dev)
    LX, LY = np.meshgrid(10.0 ** spec["xs"], 10.0 ** spec["ys"], indexing="ij")
    lr_in = torch.as_tensor(LX.ravel()[a:b], dtype=dtype, device=dev)
    lr_out = torch.as_tensor(LY.ravel()[a:b], dtype=dtype, device=dev)
    hist = torch.full((spec["steps"] + 1, b - a), float("nan"), dtype=dtype, device=dev)
    old_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            computed = _train_chunk(
                X,
                Y,
                W1,
                W2,
                lr_in,
                lr_out,
                spec["steps"],
                spec["limit"],
                spec["check_every"],
                hist,
                spec["fast_tanh"],
            )
    finally:
        torch.set_num_threads(old_threads)
    return hist.cpu().numpy(), int(computed)


def _classify(hist, limit, L0, tail, steps, xs, ys, rx, ry, threshold, seed, dtype, t0, workers, computed):
    """Classify every cell of a filled loss history ``hist`` (steps+1, cells) into a map."""
    cells = hist.shape[1]
    H = hist.to(torch.float64).cpu().numpy().T  # (cells, steps+1)
    bad = ~np.isfinite(H) | (H > limit)
    diverged = bad.any(axis=1)
    div_step = np.where(diverged, bad.argmax(axis=1), -1)
    last = np.full(cells, np.inf)
    last[~diverged] = H[~diverged, -tail:].mean(axis=1)
    converged = ~diverged & (last < L0)
    speed = np.where(diverged, 0.0, np.mean(np.minimum(np.nan_to_num(H, nan=L0) / L0, 1.0), axis=1))
    score = np.where(diverged, 1.0 - div_step / steps, speed)
    final = np.where(diverged, np.nan, H[:, -1])
    shape = (rx, ry)
    return Trainability(
        xs,
        ys,
        converged.reshape(shape),
        diverged.reshape(shape),
        score.reshape(shape),
        div_step.reshape(shape),
        final.reshape(shape),
        L0,
        steps,
        threshold,
        tail,
        seed,
        str(dtype).replace("torch.", ""),
        time.perf_counter() - t0,
        workers,
        int(computed),
    )


def boundary_mask(outcome: np.ndarray) -> np.ndarray:
    """Pixels ``(i, j)`` whose 2x2 block ``[i:i+2, j:j+2]`` contains both outcomes.

    Shape ``(rows - 1, cols - 1)``.
    """
    o = np.asarray(outcome, dtype=bool)
    if o.ndim != 2 or min(o.shape) < 2:
        raise ValueError(f"`outcome` must be a 2-D boolean image of at least 2x2, got shape {o.shape}")
    blocks = np.stack([o[:-1, :-1], o[1:, :-1], o[:-1, 1:], o[1:, 1:]])
    return blocks.any(0) & ~blocks.all(0)


@dataclass(frozen=True, repr=False)
class BoxCounting(Result):
    """Box-counting dimension: least-squares slope of ``log N(s)`` against ``log(1/s)``."""

    dimension: float
    sizes: np.ndarray
    counts: np.ndarray

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw this result with :func:`lossviz.landscape.plotting.plot_box_counting` (``ax=``: matplotlib)."""
        from .plotting import plot_box_counting

        return plot_box_counting(self, backend=backend, ax=ax, **kw)


def box_counting_dimension(outcome: np.ndarray, sizes=(1, 2, 4, 8)) -> BoxCounting:
    r"""Box-counting dimension of the boundary between the two outcomes of a boolean image.

    The boundary is :func:`boundary_mask` (2x2 blocks containing both outcomes); ``N(s)`` is the
    number of ``s x s`` boxes of a regular tiling that contain a boundary pixel; the dimension is
    the least-squares slope of :math:`\log N(s)` against :math:`\log (1/s)` over ``sizes``
    (a smooth curve gives about 1, a space-filling boundary about 2).
    """
    b = boundary_mask(outcome)
    sizes = np.asarray([check_int(int(s), "sizes", minimum=1) for s in sizes])
    if len(sizes) < 2:
        raise ValueError("`sizes` needs at least two box sizes")
    counts = []
    for s in sizes:
        r, c = (b.shape[0] + s - 1) // s, (b.shape[1] + s - 1) // s
        pad = np.zeros((r * s, c * s), dtype=bool)
        pad[: b.shape[0], : b.shape[1]] = b
        counts.append(int(pad.reshape(r, s, c, s).any(axis=(1, 3)).sum()))
    counts = np.asarray(counts)
    if (counts == 0).any():
        return BoxCounting(float("nan"), sizes, counts)
    slope = np.polyfit(np.log(1.0 / sizes), np.log(counts), 1)[0]
    return BoxCounting(float(slope), sizes, counts)
