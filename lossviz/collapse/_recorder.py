"""A training callback that records neural-collapse metrics and class means during :func:`fit`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .._validate import check_choice, check_tensor
from ..train import Callback, History
from ._checks import F64, GLOBAL_MEANS
from ._features import feature_extractor, resolve_layer
from ._metrics import nc_metrics

__all__ = ["CollapseRecorder"]


class CollapseRecorder(Callback):
    """Training callback (for :func:`lossviz.train.fit`) recording NC metrics and class means.

    A :class:`lossviz.train.Callback`: it records at step 0, at every multiple of ``every``, at
    the steps in ``at`` and at the final step (``final=True``), never twice for one step; so a
    7-step fit with ``every=5`` records steps ``[0, 5, 7]``. Features are read with
    :func:`feature_extractor` (the input of ``layer`` by default, i.e. the penultimate features
    when ``layer`` is the classifier), which leaves the model unchanged; the classifier is the
    submodule named ``classifier`` (an ``nn.Linear``) or ``None``. Metrics go to
    ``self.history`` (name -> list, one entry per recorded step in ``self.steps``) and, if the
    training loop passes one, the training ``History`` under ``"nc/<name>"``; class means (and
    classifier weights, float64) are kept in ``self.means`` / ``self.classifiers`` when
    ``keep_means``.

    Parameters
    ----------
    x, y : the inputs and integer labels on which the metrics are computed.
    layer : submodule name or module whose input (``capture="input"``) or output is read.
    classifier : name of the ``nn.Linear`` classifier, or ``None``.
    every, at, final : when to record (see :class:`lossviz.train.Callback`).
    capture : ``"input"`` or ``"output"`` of ``layer``.
    global_mean : ``"unweighted"`` or ``"weighted"`` (see :mod:`lossviz.collapse`).
    keep_means : keep the class means and classifier weights of every recorded step.
    pool : None | ``"mean"`` | ``"last"`` | ``"flatten"`` | ``"none"``
        How features with more than two dimensions (tokens, convolution maps) become one row per
        sample, as in :func:`lossviz.collapse.features` (default ``None``: 2-D features only).

    Examples
    --------
    >>> import torch
    >>> from lossviz import models, train
    >>> x, y = torch.randn(30, 4), torch.arange(3).repeat(10)
    >>> rec = CollapseRecorder(x, y, every=5)
    >>> _ = train.fit(models.MLP(4, (8,), 3, seed=0), torch.nn.functional.cross_entropy, (x, y),
    ...               steps=7, callbacks=[rec], progress=False)
    >>> rec.steps
    [0, 5, 7]
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        layer: str | nn.Module = "head",
        classifier: str | None = "head",
        every: int | None = 1,
        at: Iterable[int] | None = None,
        *,
        final: bool = True,
        capture: str = "input",
        global_mean: str = "unweighted",
        keep_means: bool = True,
        pool: str | None = None,
    ):
        super().__init__(every, at=at, final=final)
        self.x = check_tensor(x, "x")
        self.y = check_tensor(y, "y", ndim=1, floating=False)
        if self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"`x` has {self.x.shape[0]} rows but `y` has {self.y.shape[0]} labels")
        self.layer = layer
        self.classifier = classifier
        self.capture = check_choice(capture, "capture", ("input", "output"))
        self.global_mean = check_choice(global_mean, "global_mean", GLOBAL_MEANS)
        self.keep_means = bool(keep_means)
        self.pool = None if pool is None else check_choice(pool, "pool", ("mean", "last", "flatten", "none"))
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.means: list[torch.Tensor] = []
        self.classifiers: list[torch.Tensor] = []

    def on_step(self, step: int, model: nn.Module, loss: float | None, history: History | None):
        feats = feature_extractor(model, self.layer, capture=self.capture, pool=self.pool)(self.x)
        clf = None
        if self.classifier is not None:
            clf = resolve_layer(model, self.classifier)
            if not isinstance(clf, nn.Linear):
                raise TypeError(f"`classifier`={self.classifier!r} must name an nn.Linear")
        m = nc_metrics(feats, self.y, clf, global_mean=self.global_mean)
        self.steps.append(step)
        for name, value in m.scalars().items():
            self.history.setdefault(name, []).append(value)
            if history is not None:
                history.record(f"nc/{name}", step, value)
        if self.keep_means:
            self.means.append(m.means.clone())
            if clf is not None:
                self.classifiers.append(clf.weight.detach().to(F64).clone())
        return None

    def result(self) -> dict[str, list[float]]:
        """The recorded metrics, name -> list over ``self.steps``."""
        return {k: list(v) for k, v in self.history.items()}

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """The recorded metrics over training (see :func:`plotting.plot_metrics`)."""
        from .plotting import plot_metrics

        return plot_metrics(self, backend=backend, ax=ax, **kw)
