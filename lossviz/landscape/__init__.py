"""Loss landscapes: directions, lines, planes, interpolation, weight matching, trajectories,
trainability maps and gradient descent with large step sizes.

Every compute function returns a frozen result (arrays + settings + diagnostics) and leaves the
user's model exactly as it was; drawing functions (:mod:`lossviz.landscape.plotting`) take results
and return figures.

Conventions (CONVENTIONS.md sections 3-4): Gaussian directions, filter-normalised by default, with
biases and normalisation-layer parameters fixed (``ignore=("bias", "norm")``); grid coordinates
returned as explicit arrays with ``indexing="ij"``; the original model is the grid point (0, 0) and
is evaluated; interpolation includes both end points.

>>> import torch
>>> from lossviz import landscape
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
>>> x, y = torch.randn(64, 2), torch.randn(64, 1)
>>> res = landscape.plane(net, torch.nn.functional.mse_loss, (x, y), steps=11)
>>> fig = landscape.plot_plane(res, kind="contour")
"""

from ._directions import Directions, as_directions, random_directions
from ._grid import (
    Interpolation,
    Line,
    Plane,
    Trajectory,
    accuracy,
    cpu_workers,
    grid_axis,
    interpolate,
    line,
    plane,
    trajectory,
)
from .large_steps import GDRun, batch_perceptron, logistic_gd, logistic_loss, separable_cloud
from .matching import WeightMatching, parameter_distance, permute_mlp, subspace_overlap, weight_matching
from .plotting import plot_interpolation, plot_line, plot_plane, plot_trainability
from .trainability import (
    BoxCounting,
    Trainability,
    boundary_mask,
    box_counting_dimension,
    mean_field_loss,
    mean_field_problem,
    trainability,
)

__all__ = [
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
    "trajectory",
    "accuracy",
    "grid_axis",
    "cpu_workers",
    "WeightMatching",
    "weight_matching",
    "permute_mlp",
    "parameter_distance",
    "subspace_overlap",
    "plot_plane",
    "plot_line",
    "plot_interpolation",
    "plot_trainability",
    "Trainability",
    "trainability",
    "BoxCounting",
    "boundary_mask",
    "box_counting_dimension",
    "mean_field_problem",
    "mean_field_loss",
    "GDRun",
    "separable_cloud",
    "logistic_loss",
    "logistic_gd",
    "batch_perceptron",
]
