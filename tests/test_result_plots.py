"""Every result with a natural picture has ``.plot(backend=..., ax=None)`` (ARCHITECTURE.md).

Each ``Result`` subclass of the families is classified here: either the plotting function its
``.plot`` delegates to, or the reason it has no picture. A new result class fails this test until
it is classified, so a drawable result cannot ship without ``.plot``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import lossviz
from lossviz._result import Result

PICTURES = {
    "AnalyticNTK": "plot_kernel",
    "BatchEigenvalues": "plot_batch_eigenvalues",
    "BoxCounting": "plot_box_counting",
    "CompSumBound": "plot_comp_sum_bounds",
    "EigenResult": "plot_eigenvalues",
    "EmpiricalNTK": "plot_kernel",
    "ImbalancedFrame": "plot_imbalanced_frame",
    "Interpolation": "plot_interpolation",
    "KernelSpectrum": "plot_kernel_spectrum",
    "Line": "plot_line",
    "LocalEntropy": "plot_local_entropy",
    "LRRangeTest": "plot_lr_range_test",
    "LossSurface": "plot_loss_surface",
    "MarginCurves": "plot_margin_curves",
    "MinorityCollapse": "plot_angles",
    "NCMetrics": "plot_gram",
    "PenaltyDistribution": "plot_penalty_distribution",
    "Plane": "plot_plane",
    "RidgePath": "plot_ridge_path",
    "SelfDistillation": "plot_self_distillation",
    "SharpnessHistory": "plot_sharpness",
    "SnapshotResult": "plot_snapshots",
    "SpectralDensity": "plot_density",
    "Trainability": "plot_trainability",
    "Trajectory": "plot_trajectory",
    "UFMResult": "plot_frame",
    "WeightMatching": "plot_weight_matching",
}

NO_PICTURE = {
    "ClassStatistics": "sufficient statistics (counts, means, scatter) that NC metrics are computed from",
    "Directions": "direction vectors in parameter space; drawn through the Line/Plane they span",
    "ExactHessian": "a dense matrix; its spectrum is drawn through an EigenResult or SpectralDensity",
    "GradientFlow": "predictions over time; a loss curve needs the targets, which it does not hold",
    "KernelRegression": "coefficients and predictions of one fit",
    "LanczosResult": "the tridiagonal factorisation, an intermediate of eigen/density estimates",
    "Mixup": "a mixed batch (inputs and targets), not a measurement",
    "SlopeFit": "four numbers (slope, intercept, r2, n)",
    "SoftmaxCollapse": "a fraction and per-sample flags at one state; notebooks draw it over training",
    "SphericalStats": "the sufficient statistics of the spherical (Z-loss) path",
    "TraceResult": "one estimate with its standard error",
    "VCIResult": "one index with its rank diagnostics",
}


def _family_results() -> dict[str, type]:
    for mod in pkgutil.walk_packages(lossviz.__path__, "lossviz."):
        if not mod.name.startswith("lossviz.papers"):
            importlib.import_module(mod.name)
    found: dict[str, type] = {}
    todo = list(Result.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if not cls.__module__.startswith("lossviz.papers") and cls.__module__.startswith("lossviz."):
            found[cls.__name__] = cls
    return found


RESULTS = _family_results()


def test_every_family_result_is_classified():
    unclassified = sorted(set(RESULTS) - set(PICTURES) - set(NO_PICTURE))
    assert not unclassified, f"classify these results in {__name__}: {unclassified}"
    assert not set(PICTURES) & set(NO_PICTURE)
    stale = sorted((set(PICTURES) | set(NO_PICTURE)) - set(RESULTS))
    assert not stale, f"no longer results: {stale}"


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_a_result_with_a_picture_has_plot_delegating_to_its_plotting_function(name):
    cls = RESULTS[name]
    assert "plot" in cls.__dict__, f"{name} has a picture ({PICTURES[name]}) but no .plot"
    sig = inspect.signature(cls.plot)
    assert list(sig.parameters)[:3] == ["self", "backend", "ax"], sig
    assert sig.parameters["backend"].default == "plotly" and sig.parameters["ax"].default is None
    family = cls.__module__.split(".")[1]
    plotting = importlib.import_module(f"lossviz.{family}.plotting")
    assert callable(getattr(plotting, PICTURES[name], None)), f"{family}.plotting has no {PICTURES[name]}"
    assert PICTURES[name] in inspect.getsource(cls.plot), f"{name}.plot does not call {PICTURES[name]}"


@pytest.mark.parametrize("name", sorted(NO_PICTURE))
def test_a_result_without_a_picture_has_no_plot(name):
    assert "plot" not in RESULTS[name].__dict__, f"{name} has .plot: move it to PICTURES"
