"""The claim check of T05: the spherical Z-loss touches no tensor whose size grows with K.

Paper: Alexandre de Brebisson, Pascal Vincent, "The Z-loss: a shift and scale invariant
classification loss belonging to the Spherical Family", 2016, arXiv:1604.08859.

:func:`largest_intermediate` runs a computation (forward and backward) under a
``torch.utils._python_dispatch.TorchDispatchMode`` and reports the largest tensor any operator
produced. For the Z-loss of a linear output layer ``o = W h`` with ``K`` classes, the naive
computation materialises the ``(B, K)`` logits, while the spherical one
(:func:`lossviz.losses.z_loss_spherical` with precomputed :func:`lossviz.losses.spherical_stats`)
works with ``(B, d)``, ``(d, d)`` and ``(B,)`` tensors only: its largest intermediate does not
change with ``K``. The same run counts the floating-point operations of the matrix products
(``torch.utils.flop_counter.FlopCounterMode``: ``mm``, ``addmm``, ``bmm``, ...), which is where
the ``O(K d)`` cost of the naive path sits. That is the paper's complexity claim as properties
that can fail, independent of wall-clock noise. The digits classifier of the notebook reuses the T03 set-up
(:mod:`lossviz.papers.t03_ldr_losses`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from .._result import Result

__all__ = ["Footprint", "largest_intermediate"]


@dataclass(frozen=True, repr=False)
class Footprint(Result):
    """The largest tensor produced by any operator of a computation, and its matmul FLOPs.

    ``numel`` its number of elements (views included: a view of a size-K input counts as
    touching it), ``shape`` its shape, ``op`` the operator that made it, ``num_ops`` how many
    operators ran, ``flops`` the floating-point operations of the matrix products counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (``2 m n k`` for an ``(m, k) @ (k, n)``
    product; element-wise operations are not counted).
    """

    numel: int
    shape: tuple[int, ...]
    op: str
    num_ops: int
    flops: int


class _Largest(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.best = (0, (), "")
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.count += 1
        for t in tree_flatten(out)[0]:
            # meta tensors (shape checks) hold no data and cost nothing
            if isinstance(t, torch.Tensor) and not t.is_meta and t.numel() > self.best[0]:
                self.best = (t.numel(), tuple(t.shape), str(func))
        return out


def largest_intermediate(fn: Callable[[], object]) -> Footprint:
    """Run ``fn()`` (forward and whatever backward it calls) and report its largest intermediate.

    Every operator output that holds data counts (``meta`` tensors, used for shape checks, do not);
    the matrix-product FLOPs of the same run are counted alongside (:attr:`Footprint.flops`).

    Examples
    --------
    >>> import torch
    >>> a, b = torch.ones(3, 40), torch.ones(40, 5)   # made outside: inputs do not count
    >>> fp = largest_intermediate(lambda: (a @ b).sum())
    >>> fp.shape, fp.flops   # 2 * 3 * 40 * 5 multiply-adds counted as FLOPs
    ((3, 5), 1200)
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable(), got {type(fn).__name__}")
    mode = _Largest()
    counter = FlopCounterMode(display=False)
    with counter, mode:
        fn()
    numel, shape, op = mode.best
    return Footprint(
        numel=numel, shape=shape, op=op, num_ops=mode.count, flops=int(counter.get_total_flops())
    )
