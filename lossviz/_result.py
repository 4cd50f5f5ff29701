"""Base class for the frozen result objects every compute function returns."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path

import numpy as np
import torch

FORMAT = "lossviz-result/1"


def _short(v) -> str:
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return f"<{type(v).__name__} shape={tuple(v.shape)} dtype={v.dtype}>"
    if isinstance(v, dict) and len(v) > 6:
        return f"<dict with {len(v)} entries>"
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _encode(value, name: str, arrays: dict):
    """JSON description of ``value``; arrays go to ``arrays`` under ``name``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"kind": "plain", "value": value}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return {"kind": "plain", "value": value.item()}
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            arrays[name] = t.float().numpy()
        else:
            arrays[name] = t.numpy()
        return {"kind": "tensor", "dtype": str(value.dtype).removeprefix("torch."), "key": name}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"field `{name}` is an object array: it cannot be saved portably")
        arrays[name] = value
        return {"kind": "ndarray", "key": name}
    if isinstance(value, (list, tuple)):
        return {
            "kind": type(value).__name__,
            "items": [_encode(v, f"{name}.{i}", arrays) for i, v in enumerate(value)],
        }
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"field `{name}` is a dict with non-string keys: it cannot be saved portably")
        return {"kind": "dict", "items": {k: _encode(v, f"{name}.{k}", arrays) for k, v in value.items()}}
    if isinstance(value, (torch.dtype, torch.device)):
        return {"kind": type(value).__name__, "value": str(value).removeprefix("torch.")}
    if dataclasses.is_dataclass(value) and isinstance(value, Result):
        return {
            "kind": "result",
            "class": _class_path(type(value)),
            "fields": _encode_fields(value, name, arrays),
        }
    raise TypeError(
        f"field `{name}` holds a {type(value).__name__}, which Result.save cannot write portably "
        "(numbers, strings, arrays, tensors, lists, tuples, dicts and nested results can)"
    )


def _decode(desc, arrays):
    kind = desc["kind"]
    if kind == "plain":
        return desc["value"]
    if kind == "tensor":
        dtype = getattr(torch, desc["dtype"])
        return torch.from_numpy(np.array(arrays[desc["key"]])).to(dtype)
    if kind == "ndarray":
        return np.array(arrays[desc["key"]])
    if kind in ("list", "tuple"):
        items = [_decode(d, arrays) for d in desc["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {k: _decode(d, arrays) for k, d in desc["items"].items()}
    if kind == "dtype":
        return getattr(torch, desc["value"])
    if kind == "device":
        return torch.device(desc["value"])
    if kind == "result":
        cls = _import_class(desc["class"])
        return cls(**{k: _decode(d, arrays) for k, d in desc["fields"].items()})
    raise ValueError(f"unknown field kind {kind!r} in a saved result")


def require_extra(module: str, extra: str, purpose: str):
    """Import an optional dependency, or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f'{purpose} needs the optional package `{module}`: pip install "lossviz[{extra}]"'
        ) from exc


def _class_path(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str):
    """The class named in a saved file: lossviz modules are imported, others must be loaded already."""
    import sys

    mod, _, qual = path.partition(":")
    if mod in sys.modules:
        obj = sys.modules[mod]
    elif mod.split(".")[0] == "lossviz":
        obj = importlib.import_module(mod)
    else:
        raise ValueError(
            f"the saved result's class {path!r} is outside lossviz and its module is not imported"
        )
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Result)):
        raise TypeError(f"the saved class {path!r} is not a lossviz Result")
    return obj


def _encode_fields(result, prefix: str, arrays: dict) -> dict:
    return {
        f.name: _encode(
            getattr(result, f.name), f"{prefix}{f.name}" if not prefix else f"{prefix}.{f.name}", arrays
        )
        for f in dataclasses.fields(result)
    }


class Result:
    """Mixin for ``@dataclasses.dataclass(frozen=True)`` results: compact repr, ``as_dict``, save/load.

    Results hold arrays, the settings that produced them and diagnostics. Drawing is separate
    (functions taking the result); results with a natural picture offer ``.plot(**kw)``.
    """

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={_short(getattr(self, f.name))}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write the result to ``path`` in a portable format: one ``.npz`` (default) or HDF5 file.

        Arrays and tensors are stored as NumPy arrays; everything else (the settings,
        diagnostics, the result's class and each tensor's dtype) as JSON metadata inside the same
        file (key ``__lossviz__``), readable without lossviz by ``numpy.load``. Returns the path
        written (``.npz`` is appended when missing). Load it with :meth:`load`.

        ``format="hdf5"`` (or a path ending in ``.h5`` / ``.hdf5``) writes an HDF5 file instead
        (needs ``h5py``: ``pip install "lossviz[export]"``): one dataset per array, named by its
        field path (``metrics.acc``), and the same JSON metadata in the root attribute
        ``__lossviz__``; readable by ``h5py``, HDFView, ParaView or MATLAB.
        """
        path = Path(path)
        if format is None:
            format = "hdf5" if path.suffix in (".h5", ".hdf5") else "npz"
        if format not in ("npz", "hdf5"):
            raise ValueError(f"`format` must be 'npz' or 'hdf5', got {format!r}")
        arrays: dict = {}
        meta = {
            "format": FORMAT,
            "class": _class_path(type(self)),
            "fields": _encode_fields(self, "", arrays),
        }
        if format == "hdf5":
            h5py = require_extra("h5py", "export", "writing HDF5 files")
            if path.suffix not in (".h5", ".hdf5"):
                path = path.with_name(path.name + ".h5")
            with h5py.File(path, "w") as f:
                f.attrs["__lossviz__"] = json.dumps(meta)
                for k, a in arrays.items():
                    f.create_dataset(k, data=np.asarray(a), compression="gzip" if np.ndim(a) else None)
            return path
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        np.savez_compressed(path, __lossviz__=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a result written by :meth:`save` (``.npz`` or HDF5; tensors come back as tensors
        of their dtype)."""
        path = Path(path)
        if path.suffix in (".h5", ".hdf5"):
            h5py = require_extra("h5py", "export", "reading HDF5 files")
            with h5py.File(path, "r") as f:
                if "__lossviz__" not in f.attrs:
                    raise ValueError(f"`path` {str(path)!r} is not a file written by Result.save")
                meta = json.loads(str(f.attrs["__lossviz__"]))
                arrays: dict = {}
                f.visititems(
                    lambda k, obj: arrays.update({k: obj[()]}) if isinstance(obj, h5py.Dataset) else None
                )
        else:
            with np.load(path, allow_pickle=False) as data:
                if "__lossviz__" not in data:
                    raise ValueError(f"`path` {str(path)!r} is not a file written by Result.save")
                meta = json.loads(str(data["__lossviz__"]))
                arrays = {k: data[k] for k in data.files if k != "__lossviz__"}
        if meta.get("format") != FORMAT:
            raise ValueError(f"`path` {str(path)!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
        target = _import_class(meta["class"])
        if cls is not Result and not issubclass(target, cls):
            raise TypeError(f"`path` holds a {target.__name__}, not a {cls.__name__}")
        return target(**{k: _decode(d, arrays) for k, d in meta["fields"].items()})
