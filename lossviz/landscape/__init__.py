"""Loss landscapes: directions, lines, planes, interpolation, weight matching, trajectories and
trainability maps.

Every compute function returns a frozen result (arrays + settings + diagnostics) and leaves the
user's model exactly as it was; results with a picture have ``.plot(backend=..., ax=None, **kw)``
and the drawing functions (:mod:`lossviz.landscape.plotting`) take results and return figures.

Conventions (CONTRIBUTING.md): Gaussian directions, filter-normalised by default, with
biases and normalisation-layer parameters fixed (``ignore=("bias", "norm")``); grid coordinates
returned as explicit arrays with ``indexing="ij"``; the original model is the grid point (0, 0) and
is evaluated; interpolation includes both end points. Losses at every point come from the one
evaluator :func:`lossviz._model.mean_loss` (sample-weighted over batches).

Modules (private; use the names below):

* ``_directions`` random filter-normalised directions (Li et al. 2018);
* ``_grid`` lines and planes on a grid (Li et al. 2018); ``_metrics`` metrics beside the loss;
* ``_interpolate`` the straight path between two models and its barrier (Frankle et al. 2020);
* ``_trajectory`` optimiser paths projected on PCA or given directions;
* ``_matching`` permutation specs (MLPs, plain conv nets, ResNets with BatchNorm) and weight
  matching (Ainsworth, Hayase & Srinivasa 2023, Git Re-Basin); ``reset_bn`` (in ``_interpolate``)
  recomputes BatchNorm statistics of a merged model;
* ``_local_entropy`` the local entropy (smoothed energy) of Entropy-SGD by exact quadrature
  (Chaudhari et al. 2017);
* ``_max_lr`` the maximal initial learning rate by bracket-and-bisect over fresh copies of a
  model (``max_trainable_lr``; Iyer, Hanin & Rolnick 2023);
* ``_trainability`` batched trainability maps and box counting (Sohl-Dickstein 2024);
* ``_export`` planes and trajectories as VTK files for ParaView (``to_vtk``; every result also
  saves to ``.npz`` or HDF5 with ``Result.save``).

The large-step logistic-regression set-up of notebook L01 (Tyurin 2025) moved to
:mod:`lossviz.papers.l01_large_step_logistic`; its old names here still work for one release
(with a ``DeprecationWarning``), as does ``accuracy`` (now :func:`accuracy_metric`).

>>> import torch
>>> from lossviz import landscape
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
>>> x, y = torch.randn(64, 2), torch.randn(64, 1)
>>> res = landscape.plane(net, torch.nn.functional.mse_loss, (x, y), steps=11)
>>> fig = landscape.plot_plane(res, kind="contour")
"""

from .._deprecate import moved
from ._directions import Directions, as_directions, random_directions
from ._export import to_vtk
from ._grid import Line, Plane, cpu_workers, grid_axis, line, plane
from ._interpolate import Interpolation, interpolate, reset_bn
from ._local_entropy import LocalEntropy, gibbs_moments, local_entropy, local_entropy_descent
from ._lr_range import LRRangeTest, lr_range_test
from ._matching import (
    PermutationSpec,
    WeightMatching,
    conv_spec,
    infer_spec,
    mlp_spec,
    parameter_distance,
    permute,
    permute_mlp,
    random_permutations,
    resnet_spec,
    subspace_overlap,
    weight_matching,
)
from ._max_lr import MaxLRSearch, max_trainable_lr
from ._metrics import accuracy_metric
from ._trainability import (
    BoxCounting,
    Trainability,
    boundary_mask,
    box_counting_dimension,
    mean_field_loss,
    mean_field_problem,
    trainability,
)
from ._trajectory import Trajectory, trajectory
from .plotting import (
    plot_box_counting,
    plot_interpolation,
    plot_line,
    plot_local_entropy,
    plot_lr_range_test,
    plot_plane,
    plot_trainability,
    plot_trajectory,
    plot_weight_matching,
)

__all__ = [
    "to_vtk",
    "Directions",
    "random_directions",
    "as_directions",
    "Line",
    "Plane",
    "Interpolation",
    "Trajectory",
    "line",
    "plane",
    "interpolate",
    "reset_bn",
    "trajectory",
    "accuracy_metric",
    "grid_axis",
    "cpu_workers",
    "WeightMatching",
    "weight_matching",
    "PermutationSpec",
    "mlp_spec",
    "conv_spec",
    "resnet_spec",
    "infer_spec",
    "random_permutations",
    "permute",
    "permute_mlp",
    "parameter_distance",
    "subspace_overlap",
    "plot_plane",
    "plot_line",
    "plot_interpolation",
    "plot_trajectory",
    "plot_trainability",
    "plot_box_counting",
    "plot_weight_matching",
    "plot_local_entropy",
    "plot_lr_range_test",
    "LocalEntropy",
    "local_entropy",
    "gibbs_moments",
    "local_entropy_descent",
    "Trainability",
    "trainability",
    "BoxCounting",
    "boundary_mask",
    "box_counting_dimension",
    "mean_field_problem",
    "mean_field_loss",
    "LRRangeTest",
    "lr_range_test",
    "MaxLRSearch",
    "max_trainable_lr",
]

_L01 = "lossviz.papers.l01_large_step_logistic"
__getattr__ = moved(
    __name__,
    {
        "accuracy": "lossviz.landscape:accuracy_metric",
        "GDRun": f"{_L01}:GDRun",
        "separable_cloud": f"{_L01}:separable_cloud",
        "logistic_loss": f"{_L01}:logistic_loss",
        "logistic_gd": f"{_L01}:logistic_gd",
        "batch_perceptron": f"{_L01}:batch_perceptron",
    },
)
