"""Result.save / Result.load: a portable npz + JSON round trip."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from lossviz._result import Result


@dataclasses.dataclass(frozen=True, repr=False)
class Inner(Result):
    values: torch.Tensor
    note: str


@dataclasses.dataclass(frozen=True, repr=False)
class Outer(Result):
    grid: np.ndarray
    loss: torch.Tensor
    half: torch.Tensor
    settings: dict
    steps: tuple
    converged: bool
    dtype: torch.dtype
    inner: Inner
    missing: float | None = None


def _example():
    return Outer(
        grid=np.linspace(-1, 1, 5),
        loss=torch.arange(6, dtype=torch.float64).reshape(2, 3),
        half=torch.ones(3, dtype=torch.bfloat16),
        settings={"span": 1.0, "norm": "filter", "dirs": [np.eye(2)]},
        steps=(1, 2, 3),
        converged=True,
        dtype=torch.float32,
        inner=Inner(torch.tensor([1, 2], dtype=torch.int64), "hi"),
    )


@pytest.mark.parametrize("fmt", ["npz", "hdf5"])
def test_round_trip_keeps_types_dtypes_and_values(tmp_path, fmt):
    if fmt == "hdf5":
        pytest.importorskip("h5py")
    r = _example()
    path = r.save(tmp_path / "res", format=fmt)
    assert path.suffix == (".npz" if fmt == "npz" else ".h5")
    back = Outer.load(path)
    assert isinstance(back, Outer) and isinstance(back.inner, Inner)
    assert np.array_equal(back.grid, r.grid) and torch.equal(back.loss, r.loss)
    assert back.half.dtype == torch.bfloat16 and torch.equal(back.half, r.half)
    assert back.settings["norm"] == "filter" and np.array_equal(back.settings["dirs"][0], np.eye(2))
    assert back.steps == (1, 2, 3) and back.converged is True and back.dtype is torch.float32
    assert back.inner.note == "hi" and back.missing is None
    # readable without lossviz
    if fmt == "npz":
        with np.load(path) as data:
            assert "__lossviz__" in data.files
    else:
        import h5py

        with h5py.File(path, "r") as f:
            assert "__lossviz__" in f.attrs and np.array_equal(f["grid"][()], r.grid)
            assert np.array_equal(f["settings.dirs.0"][()], np.eye(2))


def test_hdf5_by_suffix_and_the_missing_extra(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    import sys

    path = _example().save(tmp_path / "res.hdf5")
    assert path.name == "res.hdf5" and torch.equal(Outer.load(path).loss, _example().loss)
    with pytest.raises(ValueError, match="format"):
        _example().save(tmp_path / "x", format="csv")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"lossviz\[export\]"):
        _example().save(tmp_path / "y.h5")
    with pytest.raises(ImportError, match=r"lossviz\[export\]"):
        Outer.load(path)


def test_save_and_load_refuse_what_they_cannot_do(tmp_path):
    @dataclasses.dataclass(frozen=True, repr=False)
    class Bad(Result):
        f: object

    with pytest.raises(TypeError, match="field `f`"):
        Bad(object()).save(tmp_path / "bad")
    path = _example().save(tmp_path / "ok.npz")
    with pytest.raises(TypeError, match="not a Inner"):
        Inner.load(path)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="Result.save"):
        Result.load(tmp_path / "plain.npz")


def test_real_results_round_trip(tmp_path):
    from lossviz import curvature, landscape

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    plane = landscape.plane(net, torch.nn.functional.mse_loss, (x, y), steps=5, seed=0)
    back = type(plane).load(plane.save(tmp_path / "plane"))
    assert np.array_equal(np.asarray(back.loss), np.asarray(plane.loss))
    if importlib.util.find_spec("h5py") is not None:
        back = type(plane).load(plane.save(tmp_path / "plane.h5"))
        assert np.array_equal(np.asarray(back.loss), np.asarray(plane.loss))
        assert np.array_equal(back.alphas, plane.alphas) and back.origin_index == plane.origin_index
    top = curvature.top_eigenvalues(net, torch.nn.functional.mse_loss, (x, y), k=1, seed=0)
    again = type(top).load(top.save(tmp_path / "top"))
    assert np.allclose(np.asarray(again.eigenvalues), np.asarray(top.eigenvalues))
