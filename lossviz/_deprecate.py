"""Deprecation aliases for public names that moved (kept for one release).

A family face (or a base module) whose public name moved elsewhere, for instance into
:mod:`lossviz.papers`, ends with::

    __getattr__ = moved(__name__, {"train_mixup": "lossviz.papers.n03_mixup:train_mixup"})

The new home is imported lazily, **by string**, on first access of the old name, and a
``DeprecationWarning`` says where the name went. This is the only sanctioned route from a family
to ``papers/`` (the architecture test allows exactly this mechanism), so the families keep no
import of the paper layer.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping

__all__ = ["moved", "REMOVED_IN"]

REMOVED_IN = "0.3"


def moved(module_name: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` resolving each old name in ``names`` to ``"pkg.module:attr"``.

    Parameters
    ----------
    module_name : str
        ``__name__`` of the module that lost the names (for messages).
    names : mapping old name -> ``"new.module:new_name"``

    Examples
    --------
    >>> getattr_ = moved("lossviz.example", {"old": "math:sqrt"})
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f = getattr_("old")
    >>> f(9.0), "moved to math.sqrt" in str(w[0].message)
    (3.0, True)
    """
    table = dict(names)
    for old, target in table.items():
        if ":" not in target:
            raise ValueError(f"`names[{old!r}]` must read 'package.module:attribute', got {target!r}")

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        mod_name, attr = table[name].split(":")
        warnings.warn(
            f"{module_name}.{name} moved to {mod_name}.{attr}; the old name goes in {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(mod_name), attr)

    return __getattr__
