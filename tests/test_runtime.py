import random
import warnings

import numpy as np
import pytest
import torch

import lossviz
from lossviz._runtime import widget_mismatches


def test_device_default_is_cpu_here(monkeypatch):
    monkeypatch.delenv("LOSSVIZ_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lossviz.device().type == expected


def test_device_env_override(monkeypatch):
    monkeypatch.setenv("LOSSVIZ_DEVICE", "cpu")
    assert lossviz.device() == torch.device("cpu")
    assert lossviz.device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu0", "tpu", "cuda:x"])
def test_device_unknown_string(monkeypatch, bad):
    monkeypatch.setenv("LOSSVIZ_DEVICE", bad)
    with pytest.raises(ValueError, match="LOSSVIZ_DEVICE"):
        lossviz.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_unavailable_cuda():
    with pytest.raises(ValueError, match="prefer"):
        lossviz.device("cuda")


def test_seed_everything_reproducible():
    g = lossviz.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    g = lossviz.seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    assert a == b
    with pytest.raises(ValueError, match="seed"):
        lossviz.seed_everything(-1)
    with pytest.raises(TypeError, match="seed"):
        lossviz.seed_everything(1.5)


def test_notebook_params_env(monkeypatch, capsys):
    monkeypatch.delenv("LOSSVIZ_SEED", raising=False)
    monkeypatch.delenv("LOSSVIZ_QUICK", raising=False)
    p = lossviz.notebook_params(5, True)
    assert (p.seed, p.quick) == (5, True)
    monkeypatch.setenv("LOSSVIZ_SEED", "7")
    monkeypatch.setenv("LOSSVIZ_QUICK", "0")
    seed, quick, dev = lossviz.notebook_params(5, True)
    assert (seed, quick) == (7, False) and isinstance(dev, torch.device)
    assert "seed=7" in capsys.readouterr().out
    # seeding happened
    lossviz.notebook_params(5, True, verbose=False)
    lossviz.notebook_params(5, True, verbose=False)
    y1 = torch.rand(3)
    lossviz.notebook_params(5, True, verbose=False)
    assert torch.equal(y1, torch.rand(3))


@pytest.mark.parametrize(
    "var,value", [("LOSSVIZ_SEED", "abc"), ("LOSSVIZ_SEED", "-2"), ("LOSSVIZ_QUICK", "maybe")]
)
def test_notebook_params_bad_env(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=var):
        lossviz.notebook_params(0, True, verbose=False)


def test_notebook_params_bad_args():
    with pytest.raises(TypeError, match="quick"):
        lossviz.notebook_params(0, "yes")


def test_show_versions(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = lossviz.show_versions()
    out = capsys.readouterr().out
    for key in ("python", "torch", "device", "ipywidgets", "jupyterlab_widgets", "anywidget", "plotly"):
        assert key in v and key in out


def test_widget_mismatch_detection():
    ok = {
        "ipywidgets": "8.1.5",
        "jupyterlab_widgets": "3.0.13",
        "widgetsnbextension": "4.0.13",
        "plotly": "6.0.0",
        "anywidget": "0.9.0",
    }
    assert widget_mismatches(ok) == []
    assert any("jupyterlab_widgets" in p for p in widget_mismatches(dict(ok, jupyterlab_widgets="1.1.0")))
    assert any("anywidget" in p for p in widget_mismatches(dict(ok, anywidget=None)))
    assert any("ipywidgets" in p for p in widget_mismatches(dict(ok, ipywidgets=None)))


def test_lazy_submodules():
    assert lossviz.data.__name__ == "lossviz.data"
    with pytest.raises(AttributeError):
        lossviz.not_a_module  # noqa: B018
