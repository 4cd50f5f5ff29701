r"""Metrics evaluated beside the loss at every landscape point, and the evaluator that uses them.

A metric is ``metric(outputs, targets) -> scalar`` on one batch, averaged over batches with the
same sample weights as the loss (:func:`lossviz._model.mean_loss`):

.. math:: M = \sum_b \frac{n_b}{N}\, m(f(x_b), y_b).

Pass metrics as ``metrics={"accuracy": accuracy_metric}`` to :func:`~lossviz.landscape.line`,
:func:`~lossviz.landscape.plane` or :func:`~lossviz.landscape.interpolate`; they are computed on
the same forward pass as the loss. (:func:`lossviz.train.accuracy` is a different thing: a
``Recorder`` metric ``accuracy(x, y)(model) -> float`` for training curves.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from .._model import Batches, BatchLoss, buffers_of, loss_scalar, mean_loss

__all__ = ["accuracy_metric", "check_metrics", "evaluate"]

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


def accuracy_metric(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Classification accuracy of one batch: argmax of the logits, or the sign of a single output.

    For one output per sample the prediction is ``outputs > 0`` and floating targets count as
    positive when ``> 0`` (so +-1 and 0/1 labels both work).

    Examples
    --------
    >>> import torch
    >>> from lossviz import landscape
    >>> float(landscape.accuracy_metric(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])))
    0.5
    """
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        pred = (outputs.reshape(-1) > 0).to(targets.dtype)
        if targets.is_floating_point():  # +-1 or 0/1 targets
            t = (targets.reshape(-1) > 0).to(targets.dtype)
            return (pred == t).double().mean()
        return (pred == targets.reshape(-1)).double().mean()
    return (outputs.argmax(-1) == targets).double().mean()


def check_metrics(metrics, loss_fn=None) -> dict[str, MetricFn]:
    """``metrics`` as a dict name -> callable(outputs, targets) (``{}`` for ``None``), or an error."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"`metrics` must be a dict name -> callable(outputs, targets), got {type(metrics).__name__}"
        )
    for k, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"`metrics[{k!r}]` must be callable(outputs, targets)")
    if metrics and isinstance(loss_fn, BatchLoss):
        raise TypeError(
            "`metrics` need the model's outputs, but `loss_fn` is a batch_loss(model, batch); "
            "pass metrics=None or a loss_fn(outputs, targets)"
        )
    return dict(metrics)


def _metric_scalar(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value, dtype=torch.float64, device="cpu")
    return loss_scalar(value, name).to(torch.float64)


def evaluate(module, loss_fn, batches: Batches, metrics: Mapping[str, MetricFn], params=None, buffers=None):
    """Sample-weighted mean loss and metrics over ``batches`` (no grad handling here).

    Without metrics this is exactly :func:`lossviz._model.mean_loss`. With metrics, each batch is
    forwarded once and both the loss (checked by :func:`lossviz._model.loss_scalar`) and every
    metric are taken from the same outputs. ``params``/``buffers`` evaluate functionally, as in
    ``mean_loss``.
    """
    if not metrics:
        return mean_loss(module, loss_fn, batches, params, buffers), {}
    state = None
    if params is not None:
        state = dict(params)
        state.update(buffers_of(module) if buffers is None else buffers)
    loss = None
    vals: dict[str, torch.Tensor] = {}
    for x, y, w in batches.stream():
        out = batches.forward(module, x, state)
        value = loss_scalar(loss_fn(out, y)) * w
        loss = value if loss is None else loss + value
        for k, fn in metrics.items():
            m = _metric_scalar(fn(out, y), f"metrics[{k!r}]") * w
            vals[k] = m if k not in vals else vals[k] + m
    return loss, vals
