"""landscape.to_vtk: planes and trajectories as VTK XML for ParaView, read back byte for byte."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

from lossviz import landscape

pytest.importorskip("pyevtk")


def read_vtk_xml(path):
    """A minimal reader of pyevtk's raw appended binary VTK XML: {array name: flat float64 array}."""
    raw = open(path, "rb").read()
    head, _, body = raw.partition(b'<AppendedData encoding="raw">')
    data = body[body.index(b"_") + 1 :]
    assert b'header_type="UInt64"' in head and b'byte_order="LittleEndian"' in head
    out = {}
    pattern = rb'<DataArray Name="([^"]+)" NumberOfComponents="(\d+)" type="(\w+)"[^>]*offset="(\d+)"'
    types = {"Float64": np.float64, "Int32": np.int32, "Int64": np.int64, "UInt8": np.uint8}
    for m in re.finditer(pattern, head):
        name, comps, dt, off = (
            m.group(1).decode(),
            int(m.group(2)),
            types[m.group(3).decode()],
            int(m.group(4)),
        )
        nbytes = int(np.frombuffer(data, np.uint64, 1, off)[0])
        a = np.frombuffer(data, dt, nbytes // np.dtype(dt).itemsize, off + 8)
        out[name] = a if comps == 1 else a.reshape(-1, comps)
    return head.decode("latin1"), out


@pytest.fixture(scope="module")
def plane():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    return landscape.plane(net, torch.nn.functional.mse_loss, (x, y), steps=(5, 7), seed=0)


def test_plane_is_a_structured_grid_with_the_loss_as_height_and_point_data(tmp_path, plane):
    out = landscape.to_vtk(plane, tmp_path / "plane.vtk")
    assert out.suffix == ".vts" and out.exists()
    head, arrays = read_vtk_xml(out)
    nx, ny = plane.loss.shape
    assert (nx, ny) == (5, 7)
    assert f'WholeExtent="0 {nx - 1} 0 {ny - 1} 0 0"' in head
    pts = arrays["points"]
    A, B = np.meshgrid(plane.alphas, plane.betas, indexing="ij")
    L = np.asarray(plane.loss, dtype=np.float64)
    # VTK orders points with the first index fastest (Fortran order)
    np.testing.assert_array_equal(pts[:, 0], A.ravel(order="F"))
    np.testing.assert_array_equal(pts[:, 1], B.ravel(order="F"))
    np.testing.assert_array_equal(pts[:, 2], L.ravel(order="F"))
    np.testing.assert_array_equal(arrays["loss"], L.ravel(order="F"))
    assert not arrays["diverged"].any()
    flat = read_vtk_xml(landscape.to_vtk(plane, tmp_path / "flat", height=None))[1]
    assert not flat["points"][:, 2].any()
    logh = read_vtk_xml(landscape.to_vtk(plane, tmp_path / "log", height="log10"))[1]
    np.testing.assert_allclose(logh["points"][:, 2], np.log10(L.ravel(order="F")))


def test_diverged_points_sit_at_the_largest_finite_height(tmp_path, plane):
    import dataclasses

    L = np.array(plane.loss, dtype=np.float64)
    L[0, 0] = np.inf
    bad = dataclasses.replace(plane, loss=L, diverged=~np.isfinite(L))
    _, arrays = read_vtk_xml(landscape.to_vtk(bad, tmp_path / "bad"))
    z = arrays["points"][:, 2]
    assert z[0] == np.max(L[np.isfinite(L)]) and np.isfinite(z).all()
    assert arrays["diverged"][0] == 1 and arrays["diverged"][1:].sum() == 0
    assert np.isnan(arrays["loss"][0])


def test_trajectory_is_a_poly_line(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    g = torch.Generator().manual_seed(0)
    path = torch.stack([theta + 0.1 * k * torch.randn(theta.shape, generator=g) for k in range(6)])
    tr = landscape.trajectory(net, path)
    heights = np.linspace(1.0, 0.5, len(tr.coords))
    out = landscape.to_vtk(tr, tmp_path / "path", loss=heights)
    assert out.suffix == ".vtu"
    head, arrays = read_vtk_xml(out)
    assert 'type="UnstructuredGrid"' in head
    np.testing.assert_array_equal(arrays["points"][:, :2], np.asarray(tr.coords[:, :2], dtype=np.float64))
    np.testing.assert_array_equal(arrays["points"][:, 2], heights)
    np.testing.assert_array_equal(arrays["loss"], heights)
    with pytest.raises(ValueError, match="loss"):
        landscape.to_vtk(tr, tmp_path / "p2", loss=heights[:-1])


def test_bad_input_and_the_missing_extra(tmp_path, plane, monkeypatch):
    with pytest.raises(TypeError, match="result"):
        landscape.to_vtk(object(), tmp_path / "x")
    with pytest.raises(ValueError, match="height"):
        landscape.to_vtk(plane, tmp_path / "x", height="z")
    with pytest.raises(ValueError, match="loss"):
        landscape.to_vtk(plane, tmp_path / "x", loss=[1.0])
    monkeypatch.setitem(sys.modules, "pyevtk", None)
    with pytest.raises(ImportError, match=r"lossviz\[export\]"):
        landscape.to_vtk(plane, tmp_path / "x")
