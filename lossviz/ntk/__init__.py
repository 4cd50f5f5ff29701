r"""Neural tangent kernels: empirical (finite width), analytic (infinite width) and kernel tools.

The neural tangent kernel of a network ``f(x; theta)`` with ``o`` outputs is

.. math::

    \Theta_{ab}(x, x') = \sum_p \frac{\partial f_a(x)}{\partial \theta_p}
                               \frac{\partial f_b(x')}{\partial \theta_p},

an ``(o, o)`` block for every pair of inputs. Under gradient flow on a mean-squared error the
outputs of the *linearised* network move by kernel gradient descent with this kernel; as the
width grows (NTK parametrisation) it converges to a deterministic limit that stays constant
during training (Jacot, Gabriel & Hongler, "Neural Tangent Kernel: Convergence and Generalization
in Neural Networks", 2018, arXiv:1806.07572).

Where things live (private modules, named after what they implement)
----------------------------------------------------------------------
* ``_parametrization``: :class:`ScaledLinear`, :class:`ParametrizedMLP`, :func:`parametrize`
  (standard, NTK and muP parametrisations, Yang & Hu 2021, arXiv:2011.14522) and
  :class:`Architecture`, the ONE description of a fully connected network: ``.build(width,
  seed=...)`` gives the finite network, ``.analytic(x1, x2)`` its infinite-width kernels
  (neural-tangents' ``stax`` idea); ``ParametrizedMLP.analytic_kernel(x1, x2)`` does the same for a
  built network.
* ``_empirical``: :func:`empirical`, the finite-width kernel of any ``nn.Module`` by a generic
  ``torch.func`` Jacobian contraction (chunked) or a structured fast path for stacks of
  ``nn.Linear`` / :class:`ScaledLinear` layers that never forms per-sample Jacobians:
  ``K = sum_l (c_w A_l A_l'^T + c_b) * (G_l G_l'^T)``.
* ``_analytic``: :func:`analytic`, the infinite-width NNGP and NTK by the layer recursion, float64,
  with the one table of dual activations (:data:`DUAL_ACTIVATIONS`, keyed by the names of
  :data:`lossviz.models.ACTIVATIONS`).
* ``_kernels``: :func:`eigh`, :func:`kernel_regression`, :func:`gradient_flow` (closed-form
  trajectory of the linearised model under MSE), :func:`alignment`, :func:`kernel_distance`,
  :func:`relative_change`, :func:`rbf_kernel`.
* ``_dkm``: :func:`dkm_objective`, the deep kernel machine objective on Gram matrices (Yang et al.
  2023, arXiv:2108.13097), with :func:`arccos_gram` (the differentiable ReLU Gram map) and
  :func:`gaussian_kl`.
* ``_self_distillation``: :func:`self_distillation` (iterated self-distillation of kernel ridge
  regression with ground-truth weight ``alpha``, in closed form, Borup & Andersen 2021,
  arXiv:2102.13088) and :func:`distillation_weight` (the closed-form optimal weight of one step).
* ``_random_features``: :func:`random_features`, :func:`ridge_path` (random-feature ridge
  regression over a grid of ridges from one eigendecomposition).
* ``_snapshots``: :class:`NTKSnapshots`, a :class:`lossviz.train.Callback` for lazy-versus-rich
  diagnostics (records the final step, like every lossviz callback).
* :mod:`lossviz.ntk.plotting`: :func:`plot_kernel`, :func:`plot_kernel_slice`,
  :func:`plot_kernel_spectrum` (was ``plot_spectrum``), :func:`plot_snapshots`,
  :func:`plot_ridge_path`, :func:`plot_self_distillation`; every result with a picture has ``.plot(backend=..., ax=None)``.

Paper code moved to :mod:`lossviz.papers` (old names work for one release, with a
``DeprecationWarning``): ``CenteredTwoLayer``, ``TwoLayerRun``, ``train_two_layer`` ->
:mod:`lossviz.papers.k02_grokking_lazy_rich`.

Conventions (CONTRIBUTING.md)
--------------------------------------
* ``parametrization``: ``"ntk"`` (``(sigma_w / sqrt(fan_in)) W x + sigma_b b``, ``W, b ~ N(0, 1)``),
  ``"standard"`` (``W ~ N(0, sigma_w^2 / fan_in)``, no multipliers) or ``"mup"`` (NTK with the
  readout multiplier ``sigma_w / fan_in`` and per-tensor learning rates x width); the table is in
  :func:`parametrize`. The analytic kernel exists for ``"ntk"`` (width-free) and ``"standard"``
  (grows with width; needs the widths).
* ``output``: ``"full"`` gives ``(n1, n2, o, o)``; ``"trace_sum"`` ``sum_a Theta_aa``;
  ``"trace_mean"`` ``(1/o) sum_a Theta_aa``; ``"diagonal"`` ``(n1, n2, o)`` with ``Theta_aa``.
* The empirical kernel is taken over the parameters with ``requires_grad=True``
  (``trainable_only=True``), with the model in eval mode (its flags are restored); train mode
  with Dropout is refused (a random kernel), train-mode BatchNorm takes the whole-batch Jacobian.
* Kernel linear algebra (:func:`eigh`, :func:`kernel_regression`, :func:`gradient_flow`) is done
  in float64 on the symmetrised kernel; :func:`analytic` works in float64.
* :func:`analytic` counts ``depth`` as the number of *hidden* layers (nonlinearities); the network
  has ``depth + 1`` weight matrices. Its input kernel is ``x . x' / d_in``.

Examples
--------
>>> import torch
>>> from lossviz import ntk
>>> arch = ntk.Architecture(depth=2, w_std=2 ** 0.5, b_std=0.1, d_in=2)
>>> net = arch.build(512, seed=0, dtype=torch.float64)
>>> x = torch.randn(8, 2, dtype=torch.float64)
>>> emp = ntk.empirical(net, x)
>>> emp.method
'structured'
>>> lim = arch.analytic(x)            # same depth, activation and scales as the network
>>> bool(ntk.relative_change(lim.ntk, emp.kernel) < 0.2)
True
"""

from __future__ import annotations

from .._deprecate import moved
from . import plotting  # noqa: F401  (lossviz.ntk.plotting; not in __all__: every family has one)
from ._analytic import DUAL_ACTIVATIONS, AnalyticNTK, analytic
from ._depth_mup import DEPTH_PARAMETRIZATIONS, ResidualMLP, branch_multiplier
from ._dkm import arccos_gram, dkm_objective, gaussian_kl
from ._empirical import METHODS, OUTPUTS, EmpiricalNTK, empirical
from ._kernels import (
    GradientFlow,
    KernelRegression,
    KernelSpectrum,
    alignment,
    eigh,
    gradient_flow,
    kernel_distance,
    kernel_regression,
    rbf_kernel,
    relative_change,
)
from ._parametrization import PARAMETRIZATIONS, Architecture, ParametrizedMLP, ScaledLinear, parametrize
from ._random_features import RidgePath, random_features, ridge_path
from ._self_distillation import SelfDistillation, distillation_weight, self_distillation
from ._snapshots import NTKSnapshots, SnapshotResult
from .plotting import (
    plot_kernel,
    plot_kernel_slice,
    plot_kernel_spectrum,
    plot_ridge_path,
    plot_self_distillation,
    plot_snapshots,
)

__all__ = [
    "arccos_gram",
    "gaussian_kl",
    "dkm_objective",
    "EmpiricalNTK",
    "AnalyticNTK",
    "empirical",
    "analytic",
    "Architecture",
    "ScaledLinear",
    "ParametrizedMLP",
    "parametrize",
    "ResidualMLP",
    "branch_multiplier",
    "DEPTH_PARAMETRIZATIONS",
    "KernelRegression",
    "kernel_regression",
    "GradientFlow",
    "gradient_flow",
    "KernelSpectrum",
    "eigh",
    "alignment",
    "kernel_distance",
    "relative_change",
    "rbf_kernel",
    "SelfDistillation",
    "self_distillation",
    "distillation_weight",
    "random_features",
    "RidgePath",
    "ridge_path",
    "NTKSnapshots",
    "SnapshotResult",
    "plot_kernel",
    "plot_kernel_slice",
    "plot_kernel_spectrum",
    "plot_snapshots",
    "plot_ridge_path",
    "plot_self_distillation",
    "OUTPUTS",
    "METHODS",
    "PARAMETRIZATIONS",
    "DUAL_ACTIVATIONS",
]

__getattr__ = moved(
    __name__,
    {
        "CenteredTwoLayer": "lossviz.papers.k02_grokking_lazy_rich:CenteredTwoLayer",
        "TwoLayerRun": "lossviz.papers.k02_grokking_lazy_rich:TwoLayerRun",
        "train_two_layer": "lossviz.papers.k02_grokking_lazy_rich:train_two_layer",
        "plot_spectrum": "lossviz.ntk.plotting:plot_kernel_spectrum",
    },
)
