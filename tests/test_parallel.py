"""lossviz.parallel: tiles on executors, stitched in order, bit for bit; resumable cache."""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor as _Pool
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from lossviz import parallel, widgets


def ProcessPoolExecutor(n):  # noqa: N802 - spawn, not fork: a forked torch/OpenMP process can hang
    return _Pool(n, mp_context=multiprocessing.get_context("spawn"))


def heavy_tile(tile, scale=1.0):
    """A deterministic tile: a seeded random matrix product (module level: picklable)."""
    seed, n = tile
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return (a @ a.T * scale).numpy()


TILES = [(s, 12) for s in range(6)]


def _serial():
    return parallel.map_tiles(heavy_tile, TILES, progress=False)


def _equal(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_thread_and_process_pools_equal_the_serial_run_bit_for_bit():
    ref = _serial()
    with ThreadPoolExecutor(2) as ex:
        assert _equal(parallel.map_tiles(heavy_tile, TILES, executor=ex, progress=False), ref)
    with ProcessPoolExecutor(2) as ex:
        assert _equal(parallel.map_tiles(heavy_tile, TILES, executor=ex, progress=False), ref)


def test_dask_local_cluster_equals_the_serial_run_bit_for_bit():
    distributed = pytest.importorskip("distributed")
    ref = _serial()
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            out = parallel.map_tiles(heavy_tile, TILES, executor=client, progress=False)
    assert _equal(out, ref)


def test_cache_resumes_an_interrupted_sweep_with_only_the_missing_tiles(tmp_path):
    calls = []

    def counted(tile):
        calls.append(tile)
        if tile[0] == 3 and len(calls) < 10:
            raise KeyboardInterrupt("interrupted at tile 3")
        return heavy_tile(tile)

    with pytest.raises(KeyboardInterrupt):
        parallel.map_tiles(counted, TILES, cache=tmp_path, key={"n": 12}, progress=False)
    assert len(parallel.TileCache(tmp_path)) == 3  # tiles 0, 1, 2 finished and stored
    calls.clear()
    calls.extend([None] * 10)  # let tile 3 pass now
    out = parallel.map_tiles(counted, TILES, cache=tmp_path, key={"n": 12}, progress=False)
    assert [c for c in calls[10:]] == TILES[3:], "only the missing tiles are computed"
    assert _equal(out, _serial())
    # a different key never reuses these tiles
    calls.clear()
    parallel.map_tiles(heavy_tile, TILES[:1], cache=tmp_path, key={"n": 13}, progress=False)
    assert len(parallel.TileCache(tmp_path)) == 7


def test_widgets_sweep_on_an_executor_with_a_cache(tmp_path):
    fn = functools.partial(heavy_tile, scale=2.0)
    ref = widgets.sweep(fn, TILES, progress=False)
    with ProcessPoolExecutor(2) as ex:
        par = widgets.sweep(fn, TILES, progress=False, executor=ex, cache=tmp_path, key="scale=2")
    assert _equal(list(par.results), list(ref.results))
    again = widgets.sweep(lambda t: 1 / 0, TILES, progress=False, cache=tmp_path, key="scale=2")
    assert _equal(list(again.results), list(ref.results)), "all tiles come from the cache"


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="executor"):
        parallel.map_tiles(abs, [1], executor=object())
    with pytest.raises(ValueError, match="key"):
        parallel.map_tiles(abs, [1], cache="/tmp/lossviz-never-used")
    with pytest.raises(TypeError, match="fn"):
        parallel.map_tiles(3, [1])
    with ProcessPoolExecutor(1) as ex, pytest.raises(TypeError, match="picklable"):
        parallel.map_tiles(lambda t: t, [1], executor=ex, progress=False)
    with pytest.raises(TypeError, match="cache key"):
        parallel.tile_key(object(), 1)


def test_tile_keys_are_exact_and_stable():
    assert parallel.tile_key("a", 0.1) != parallel.tile_key("a", 0.1000000001)
    assert parallel.tile_key({"b": 1, "a": 2}, (1, 2)) == parallel.tile_key({"a": 2, "b": 1}, (1, 2))
    assert parallel.tile_key("a", np.arange(3)) != parallel.tile_key("a", np.arange(3.0))
