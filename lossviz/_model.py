"""Working on a user's model without changing it, and handling data batches.

Two rules from CONTRIBUTING.md live here:

* the model is evaluated functionally (``torch.func.functional_call``) with tensors that are
  *not* its parameters, so parameters, ``requires_grad`` and ``.grad`` are never touched;
* mode flags are switched only inside :func:`eval_mode`/:func:`preserved`, which restore every
  submodule's ``.training`` flag (and, for :func:`preserved`, grads, ``requires_grad`` and
  buffers) in ``finally``.

Data is given as a batch (a tuple ``(inputs, targets)``, a dict of tensors in the Hugging Face
style) or an iterable / ``DataLoader`` of batches; :func:`collate` turns it into :class:`Batches`
(sample-weighted, streamed to the model's device one batch at a time or kept resident), and
:func:`call_model` applies the model to any form of inputs and turns its output into logits
(``output_fn``, default :func:`logits_of`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._validate import check_finite_parameters, check_module, check_tensor

__all__ = [
    "eval_mode",
    "preserved",
    "parameters_of",
    "buffers_of",
    "has_batchnorm",
    "train_mode_batchnorm",
    "Batches",
    "collate",
    "bind",
    "logits_of",
    "call_model",
    "double_backward_hint",
    "default_split",
    "map_inputs",
    "slice_inputs",
    "cat_inputs",
    "input_size",
    "BatchLoss",
    "loss_scalar",
    "batch_value",
    "mean_loss",
    "model_dtype_device",
]


@contextlib.contextmanager
def eval_mode(model: nn.Module, mode: bool = False) -> Iterator[nn.Module]:
    """Temporarily set ``model.train(mode)``; restore every submodule's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        if any(flag != mode for _, flag in flags):  # the recursive train() is skipped when a no-op
            model.train(mode)
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def preserved(model: nn.Module, *, values: bool = False) -> Iterator[nn.Module]:
    """Snapshot and restore model state that code inside the block may touch.

    Restores ``.training`` of every submodule, ``requires_grad`` and ``.grad`` of every parameter
    and the contents of every buffer. With ``values=True`` parameter values are restored as well
    (use it only around code that must write into parameters, e.g. a third-party routine).
    """
    flags = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    req = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    grad_vals = [None if g is None else g.detach().clone() for g in grads]
    bufs = [(b, b.detach().clone()) for b in model.buffers()]
    vals = [p.detach().clone() for p in params] if values else None
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, saved in bufs:
                b.copy_(saved)
            for g, v in zip(grads, grad_vals):
                if g is not None:
                    g.copy_(v)  # backward accumulates into the same tensor in place
            if vals is not None:
                for p, v in zip(params, vals):
                    p.copy_(v)
        for p, r, g in zip(params, req, grads):
            p.requires_grad_(r)
            p.grad = g
        for m, flag in flags:
            m.training = flag


def parameters_of(
    model: nn.Module,
    *,
    include: Callable[[str, torch.Tensor], bool] | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Detached copies-by-reference of the model's named parameters, for ``functional_call``.

    The returned tensors share storage with the model but are detached, so autograd through them
    never writes ``.grad`` into the model. ``dtype`` casts (making copies).
    """
    out = {}
    for name, p in model.named_parameters():
        if include is not None and not include(name, p):
            continue
        t = p.detach()
        out[name] = t.to(dtype) if dtype is not None else t
    return out


def buffers_of(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Cloned named buffers (so running statistics in the model cannot be updated)."""
    out = {}
    for name, b in model.named_buffers():
        t = b.detach().clone()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t
    return out


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train_mode_batchnorm(model: nn.Module) -> list[str]:
    """Names of BatchNorm submodules that are in training mode."""
    return [
        n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of the model's first floating-point parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


# ----------------------------------------------------------------------------------------------
# data: batches of any shape, streamed to the model's device


def logits_of(output: Any) -> torch.Tensor:
    """The default ``output_fn``: the tensor of scores in what a model returned.

    * a tensor is returned as it is;
    * a mapping (a dict, or a Hugging Face ``ModelOutput``) gives its ``"logits"`` entry;
    * a tuple or list gives its first element (``(logits, aux)``, ``return_dict=False``).

    Anything else raises a ``TypeError`` that says to pass ``output_fn=`` to :func:`collate`.

    >>> import torch
    >>> logits_of({"logits": torch.ones(2, 3), "loss": torch.tensor(0.0)}).shape
    torch.Size([2, 3])
    >>> logits_of((torch.ones(2, 3), torch.zeros(2))).shape
    torch.Size([2, 3])
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if output.get("logits") is not None and isinstance(output["logits"], torch.Tensor):
            return output["logits"]
        raise TypeError(
            f"the model returned a {type(output).__name__} with keys {list(output)} and no tensor "
            "'logits'; pass `output_fn=` (e.g. output_fn=lambda out: out['scores']) to lossviz.data.collate"
        )
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(
        f"the model returned {type(output).__name__}, not a tensor, a tuple (logits, ...) or a "
        "dict/ModelOutput with 'logits'; pass `output_fn=` to lossviz.data.collate to say which tensor to use"
    )


def _tensors(inputs) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if isinstance(inputs, Mapping):
        return [v for v in inputs.values() if isinstance(v, torch.Tensor)]
    return [v for v in inputs if isinstance(v, torch.Tensor)]


def map_inputs(inputs, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Apply ``fn`` to every tensor of ``inputs`` (a tensor, a tuple of positional inputs or a dict)."""
    if isinstance(inputs, torch.Tensor):
        return fn(inputs)
    if isinstance(inputs, Mapping):
        return {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    return tuple(fn(v) if isinstance(v, torch.Tensor) else v for v in inputs)


def slice_inputs(inputs, start: int, stop: int):
    """Samples ``start:stop`` of every batched tensor of ``inputs``."""
    return map_inputs(inputs, lambda t: t[start:stop] if t.ndim else t)


def cat_inputs(parts: Sequence):
    """Concatenate a sequence of inputs of the same form along the batch dimension."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts))
    if isinstance(first, Mapping):
        return {
            k: torch.cat([p[k] for p in parts]) if isinstance(v, torch.Tensor) and v.ndim else v
            for k, v in first.items()
        }
    return tuple(
        torch.cat([p[i] for p in parts]) if isinstance(v, torch.Tensor) and v.ndim else v
        for i, v in enumerate(first)
    )


def cast(t: torch.Tensor, dtype: torch.dtype | None, device: torch.device | None) -> torch.Tensor:
    """``t`` on ``device``; floating tensors also in ``dtype`` (integers, e.g. token ids, never cast)."""
    if t.is_floating_point() and dtype is not None:
        return t.to(device=device, dtype=dtype)
    return t.to(device=device) if device is not None else t


def input_size(inputs) -> int:
    """The batch size of ``inputs`` (length of the first batched tensor)."""
    for t in _tensors(inputs):
        if t.ndim:
            return int(t.shape[0])
    raise ValueError("the inputs hold no tensor with a batch dimension")


def _describe(inputs) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"shape {tuple(inputs.shape)} ({inputs.dtype})"
    if isinstance(inputs, Mapping):
        return (
            "{"
            + ", ".join(f"{k!r}: {tuple(v.shape)}" for k, v in inputs.items() if isinstance(v, torch.Tensor))
            + "}"
        )
    return "(" + ", ".join(str(tuple(v.shape)) for v in inputs if isinstance(v, torch.Tensor)) + ")"


def default_split(batch, label_key: str = "labels"):
    """How a batch becomes ``(inputs, targets)`` by default.

    * ``(x, y)`` -> inputs ``x`` (a tensor, a tuple of tensors or a dict), targets ``y``;
    * ``(x1, ..., xk, y)`` with ``k >= 2`` -> positional inputs ``(x1, ..., xk)``, targets ``y``;
    * a dict (Hugging Face style, e.g. ``input_ids``, ``attention_mask``, ``labels``) -> the model
      is called as ``model(**inputs)`` with every entry but ``label_key``; targets are
      ``batch[label_key]`` (``None`` if absent);
    * an object with tensor attributes ``x`` and ``y`` (:class:`lossviz.data.Dataset`) -> ``(x, y)``.
    """
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k != label_key}
        return inputs, batch.get(label_key)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) > 2:
            return tuple(batch[:-1]), batch[-1]
        raise TypeError(
            f"a batch must be (inputs, targets), got a {type(batch).__name__} of length {len(batch)}"
        )
    if isinstance(getattr(batch, "x", None), torch.Tensor) and isinstance(
        getattr(batch, "y", None), torch.Tensor
    ):
        return batch.x, batch.y
    raise TypeError(
        f"a batch must be a tuple (inputs, targets) of tensors or a dict of tensors, got {type(batch).__name__}"
    )


def _is_batch(obj) -> bool:
    """Whether ``obj`` is one batch (not an iterable of batches)."""
    if isinstance(obj, torch.utils.data.DataLoader):  # even one whose class has .x/.y attributes
        return False
    if isinstance(obj, Mapping):  # a dict batch: tensors (other values are passed on as they are)
        return any(isinstance(v, torch.Tensor) for v in obj.values())
    if isinstance(obj, (tuple, list)) and len(obj) >= 2:
        first_ok = isinstance(obj[0], torch.Tensor) or (
            isinstance(obj[0], Mapping) and any(isinstance(v, torch.Tensor) for v in obj[0].values())
        )
        return first_ok and all(isinstance(t, torch.Tensor) for t in obj[1:])
    return isinstance(getattr(obj, "x", None), torch.Tensor) and isinstance(
        getattr(obj, "y", None), torch.Tensor
    )


RESIDENT_BYTES = 2**28  # resident="auto": in-memory data up to 256 MiB is moved to the device once


def _nbytes(pair) -> int:
    inputs, targets = pair
    ts = _tensors(inputs) + ([targets] if isinstance(targets, torch.Tensor) else [])
    return sum(t.numel() * t.element_size() for t in ts)


def _is_shape_error(exc: Exception) -> bool:
    msg = str(exc)
    keys = ("shape", "size", "Expected", "expected", "dimension", "channels", "mat1", "index out of range")
    return any(k in msg for k in keys)


def _input_expectation(model: nn.Module) -> str:
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            return f"its first Linear layer {name!r} expects {m.in_features} input features"
        if isinstance(m, nn.modules.conv._ConvNd):
            return f"its first convolution {name!r} expects {m.in_channels} input channels"
        if isinstance(m, nn.Embedding):
            return f"its first embedding {name!r} expects integer ids < {m.num_embeddings}"
    return "check the input shape"


def call_model(
    model: nn.Module,
    inputs,
    state: Mapping[str, torch.Tensor] | None = None,
    output_fn: Callable[[Any], torch.Tensor] | None = logits_of,
    name: str = "data",
):
    """``output_fn(model(inputs))``: ``model(x)``, ``model(*inputs)`` or ``model(**inputs)``.

    ``state`` (parameters and buffers by name) calls the model functionally
    (``torch.func.functional_call``) instead of with its own tensors. ``output_fn=None`` returns
    the raw output. An input shape the model cannot take (torch's matmul/convolution shape
    error, or an embedding index out of range) is re-raised as a ``ValueError`` naming ``name``.
    """
    if isinstance(inputs, torch.Tensor):
        args, kwargs = (inputs,), {}
    elif isinstance(inputs, Mapping):
        args, kwargs = (), dict(inputs)
    else:
        args, kwargs = tuple(inputs), {}
    try:
        if state is None:
            out = model(*args, **kwargs)
        else:
            out = torch.func.functional_call(model, state, args, kwargs)
    except (RuntimeError, IndexError) as exc:
        if _is_shape_error(exc) and "vmap" not in str(exc):
            raise ValueError(
                f"`{name}`: the model cannot be applied to inputs of {_describe(inputs)}: "
                f"{_input_expectation(model)} (torch: {str(exc).splitlines()[0]})"
            ) from exc
        raise
    return out if output_fn is None else output_fn(out)


def double_backward_hint(exc: BaseException) -> str | None:
    """A message for torch's error when an op has no second derivative (or no vmap rule), else None.

    Hugging Face models default to ``attn_implementation="sdpa"``, whose CPU kernel has no double
    backward (Hessian products) and no batching rule for per-sample Jacobians. The message says to
    build the model with ``attn_implementation="eager"``.
    """
    msg = str(exc)
    sdpa = "scaled_dot_product" in msg or "attention" in msg
    missing = "not implemented" in msg or "Batching rule" in msg or "vmap" in msg
    if not (sdpa and missing):
        return None
    return (
        "the model's attention kernel (scaled_dot_product_attention) has no second derivative / "
        "batching rule on this device, so Hessian products and per-sample Jacobians fail; build "
        'the model with attn_implementation="eager" (e.g. GPT2LMHeadModel(config) with '
        'GPT2Config(..., attn_implementation="eager"), or from_pretrained(..., '
        'attn_implementation="eager")). torch said: ' + msg.splitlines()[0]
    )


class Batches:
    """Data as batches ``(inputs, targets)`` with sample weights, moved to the model one at a time.

    Made by :func:`collate` (see there for the accepted forms and the options). ``inputs`` is a
    tensor, a tuple of positional tensors or a dict of keyword tensors; ``targets`` a tensor (or
    ``None``). ``weights[i] = n_i / N``: a mean loss over the data set is
    ``sum_i weights[i] * mean_loss(batch i)``, whatever the batch sizes.

    In-memory data keep the batches as given (:attr:`batches`); a ``DataLoader`` (or any
    re-iterable) is iterated anew on every pass and never held in memory as a whole (its
    ``sizes`` are counted on the first pass that needs them). :meth:`on` binds the batches to a
    model's dtype and device; :meth:`stream` then yields them there one at a time.
    """

    def __init__(
        self,
        batches: Sequence[tuple[Any, Any]] | None = None,
        sizes: Sequence[int] | None = None,
        *,
        loader: Iterable | None = None,
        split: Callable[[Any], tuple[Any, Any]] | None = None,
        output_fn: Callable[[Any], torch.Tensor] | None = logits_of,
        resident: bool | str = "auto",
        name: str = "data",
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ):
        self._batches = None if batches is None else tuple(batches)
        self._sizes = None if sizes is None else tuple(int(s) for s in sizes)
        self.loader = loader
        self.split = split
        self.output_fn = output_fn
        self.resident = resident
        self.name = name
        self.dtype = dtype
        self.device = device
        self._placed: tuple | None = None  # the batches on (dtype, device) when resident

    # -- shape of the data -------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        """True for a loader (re-iterated every pass), False for batches held in memory."""
        return self._batches is None

    @property
    def batches(self) -> tuple[tuple[Any, Any], ...]:
        """All batches ``(inputs, targets)`` as given (a loader is iterated once, in host memory)."""
        if self._batches is None:
            return tuple((x, y) for x, y, _ in self._iter_source())
        return self._batches

    @property
    def sizes(self) -> tuple[int, ...]:
        if self._sizes is None:  # a loader: one counting pass
            self._sizes = tuple(input_size(x) for x, _, _ in self._iter_source())
            if not self._sizes:
                raise ValueError(f"`{self.name}` is empty: no batches")
        return self._sizes

    @property
    def total(self) -> int:
        return sum(self.sizes)

    @property
    def weights(self) -> tuple[float, ...]:
        t = self.total
        return tuple(s / t for s in self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self):
        return iter(self.batches)

    def __repr__(self) -> str:
        kind = "streamed from a loader" if self.streaming else "in memory"
        return f"Batches({len(self)} batches, {self.total} samples, {kind}, resident={self.resident!r})"

    # -- iteration ---------------------------------------------------------------------------
    def _checked(self, raw, i):
        split = self.split or default_split
        try:
            pair = split(raw)
        except TypeError as exc:
            raise TypeError(f"`{self.name}` batch {i}: {exc}") from None
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                f"`{self.name}`: `split` must return (inputs, targets), got {type(pair).__name__}"
            )
        inputs, targets = pair
        return _check_pair(inputs, targets, self.name, i)

    def _iter_source(self):
        """(inputs, targets, n) in source form (host side), checked."""
        if self._batches is not None:
            for (x, y), n in zip(self._batches, self._sizes):
                yield x, y, n
            return
        seen = []
        for i, raw in enumerate(self.loader):
            x, y, n = self._checked(raw, i)
            seen.append(n)
            yield x, y, n
        if not seen:
            raise ValueError(f"`{self.name}` is empty: no batches")
        if self._sizes is None:
            self._sizes = tuple(seen)

    def _move(self, x, y):
        dt, dev = self.dtype, self.device
        x = map_inputs(x, lambda t: cast(t, dt, dev))
        if isinstance(y, torch.Tensor):
            y = cast(y, dt, dev)
        return x, y

    def _keep_resident(self) -> bool:
        if self.resident is True:
            return True
        if self.resident is False or self.streaming:
            return False
        return sum(_nbytes(b) for b in self._batches) <= RESIDENT_BYTES

    def stream(self, weights: bool = True) -> Iterator[tuple[Any, Any, float]]:
        """Yield ``(inputs, targets, w)`` on the bound dtype/device, one batch at a time.

        ``w`` is the sample weight ``n_b / N`` (with ``weights=False``: the batch size ``n_b``,
        and a loader is not counted first). Resident batches (see :func:`collate`) are moved once
        and reused; streamed ones are moved as they come and released after use.
        """
        if self._placed is not None:
            ws = self.weights if weights else self.sizes
            for (x, y), w in zip(self._placed, ws):
                yield x, y, w
            return
        if weights:
            ws = self.weights
            for (x, y, _), w in zip(self._iter_source(), ws):
                yield (*self._move(x, y), w)
        else:
            for x, y, n in self._iter_source():
                yield (*self._move(x, y), n)

    def on(self, model: nn.Module | None = None, *, dtype: torch.dtype | None = None, device=None) -> Batches:
        """These batches bound to ``model``'s floating dtype and device (or the ones given).

        Floating inputs and targets are cast to that dtype (integer ones, e.g. token ids and
        labels, keep theirs); with residency (``resident=True``, or ``"auto"`` for in-memory
        data up to 256 MiB) they are moved once, else per batch in :meth:`stream`.
        """
        if model is not None:
            mdt, mdev = model_dtype_device(model)
            dtype = dtype or mdt
            device = device or mdev
        out = Batches(
            self._batches,
            self._sizes,
            loader=self.loader,
            split=self.split,
            output_fn=self.output_fn,
            resident=self.resident,
            name=self.name,
            dtype=dtype,
            device=device,
        )
        if out._keep_resident():
            placed = tuple(out._move(x, y) for x, y, _ in out._iter_source())
            out._batches = out._batches if out._batches is not None else placed
            out._placed = placed
        return out

    def forward(self, model: nn.Module, inputs, state=None):
        """``output_fn(model(inputs))`` (:func:`call_model` with this data's ``output_fn`` and name)."""
        return call_model(model, inputs, state, self.output_fn, self.name)

    # -- legacy helpers ----------------------------------------------------------------------
    def cat(self) -> tuple[Any, Any]:
        """All batches concatenated into one ``(inputs, targets)`` pair, on the bound dtype/device."""
        pairs = [(x, y) for x, y, _ in self.stream(weights=False)]
        if len(pairs) == 1:
            return pairs[0]
        ys = [p[1] for p in pairs]
        return cat_inputs([p[0] for p in pairs]), (None if ys[0] is None else torch.cat(ys))


def _check_pair(inputs, targets, name: str, i: int):
    if isinstance(inputs, Mapping):
        tensors = [
            (f"{name} inputs[{k!r}] (batch {i})", v) for k, v in inputs.items() if isinstance(v, torch.Tensor)
        ]
    elif isinstance(inputs, (tuple, list)):
        if not all(isinstance(t, torch.Tensor) for t in inputs):
            raise TypeError(
                f"`{name}` batch {i}: the inputs must be tensors, got {[type(t).__name__ for t in inputs]}"
            )
        tensors = [(f"{name} inputs[{k}] (batch {i})", v) for k, v in enumerate(inputs)]
        inputs = tuple(inputs)
    else:
        if not isinstance(inputs, torch.Tensor):
            try:
                inputs = check_tensor(inputs, f"{name} inputs (batch {i})")
            except TypeError:
                raise TypeError(
                    f"`{name}` batch {i} must be a pair (inputs, targets) of tensors, got inputs of type "
                    f"{type(inputs).__name__}"
                ) from None
        tensors = [(f"{name} inputs (batch {i})", inputs)]
    if not tensors:
        raise TypeError(f"`{name}` batch {i}: the inputs hold no tensor")
    n = None
    for label, t in tensors:
        check_tensor(t, label, nonempty=True)
        if t.ndim == 0:
            raise ValueError(f"`{name}` batch {i}: inputs and targets need a batch dimension")
        if n is None:
            n = int(t.shape[0])
        elif t.shape[0] != n:
            raise ValueError(
                f"`{name}` batch {i}: input tensors of different batch sizes ({n} and {t.shape[0]})"
            )
    if targets is not None:
        if not isinstance(targets, torch.Tensor):
            try:
                targets = check_tensor(targets, f"{name} targets (batch {i})", nonempty=False)
            except TypeError:
                raise TypeError(
                    f"`{name}` batch {i} must be a pair (inputs, targets) of tensors, got targets of type "
                    f"{type(targets).__name__}"
                ) from None
        check_tensor(targets, f"{name} targets (batch {i})", nonempty=False)
        if targets.ndim == 0:
            raise ValueError(f"`{name}` batch {i}: inputs and targets need a batch dimension")
        if targets.shape[0] != n:
            raise ValueError(f"`{name}` batch {i}: {n} inputs but {targets.shape[0]} targets")
    return inputs, targets, n


def collate(
    data,
    name: str = "data",
    *,
    split: Callable[[Any], tuple[Any, Any]] | None = None,
    output_fn: Callable[[Any], torch.Tensor] | None = logits_of,
    label_key: str = "labels",
    resident: bool | str = "auto",
) -> Batches:
    """Turn data of any common form into :class:`Batches` (what every lossviz family takes).

    Pass the result wherever a lossviz function takes ``data``, to choose the options below;
    plain data gets the defaults, which cover the common cases without code.

    Parameters
    ----------
    data
        One batch or an iterable of batches. A batch is ``(inputs, targets)`` with ``inputs`` a
        tensor, a tuple of tensors (positional) or a dict of tensors (``model(**inputs)``);
        ``(x1, ..., xk, y)`` (positional inputs, targets last); a dict of tensors in the Hugging
        Face style (``model(**batch)`` without ``label_key``, targets ``batch[label_key]``); or a
        :class:`lossviz.data.Dataset`. An iterable of batches may be a list, a generator
        (collected once, in host memory) or a ``torch.utils.data.DataLoader`` (any
        re-iterable): iterated anew on every pass, one batch on the device at a time, never
        materialised (its data set must give the same samples on every pass: no random
        augmentation for curvature estimates).
    name : str
        The argument name used in error messages (default ``"data"``).
    split : callable(batch) -> (inputs, targets), optional
        How a raw batch becomes inputs and targets (default :func:`default_split`).
    output_fn : callable(model output) -> tensor, optional
        How the model's output becomes the tensor losses and metrics see (default
        :func:`logits_of`: a tensor as it is, a tuple's first element, a dict's/``ModelOutput``'s
        ``"logits"``). ``None`` passes the raw output on.
    label_key : str
        The targets' key in dict batches (default ``"labels"``).
    resident : ``"auto"`` | True | False
        Keep the batches on the model's device after the first move (fast for repeated passes:
        grids, Hessian products) or move them one at a time on every pass (bounded device
        memory). ``"auto"`` (default): resident for in-memory data up to 256 MiB, streamed for a
        loader and for larger data.

    Raises ``ValueError`` for empty data, inputs/targets of different lengths or non-finite
    floating inputs; ``TypeError`` for anything that is not tensors. For a loader the checks run
    as its batches arrive.

    For an objective that is not ``loss_fn(logits, targets)`` (the model's own loss, two views,
    regularisers), pass ``loss_fn=lossviz.train.batch_loss(fn)`` with ``fn(model, (inputs,
    targets)) -> scalar`` to any lossviz function: it gets each batch after ``split``, on the
    model's device, and calls the model itself, e.g. ``batch_loss(lambda m, b: m(**b[0],
    labels=b[1]).loss)`` for a Hugging Face model.

    Examples
    --------
    >>> import torch
    >>> from lossviz.data import collate
    >>> x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    >>> collate([(x[:6], y[:6]), (x[6:], y[6:])]).weights
    (0.6, 0.4)
    >>> ids = torch.randint(0, 50, (4, 7))
    >>> b = collate({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})
    >>> inputs, targets = b.batches[0]
    >>> sorted(inputs), targets.shape
    (['attention_mask', 'input_ids'], torch.Size([4, 7]))
    """
    if isinstance(data, Batches):
        return data
    if resident not in ("auto", True, False):
        raise ValueError(f"`resident` must be 'auto', True or False, got {resident!r}")
    if split is not None and not callable(split):
        raise TypeError(f"`split` must be callable(batch) -> (inputs, targets), got {type(split).__name__}")
    if output_fn is not None and not callable(output_fn):
        raise TypeError(f"`output_fn` must be callable(output) -> tensor, got {type(output_fn).__name__}")
    if not isinstance(label_key, str):
        raise TypeError(f"`label_key` must be a str, got {type(label_key).__name__}")
    splitter = split or (lambda b: default_split(b, label_key))
    opts = dict(split=splitter, output_fn=output_fn, resident=resident, name=name)
    if split is None and _is_batch(data):
        items = [data]
    elif (
        split is not None
        and not isinstance(data, (list, tuple))
        and not _is_reiterable(data)
        and not _is_iterator(data)
    ):
        items = [data]  # one batch of a custom form
    elif (
        isinstance(data, (torch.Tensor, str, bytes))
        or not isinstance(data, Iterable)
        or (isinstance(data, Mapping) and split is None)
    ):
        raise TypeError(
            f"`{name}` must be a tuple (inputs, targets) of tensors, a dict of tensors or an iterable "
            f"(list, DataLoader) of such batches, got {type(data).__name__}"
        )
    elif _is_reiterable(data) and not isinstance(data, (list, tuple)):
        return Batches(loader=data, **opts)
    else:
        items = list(data)  # a list of batches, or a one-shot iterator collected once
    if not items:
        raise ValueError(f"`{name}` is empty: no batches")
    pairs, sizes = [], []
    tmp = Batches(**opts)
    for i, raw in enumerate(items):
        x, y, n = tmp._checked(raw, i)
        pairs.append((x, y))
        sizes.append(n)
    return Batches(pairs, sizes, **opts)


def _is_iterator(obj) -> bool:
    return isinstance(obj, Iterator)


def _is_reiterable(obj) -> bool:
    """A DataLoader or any iterable that gives a fresh iterator each time (not a generator)."""
    if isinstance(obj, torch.utils.data.DataLoader):
        return True
    return isinstance(obj, Iterable) and not isinstance(obj, (Iterator, Mapping, torch.Tensor, str, bytes))


def bind(data, model: nn.Module, name: str = "data", *, dtype: torch.dtype | None = None) -> Batches:
    """:func:`collate` ``data`` and bind it to ``model``'s dtype (or ``dtype``) and device."""
    return collate(data, name).on(model, dtype=dtype)


class BatchLoss:
    """A loss that sees the model and the whole batch: ``fn(model, (inputs, targets)) -> scalar``.

    Made by :func:`lossviz.train.batch_loss`. Use it for objectives that are not
    ``loss_fn(outputs, targets)``: two views of each sample (contrastive), per-sample temperatures
    looked up by sample index, regularised or physics-informed losses, or a Hugging Face model's
    own loss (``batch_loss(lambda m, b: m(**b[0], labels=b[1]).loss)``). ``inputs`` and
    ``targets`` are the batch after ``split`` (see :func:`collate`), on the model's device; the
    model is called by ``fn`` itself, so ``output_fn`` does not apply.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[nn.Module, tuple[Any, Any]], torch.Tensor]):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable(model, batch) -> scalar, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        return self.fn(model, batch)

    def __repr__(self) -> str:
        return f"BatchLoss({getattr(self.fn, '__name__', repr(self.fn))})"


def loss_scalar(value, name: str = "loss_fn") -> torch.Tensor:
    """The one scalar check: ``value`` as a 0-dim tensor, or a ``ValueError`` naming ``name``."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(
            f"`{name}` must return a scalar tensor (a mean over the batch), got "
            + (f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__)
        )
    return value.reshape(())


def batch_value(
    model: nn.Module,
    loss_fn,
    x,
    y,
    state=None,
    output_fn: Callable[[Any], torch.Tensor] | None = logits_of,
    name: str = "data",
) -> torch.Tensor:
    """``loss_fn`` on one batch, as a checked scalar.

    ``state`` (parameters and buffers by name) evaluates the model functionally instead of with
    its own tensors; the model itself is never changed. ``loss_fn(output_fn(model(x)), y)``, or
    ``fn(model, (x, y))`` for a :class:`BatchLoss`.
    """
    if isinstance(loss_fn, BatchLoss):
        if state is None:
            return loss_scalar(loss_fn(model, (x, y)))
        with torch.nn.utils.stateless._reparametrize_module(model, state):
            return loss_scalar(loss_fn(model, (x, y)))
    out = call_model(model, x, state, output_fn, name)
    return loss_scalar(loss_fn(out, y))


def mean_loss(
    model: nn.Module,
    loss_fn,
    batches: Batches,
    params: Mapping[str, torch.Tensor] | None = None,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""The one loss evaluator: the sample-weighted mean of ``loss_fn`` over ``batches``.

    .. math:: L = \sum_b \frac{n_b}{N}\, \ell_b, \qquad \ell_b = \text{loss\_fn}(f(x_b), y_b)

    so the result equals the loss on all data at once whatever the batch sizes (for mean
    reductions). ``loss_fn(outputs, targets)`` must return a scalar mean over the batch (checked);
    a :class:`BatchLoss` is called as ``fn(model, (x, y))``. With ``params`` the model is evaluated
    functionally with those tensors (and ``buffers``, default its own); without, with its own.
    Batches are streamed to the device they are bound to (:meth:`Batches.on`). The model must
    already be in the mode wanted (see :func:`eval_mode`).
    """
    batches = collate(batches)
    state = None
    if params is not None:
        state = dict(params)
        state.update(buffers_of(model) if buffers is None else buffers)
    total = None
    single = len(batches) == 1
    for x, y, w in batches.stream():
        loss = batch_value(model, loss_fn, x, y, state, batches.output_fn, batches.name)
        if not single:
            loss = loss * w
        total = loss if total is None else total + loss
    return total


def check_model_and_loss(model, loss_fn, *, name: str = "model") -> None:
    """``model`` an ``nn.Module`` with finite parameters and ``loss_fn`` callable (else a clear error)."""
    check_module(model, name)
    check_finite_parameters(model, name)
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable loss_fn(outputs, targets), got {type(loss_fn).__name__}")
