r"""Curvature of a loss: Hessian-vector products, eigenvalues, trace and spectral density.

Everything here is about the Hessian of the **sample-weighted mean loss**

.. math::

    L(\theta) = \sum_b \frac{n_b}{n} \, \ell_b(\theta), \qquad
    H = \nabla^2_\theta L(\theta) = \sum_b \frac{n_b}{n} \nabla^2_\theta \ell_b(\theta),

where ``loss_fn(outputs, targets)`` returns the mean loss ``ell_b`` of batch ``b`` with ``n_b``
samples. Batches are weighted by their sample count, so the Hessian does not depend on how the
data were split (the original loss-landscape code *sums* Hessian-vector products over batches,
which scales ``H`` by the number of batches; we do not).

Conventions (all explicit arguments with documented defaults):

* ``matrix``: which curvature matrix the estimators (:func:`top_eigenvalues`, :func:`trace`,
  :func:`spectral_density`, :class:`SharpnessTracker`) work on: ``"hessian"`` (default),
  ``"ggn"`` (the generalised Gauss-Newton matrix ``sum_b (n_b/n) J_b^T nabla_f^2 ell_b J_b``) or
  ``"fisher"`` (the empirical Fisher ``(1/n) sum_i grad ell_i grad ell_i^T``); or pass an operator
  built once with :func:`curvature_operator`.

* ``params``: which parameters ``theta`` are differentiated. ``None`` = every parameter with
  ``requires_grad=True``; a sequence of names, or a predicate ``(name, parameter) -> bool``. The
  other parameters are held fixed.
* ``dtype``: computation dtype; ``None`` = the model's dtype, ``torch.float64`` for reference
  quality. The model is never cast: copies are.
* ``mode``: ``"eval"`` (default) evaluates the model in eval mode (Dropout off, BatchNorm uses its
  running statistics); ``"train"`` evaluates in train mode, which is allowed only without active
  Dropout (a random loss has no Hessian) and makes BatchNorm use per-batch statistics (the running
  statistics of the model are never updated: the model's buffers are copied).
* Every stochastic estimate takes ``seed`` (random vectors are drawn on the CPU from a
  ``torch.Generator`` in float64, then cast, so results do not depend on the device).

The user's model is never changed (CONTRIBUTING.md): parameters are detached copies passed
to :func:`torch.func.functional_call`, mode flags are restored in ``finally``.

Where each method lives (one private module per method, each citing its paper)
------------------------------------------------------------------------------
* ``_operator``: :class:`HessianOperator`, :func:`hessian_operator`, :func:`hvp` (Pearlmutter's
  double back-propagation).
* ``_base``: :class:`CurvatureOperator` (what every estimator consumes: products in blocks,
  probes generated block by block, ``dense()``) and :class:`MatrixOperator` (an explicit matrix).
* ``_ggn``: :class:`GGNOperator` (generalised Gauss-Newton, N. N. Schraudolph 2002),
  :class:`EmpiricalFisherOperator` (per-sample gradient outer products; F. Kunstner et al.,
  NeurIPS 2019, on what it is not) and :func:`curvature_operator` (``matrix=``).
* ``_exact``: :func:`exact_hessian` (dense, for small models and references).
* ``_lanczos``: :func:`lanczos` with full re-orthogonalisation (or the three-vector recurrence), the tridiagonal eigensolve.
* ``_eigen``: :func:`top_eigenvalues`: implicitly restarted Lanczos (ARPACK, via
  :func:`scipy.sparse.linalg.eigsh`) or one growing Krylov space, with the true residual norms
  ``||H v - lambda v||`` reported (they bound the eigenvalue error).
* ``_hutchpp``: :func:`trace`: Hutch++ -- R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff,
  "Hutch++: Optimal Stochastic Trace Estimation", SOSA 2021, arXiv:2010.09649 (default), or
  Hutchinson's estimator (M. F. Hutchinson 1989), with standard errors.
* ``_slq``: :func:`spectral_density`: stochastic Lanczos quadrature (S. Ubaru, J. Chen, Y. Saad,
  SIAM J. Matrix Anal. Appl. 2017) as in B. Ghorbani, S. Krishnan, Y. Xiao, "An Investigation
  into Neural Net Optimization via Hessian Eigenvalue Density", ICML 2019, arXiv:1901.10159.
* ``_outliers``: :func:`class_mean_gradients`, :func:`subspace_energy` (V. Papyan, ICML 2019,
  arXiv:1901.08244; JMLR 2020, arXiv:2008.11865).
* ``_sharpness``: :class:`SharpnessTracker`: the top eigenvalue during training (edge of
  stability: J. Cohen, S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar, "Gradient Descent on Neural
  Networks Typically Occurs at the Edge of Stability", ICLR 2021, arXiv:2103.00065), a
  :func:`lossviz.train.fit` callback.
* :mod:`lossviz.curvature.plotting`: :func:`plot_density`, :func:`plot_sharpness`,
  :func:`plot_eigenvalues`, :func:`plot_batch_eigenvalues`; the results draw themselves with
  ``.plot()``.

Moved out (deprecated aliases here until 0.3): ``second_order_path``, ``OptimizationPath`` and
``plot_paths_2d`` to :mod:`lossviz.papers.l06_saddle_free_newton`; ``ScalarNetwork`` and
``gradient_flow_solution`` to :mod:`lossviz.papers.l03_gfs_sharpness`; ``plot_spectrum`` is
:func:`plot_density` (``lossviz.ntk.plot_spectrum`` draws a kernel's eigenvalues, a different
picture).

Example
-------
>>> import torch
>>> from lossviz import curvature
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
>>> x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
>>> mse = torch.nn.functional.mse_loss
>>> top = curvature.top_eigenvalues(net, mse, (x, y), k=1, seed=0)
>>> H = curvature.exact_hessian(net, mse, (x, y)).matrix
>>> bool(abs(top.eigenvalues[0] - torch.linalg.eigvalsh(H)[-1]) < 1e-8)
True
"""

from __future__ import annotations

from .._deprecate import moved
from ._base import CurvatureOperator, MatrixOperator
from ._batch import BatchEigenvalues, batch_eigenvalues, sample_batches
from ._eigen import EigenResult, top_eigenvalues
from ._exact import ExactHessian, exact_hessian
from ._ggn import EmpiricalFisherOperator, GGNOperator, curvature_operator
from ._hutchpp import TraceResult, trace
from ._lanczos import LanczosResult, lanczos
from ._operator import HessianOperator, hessian_operator, hvp
from ._outliers import class_mean_gradients, subspace_energy
from ._sharpness import SharpnessHistory, SharpnessTracker
from ._slq import SpectralDensity, spectral_density
from .plotting import plot_batch_eigenvalues, plot_density, plot_eigenvalues, plot_sharpness

__all__ = [
    "CurvatureOperator",
    "MatrixOperator",
    "HessianOperator",
    "hessian_operator",
    "GGNOperator",
    "EmpiricalFisherOperator",
    "curvature_operator",
    "hvp",
    "exact_hessian",
    "ExactHessian",
    "top_eigenvalues",
    "EigenResult",
    "batch_eigenvalues",
    "BatchEigenvalues",
    "sample_batches",
    "trace",
    "TraceResult",
    "spectral_density",
    "SpectralDensity",
    "lanczos",
    "LanczosResult",
    "SharpnessTracker",
    "SharpnessHistory",
    "class_mean_gradients",
    "subspace_energy",
    "plot_density",
    "plot_batch_eigenvalues",
    "plot_sharpness",
    "plot_eigenvalues",
]

__getattr__ = moved(
    __name__,
    {
        "plot_spectrum": "lossviz.curvature.plotting:plot_density",
        "second_order_path": "lossviz.papers.l06_saddle_free_newton:second_order_path",
        "OptimizationPath": "lossviz.papers.l06_saddle_free_newton:OptimizationPath",
        "plot_paths_2d": "lossviz.papers.l06_saddle_free_newton:plot_paths_2d",
        "ScalarNetwork": "lossviz.papers.l03_gfs_sharpness:ScalarNetwork",
        "gradient_flow_solution": "lossviz.papers.l03_gfs_sharpness:gradient_flow_solution",
    },
)
