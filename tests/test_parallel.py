"""lossviz.parallel: tiles on executors, stitched in order, bit for bit; resumable cache."""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor as _Pool
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from lossviz import landscape, parallel, widgets


def ProcessPoolExecutor(n):  # noqa: N802 - spawn, not fork: a forked torch/OpenMP process can hang
    return _Pool(n, mp_context=multiprocessing.get_context("spawn"))


@pytest.fixture(scope="module")
def spawn_pool():
    """One 2-process spawn pool shared by this module (starting one costs a torch import each)."""
    with ProcessPoolExecutor(2) as ex:
        yield ex


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


def test_thread_and_process_pools_equal_the_serial_run_bit_for_bit(spawn_pool):
    ref = _serial()
    with ThreadPoolExecutor(2) as ex:
        assert _equal(parallel.map_tiles(heavy_tile, TILES, executor=ex, progress=False), ref)
    assert _equal(parallel.map_tiles(heavy_tile, TILES, executor=spawn_pool, progress=False), ref)


@pytest.fixture(scope="module")
def dask_client():
    """A local 2-worker Dask cluster (separate processes, one thread each), shared by this module."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def test_dask_local_cluster_equals_the_serial_run_bit_for_bit(dask_client):
    out = parallel.map_tiles(heavy_tile, TILES, executor=dask_client, progress=False)
    assert _equal(out, _serial())
    assert len(dask_client.scheduler_info()["workers"]) == 2


# a small map with a boundary: some cells converge, some diverge, over several chunks
TRAIN = dict(x_range=(0.0, 4.0), y_range=(0.5, 3.0), resolution=(10, 9), steps=60, chunk=16)


def _same_map(a, b):
    for f in ("converged", "diverged", "score", "diverged_step", "final_loss", "x_values", "y_values"):
        x, y = getattr(a, f), getattr(b, f)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f
    assert a.cell_steps == b.cell_steps and a.L0 == b.L0


@pytest.fixture(scope="module")
def train_ref():
    ref = landscape.trainability(**TRAIN, workers=1)
    assert ref.converged.any() and ref.diverged.any(), "the test map must contain a boundary"
    return ref


def test_trainability_on_dask_equals_the_one_process_map_bit_for_bit(dask_client, train_ref):
    _same_map(landscape.trainability(**TRAIN, executor=dask_client), train_ref)
    # and the float64 exact path
    ref64 = landscape.trainability(**TRAIN, dtype=torch.float64, workers=1)
    _same_map(landscape.trainability(**TRAIN, dtype=torch.float64, executor=dask_client), ref64)


def test_trainability_on_a_process_pool_equals_the_threaded_map(spawn_pool, train_ref):
    _same_map(landscape.trainability(**TRAIN, executor=spawn_pool), train_ref)
    _same_map(landscape.trainability(**TRAIN, workers=2), train_ref)


def test_trainability_resumes_an_interrupted_map_from_the_cache(tmp_path, monkeypatch, train_ref):
    from lossviz.landscape import _trainability

    real, calls = _trainability._trainability_tile, []

    def flaky(spec, tile):
        calls.append(tile)
        if len(calls) == 3 and not getattr(flaky, "healed", False):
            raise KeyboardInterrupt("interrupted after 2 chunks")
        return real(spec, tile)

    monkeypatch.setattr(_trainability, "_trainability_tile", flaky)
    with pytest.raises(KeyboardInterrupt):
        landscape.trainability(**TRAIN, cache=tmp_path)
    n_tiles = -(-90 // TRAIN["chunk"])
    assert len(parallel.TileCache(tmp_path)) == 2
    flaky.healed, calls[:] = True, []
    _same_map(landscape.trainability(**TRAIN, cache=tmp_path), train_ref)
    assert len(calls) == n_tiles - 2, "only the missing chunks are computed"
    assert calls[0] == (32, 48)
    calls.clear()
    _same_map(landscape.trainability(**TRAIN, cache=tmp_path), train_ref)
    assert calls == [], "a finished map comes from the cache alone"
    landscape.trainability(**{**TRAIN, "steps": 61}, cache=tmp_path)
    assert len(calls) == n_tiles, "other settings never reuse these chunks"


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


def test_widgets_sweep_on_an_executor_with_a_cache(tmp_path, spawn_pool):
    fn = functools.partial(heavy_tile, scale=2.0)
    ref = widgets.sweep(fn, TILES, progress=False)
    par = widgets.sweep(fn, TILES, progress=False, executor=spawn_pool, cache=tmp_path, key="scale=2")
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


def _plane_setup():
    from lossviz.testing import BNDropoutNet

    net = BNDropoutNet(4, 8, 3, seed=0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g)
    kw = dict(steps=(7, 5), seed=0, engine="loop", metrics={"acc": landscape.accuracy_metric})
    return net, (x, y), kw


def test_plane_on_dask_and_threads_equals_the_one_process_plane_bit_for_bit(dask_client):
    from lossviz.testing import assert_model_unchanged

    net, data, kw = _plane_setup()
    ce = torch.nn.functional.cross_entropy
    ref = landscape.plane(net, ce, data, workers=1, **kw)
    with assert_model_unchanged(net):
        on_dask = landscape.plane(net, ce, data, executor=dask_client, **kw)
        with ThreadPoolExecutor(3) as ex:
            on_threads = landscape.plane(net, ce, data, executor=ex, **kw)
    for out in (on_dask, on_threads):
        assert np.array_equal(out.loss, ref.loss) and np.array_equal(out.metrics["acc"], ref.metrics["acc"])
        assert out.origin_loss == ref.origin_loss and out.origin_index == ref.origin_index


def test_plane_resumes_from_the_cache_and_keys_name_everything(tmp_path, monkeypatch):
    from lossviz.landscape import _grid

    net, data, kw = _plane_setup()
    ce = torch.nn.functional.cross_entropy
    ref = landscape.plane(net, ce, data, workers=1, **kw)
    real, calls = _grid._plane_tile, []

    def flaky(*args):
        calls.append(args[-1][0, 0])  # the row's alpha
        if len(calls) == 4 and not getattr(flaky, "healed", False):
            raise KeyboardInterrupt("interrupted after 3 rows")
        return real(*args)

    monkeypatch.setattr(_grid, "_plane_tile", flaky)
    with pytest.raises(KeyboardInterrupt):
        landscape.plane(net, ce, data, cache=tmp_path, **kw)
    assert len(parallel.TileCache(tmp_path)) == 3
    flaky.healed, calls[:] = True, []
    out = landscape.plane(net, ce, data, cache=tmp_path, **kw)
    assert np.array_equal(out.loss, ref.loss) and np.array_equal(out.metrics["acc"], ref.metrics["acc"])
    assert calls == list(ref.alphas[3:]), "only the missing rows are computed"
    calls.clear()
    landscape.plane(net, ce, data, cache=tmp_path, **kw)
    assert calls == [], "a finished plane comes from the cache alone"
    # another loss, other data or other weights never reuse these rows
    landscape.plane(net, torch.nn.functional.nll_loss, data, cache=tmp_path, **kw)
    assert len(calls) == 7
    x, y = data
    landscape.plane(net, ce, (x + 1.0, y), cache=tmp_path, **kw)
    assert len(calls) == 14
    with torch.no_grad():
        next(net.parameters())[0, 0] += 1.0
    landscape.plane(net, ce, data, cache=tmp_path, **kw)
    assert len(calls) == 21


def test_plane_cache_refuses_what_a_key_cannot_name(tmp_path):
    net, (x, y), kw = _plane_setup()
    with pytest.raises(TypeError, match="cache.*loss_fn.*lambda"):
        landscape.plane(
            net, lambda o, t: torch.nn.functional.cross_entropy(o, t), (x, y), cache=tmp_path, **kw
        )
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    with pytest.raises(TypeError, match="cache.*DataLoader"):
        landscape.plane(net, torch.nn.functional.cross_entropy, loader, cache=tmp_path, **kw)
