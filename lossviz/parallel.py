r"""Tiled computations on an existing engine, with a resumable disk cache.

The heavy sweeps of the notebooks (trainability rows, plane tiles, NTK blocks, width or
temperature sweeps) are lists of independent tiles. :func:`map_tiles` evaluates ``fn(tile)`` for
every tile, **in order**, either in this process or on any executor with the
``concurrent.futures`` interface:

* ``concurrent.futures.ProcessPoolExecutor`` / ``ThreadPoolExecutor``;
* a Dask ``distributed.Client`` (``client.submit`` returns futures with ``.result()``);
* Ray, through a two-line ``submit`` wrapper: Ray 2.60 ships no ``concurrent.futures`` executor,
  but ``ObjectRef.future()`` is a ``concurrent.futures.Future``, so an object whose
  ``submit(fn, *args)`` returns ``ray.remote(fn).remote(*args).future()`` is one. (Not tested
  here: Ray is not in lossviz's extras, its wheel installs about 240 MB.)

Start process pools with the **spawn** context,
``ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))``: a pool forked from a
process that has already run torch (OpenMP thread pools, locks held by other threads) can hang
(it once hung CI). Dask's ``LocalCluster(processes=True)`` starts its workers with spawn already.
Give each worker one thread (``threads_per_worker=1``, ``OMP_NUM_THREADS=1``) so that two workers
do not fight over the cores. For a local Dask cluster, also unset Dask's ``MALLOC_TRIM_THRESHOLD_``
(``dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})`` around
``LocalCluster(...)``): with Dask's default of 65536, glibc returns every tile's temporary tensors to
the OS and page-faults them back in. That costs 1.3-1.5x the CPU per trainability tile
(``benchmarks/parallel.md``), and the nanny also writes the variable into the calling process's
environment, so process pools started after it inherit it.

Tileable heavy calls take ``executor=`` and ``cache=`` themselves:
:func:`lossviz.widgets.sweep` (width, temperature or any other one-knob sweep),
:func:`lossviz.landscape.trainability` (chunks of cells) and :func:`lossviz.landscape.plane`
(rows of the grid; its cache key names the model's state, the data, the directions and the
functions, see :func:`callable_key`).

lossviz schedules nothing itself: the engine does. The results are returned in the order of
``tiles``, so the stitched output is identical to the one-process run whatever the engine (``fn``
must be deterministic given its tile: take seeds from the tile, not from global state).

With ``cache=`` (a directory or a :class:`TileCache`), every finished tile is written to disk under
a key derived from ``key`` and the tile, and a later call with the same arguments reads the tiles
it has and computes only the missing ones, so an interrupted sweep resumes where it stopped.

>>> from lossviz.parallel import map_tiles
>>> map_tiles(abs, [-2, 3, -1], progress=False)
[2, 3, 1]
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["map_tiles", "TileCache", "tile_key", "callable_key"]


def _canonical(obj: Any) -> Any:
    """A JSON-able, order-stable description of ``obj`` for cache keys."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return repr(obj)  # exact: 0.1 and 0.1000000001 differ
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, [_canonical(o) for o in obj]]
    if isinstance(obj, dict):
        return ["dict", sorted((str(k), _canonical(v)) for k, v in obj.items())]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().contiguous().numpy()
    if isinstance(obj, np.ndarray):
        return [
            "array",
            str(obj.dtype),
            list(obj.shape),
            hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
        ]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return _canonical(obj.item())
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    raise TypeError(
        f"cannot build a cache key from a {type(obj).__name__}: use numbers, strings, tuples, dicts or arrays"
    )


def callable_key(fn: Any, name: str = "fn") -> Any:
    """A cache-key description of a function: its qualified name (and a partial's arguments, a
    callable object's class and plain public attributes). Lambdas and local functions have no
    name that identifies them across runs: a TypeError naming ``name`` says so."""
    import functools
    import inspect

    if isinstance(fn, functools.partial):
        return ["partial", callable_key(fn.func, name), _canonical(fn.args), _canonical(dict(fn.keywords))]
    if inspect.isfunction(fn) or inspect.isbuiltin(fn):
        qual = fn.__qualname__
        if "<" in qual:
            raise TypeError(
                f"`{name}` is a lambda or a local function ({qual}): a cache key cannot name it; "
                "use a module-level function"
            )
        return f"{fn.__module__}.{qual}"
    cls = type(fn)
    plain = {
        k: v
        for k, v in sorted(vars(fn).items() if hasattr(fn, "__dict__") else [])
        if not k.startswith("_") and (v is None or isinstance(v, (bool, int, float, str, tuple)))
    }
    return ["object", f"{cls.__module__}.{cls.__qualname__}", _canonical(plain)]


def tile_key(key: Any, tile: Any) -> str:
    """The cache key of one tile: a SHA-256 of the canonical form of ``(key, tile)``."""
    text = json.dumps([_canonical(key), _canonical(tile)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class TileCache:
    """A directory of finished tiles (one pickle file each, written atomically).

    Parameters
    ----------
    directory : str or Path
        Created if missing. Safe to share between runs; keys include everything that defines
        a tile, so different sweeps do not collide.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, k: str) -> Path:
        return self.directory / f"{k}.pkl"

    def __contains__(self, k: str) -> bool:
        return self._path(k).exists()

    def get(self, k: str) -> Any:
        with open(self._path(k), "rb") as f:
            return pickle.load(f)

    def put(self, k: str, value: Any) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self._path(k))  # atomic: an interrupted write leaves no half tile
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.pkl"))

    def __repr__(self) -> str:
        return f"TileCache({str(self.directory)!r}, {len(self)} tiles)"


def _check_executor(executor) -> None:
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "`executor` must have the concurrent.futures interface (a .submit(fn, arg) returning a "
            f"future with .result()), e.g. ProcessPoolExecutor or a dask.distributed Client; got {type(executor).__name__}"
        )


def map_tiles(
    fn: Callable[[Any], Any],
    tiles: Iterable[Any],
    *,
    executor=None,
    cache: str | os.PathLike | TileCache | None = None,
    key: Any = None,
    progress: bool = True,
    desc: str = "tiles",
) -> list:
    """``[fn(t) for t in tiles]``, optionally on an ``executor`` and resumable from a ``cache``.

    Parameters
    ----------
    fn : callable(tile) -> result
        Must be deterministic given its tile. With a process pool or a cluster it must be
        picklable (a module-level function or a ``functools.partial`` of one, not a lambda).
    tiles : iterable
        The independent pieces of work (numbers, tuples, dicts, arrays).
    executor : concurrent.futures-style executor, optional
        ``None`` runs in this process. Tiles are submitted all at once and collected in order.
    cache : directory or :class:`TileCache`, optional
        Finished tiles are stored there and reused by later calls with the same ``key`` (and
        tiles); only missing tiles are computed.
    key : JSON-like, optional
        Everything besides the tile that determines the result (the sweep's settings). Required
        with ``cache``, so two sweeps never share tiles by accident.
    progress, desc
        A tqdm bar over finished tiles.

    Returns
    -------
    list
        The results in the order of ``tiles``.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable(tile), got {type(fn).__name__}")
    tiles = list(tiles)
    _check_executor(executor)
    if cache is not None and key is None:
        raise ValueError("`key` is required with `cache`: name what determines the results (the settings)")
    if cache is not None and not isinstance(cache, TileCache):
        cache = TileCache(cache)
    keys = [tile_key(key, t) for t in tiles] if cache is not None else [None] * len(tiles)
    results: list = [None] * len(tiles)
    todo: list[int] = []
    for i, k in enumerate(keys):
        if cache is not None and k in cache:
            results[i] = cache.get(k)
        else:
            todo.append(i)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tiles), initial=len(tiles) - len(todo), desc=desc, disable=not progress, leave=False)
    try:
        if executor is None:
            for i in todo:
                results[i] = fn(tiles[i])
                if cache is not None:
                    cache.put(keys[i], results[i])
                bar.update(1)
        else:
            try:
                futures = [(i, executor.submit(fn, tiles[i])) for i in todo]
                for i, fut in futures:
                    results[i] = fut.result()
                    if cache is not None:
                        cache.put(keys[i], results[i])
                    bar.update(1)
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                if "pickle" not in str(exc).lower():
                    raise
                raise TypeError(
                    "`fn` cannot be sent to the executor (not picklable): use a module-level function "
                    "or functools.partial, not a lambda or a local function"
                ) from exc
    finally:
        bar.close()
    return results
