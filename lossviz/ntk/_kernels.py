r"""Kernel linear algebra in float64: spectra, kernel regression, gradient-flow trajectories, alignment.

Every function accepts a kernel as a tensor, an array or an NTK result (``EmpiricalNTK``,
``AnalyticNTK``); ``(n, n, o, o)`` kernels are flattened to ``(n o, n o)``. Square kernels are
symmetrised, ``(K + K^T) / 2``, and everything is computed in float64.

* :func:`eigh`: eigendecomposition with round-off negatives clipped (and counted).
* :func:`kernel_regression`: ``f(x) = K(x, X) (K(X, X) + lambda I)^+ y``.
* :func:`gradient_flow`: the closed-form trajectory of a linearised network under gradient descent
  on the MSE (Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient
  Descent", NeurIPS 2019, arXiv:1902.06720, eq. (9); neural-tangents' ``predict.gradient_descent_mse``).
* :func:`rbf_kernel`: the Gaussian kernel ``exp(-||x - x'||^2 / (2 l^2))``.
* :func:`alignment` (Cristianini et al. 2001; centred: Cortes et al. 2012), :func:`kernel_distance`
  (Fort et al. 2020), :func:`relative_change`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_choice, check_float, check_tensor
from ._analytic import AnalyticNTK
from ._empirical import EmpiricalNTK

__all__ = [
    "KernelSpectrum",
    "eigh",
    "KernelRegression",
    "kernel_regression",
    "GradientFlow",
    "gradient_flow",
    "alignment",
    "kernel_distance",
    "relative_change",
    "rbf_kernel",
]


def _kernel_matrix(kernel, name="kernel") -> torch.Tensor:
    """A float64 2-D kernel matrix from a tensor/array/result; (n, n, o, o) -> (n o, n o)."""
    if isinstance(kernel, (EmpiricalNTK, AnalyticNTK)):
        kernel = kernel.kernel
    if isinstance(kernel, np.ndarray):
        kernel = torch.from_numpy(kernel)
    k = check_tensor(kernel, name, ndim=(2, 4), floating=True)
    if k.ndim == 4:
        n1, n2, o1, o2 = k.shape
        k = k.permute(0, 2, 1, 3).reshape(n1 * o1, n2 * o2)
    return k.to(torch.float64)


def _square(kernel, name) -> torch.Tensor:
    k = _kernel_matrix(kernel, name)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"`{name}` must be square, got shape {tuple(k.shape)}")
    return (k + k.T) / 2


@dataclass(frozen=True, repr=False)
class KernelSpectrum(Result):
    """Eigen-decomposition of a symmetric PSD kernel (float64, eigenvalues descending).

    ``num_clipped`` eigenvalues in ``[-tol, 0)`` were set to 0; ``min_raw`` is the most negative
    raw eigenvalue; ``psd`` is False when some eigenvalue was below ``-tol`` (then nothing is
    clipped and the kernel is not a valid NTK/Gram matrix).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    num_clipped: int
    min_raw: float
    tol: float
    psd: bool

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Eigenvalues on a log axis (:func:`lossviz.ntk.plotting.plot_kernel_spectrum`)."""
        from .plotting import plot_kernel_spectrum

        return plot_kernel_spectrum(self, backend=backend, ax=ax, **kw)


def eigh(kernel, *, rtol: float | None = None) -> KernelSpectrum:
    """Eigen-decomposition of a kernel matrix, symmetrised, in float64, with clipping.

    Round-off makes tiny eigenvalues of a PSD kernel slightly negative; those with
    ``|lambda| <= tol = rtol * max|lambda|`` (default ``rtol = n * eps_float64 * 10``, or the
    kernel's own dtype's eps if it came in lower precision) are clipped to 0 and counted.

    ``kernel``: ``(n, n)`` or ``(n, n, o, o)`` (flattened to ``(n o, n o)``), tensor, array or an
    :class:`EmpiricalNTK`/:class:`AnalyticNTK` result.
    """
    raw = kernel.kernel if isinstance(kernel, (EmpiricalNTK, AnalyticNTK)) else kernel
    in_dtype = raw.dtype if isinstance(raw, torch.Tensor) else torch.float64
    k = _square(kernel, "kernel")
    n = k.shape[0]
    if rtol is None:
        eps = torch.finfo(in_dtype if in_dtype.is_floating_point else torch.float64).eps
        rtol = 10 * n * eps
    rtol = check_float(rtol, "rtol", minimum=0.0)
    evals, evecs = torch.linalg.eigh(k)
    evals, evecs = evals.flip(0), evecs.flip(1)
    top = float(evals.abs().max()) if n else 0.0
    tol = rtol * top
    min_raw = float(evals.min())
    psd = min_raw >= -tol
    neg = (evals < 0) & (evals >= -tol)
    if psd:
        evals = torch.where(neg, torch.zeros_like(evals), evals)
    return KernelSpectrum(evals, evecs, int(neg.sum()) if psd else 0, min_raw, tol, bool(psd))


def _targets(y, n, name="y_train") -> torch.Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    y = check_tensor(y, name, ndim=(1, 2), floating=True)
    if y.shape[0] != n:
        raise ValueError(f"`{name}` has {y.shape[0]} rows but the kernel has {n}")
    return y.to(torch.float64).reshape(n, -1)


@dataclass(frozen=True, repr=False)
class KernelRegression(Result):
    """Kernel (ridge) regression ``f(x) = K(x, X) (K(X, X) + ridge I)^+ y`` in float64."""

    coef: torch.Tensor
    train_predictions: torch.Tensor
    predictions: torch.Tensor | None
    ridge: float
    residual: float
    rank: int


def kernel_regression(
    k_train, y_train, k_test_train=None, *, ridge: float = 0.0, rcond: float | None = None
) -> KernelRegression:
    """Kernel ridge regression (the ``t -> inf`` limit of kernel gradient flow from ``f_0 = 0``).

    .. math:: f(x) = K(x, X)\\,(K(X, X) + \\lambda I)^{+} y

    with the ridge ``lambda`` added to the diagonal as given (no ``n`` factor). Solved by a
    symmetric eigendecomposition in float64, so ``ridge = 0`` with a singular kernel gives the
    minimum-norm interpolant (eigenvalues below ``rcond * max`` dropped; default
    ``n * eps_float64 * 10``, raise it for float32 kernels).

    Parameters
    ----------
    k_train : ``(n, n)`` kernel on the training inputs (or ``(n, n, o, o)``)
    y_train : ``(n,)`` or ``(n, o)`` targets
    k_test_train : ``(m, n)`` kernel between test and training inputs, optional
    """
    k = _square(k_train, "k_train")
    n = k.shape[0]
    y = _targets(y_train, n)
    ridge = check_float(ridge, "ridge", minimum=0.0)
    spec = torch.linalg.eigh(k + ridge * torch.eye(n, dtype=k.dtype, device=k.device))
    lam, v = spec
    rcond = (
        10 * n * torch.finfo(torch.float64).eps if rcond is None else check_float(rcond, "rcond", minimum=0.0)
    )
    keep = lam > rcond * lam.abs().max()
    inv = torch.where(keep, 1 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    coef = v @ (inv[:, None] * (v.T @ y))
    train_pred = k @ coef
    pred = None
    if k_test_train is not None:
        kt = _kernel_matrix(k_test_train, "k_test_train")
        if kt.shape[1] != n:
            raise ValueError(
                f"`k_test_train` must have {n} columns (training points), got shape {tuple(kt.shape)}"
            )
        pred = kt @ coef
    resid = float(torch.linalg.norm(train_pred + ridge * coef - y) / max(float(torch.linalg.norm(y)), 1e-300))
    return KernelRegression(coef, train_pred, pred, ridge, resid, int(keep.sum()))


@dataclass(frozen=True, repr=False)
class GradientFlow(Result):
    """Closed-form trajectory of a linearised model trained with MSE (float64).

    ``train`` has shape ``(T, n, o)``, ``test`` ``(T, m, o)`` (or None); ``times`` are continuous
    times ``t = lr * steps`` for gradient flow or step counts for ``discrete=True``.
    """

    times: np.ndarray
    train: torch.Tensor
    test: torch.Tensor | None
    eigenvalues: torch.Tensor
    lr: float
    loss: str
    discrete: bool


def gradient_flow(
    k_train,
    y_train,
    times,
    *,
    f0_train=None,
    k_test_train=None,
    f0_test=None,
    lr: float = 1.0,
    loss: str = "mean",
    discrete: bool = False,
) -> GradientFlow:
    """Predictions of the linearised model at any time under gradient descent on the MSE.

    Loss ``L = (c/2) sum_i ||f(x_i) - y_i||^2`` with ``c = 1/n`` (``loss="mean"``, i.e.
    ``0.5 * mean`` over samples of the squared error summed over outputs) or ``c = 1``
    (``loss="sum"``). Gradient flow with learning rate ``eta`` on the parameters of the
    linearised model moves the training outputs by ``df/dt = -eta c K (f - y)``, so

    .. math::

        f_t(X) = y + e^{-\\eta c K t}(f_0(X) - y), \\qquad
        f_t(x) = f_0(x) - K(x, X) K^{-1}(I - e^{-\\eta c K t})(f_0(X) - y).

    With ``discrete=True``, ``times`` are numbers of gradient-descent steps and the exponential
    becomes ``(I - eta c K)^t``. Computed from one eigendecomposition; ``(1 - e^{-eta c lambda t})
    / lambda`` is evaluated stably (-> ``eta c t`` for ``lambda -> 0``, so singular kernels are
    fine). Lee et al. 2019 (arXiv:1902.06720), eq. (9); neural-tangents'
    ``predict.gradient_descent_mse``.

    Parameters
    ----------
    k_train : ``(n, n)`` kernel (applied to each output column) or ``(n, n, o, o)`` full kernel
    y_train : ``(n,)`` or ``(n, o)``
    times : sequence of float (or int steps when ``discrete``)
    f0_train, f0_test : initial outputs (default 0)
    k_test_train : ``(m, n)`` (or ``(m, n, o, o)``)
    """
    check_choice(loss, "loss", ("mean", "sum"))
    lr = check_float(lr, "lr", positive=True)
    raw = k_train.kernel if isinstance(k_train, (EmpiricalNTK, AnalyticNTK)) else k_train
    full = getattr(raw, "ndim", 2) == 4
    k = _square(k_train, "k_train")
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("`times` must be a 1-D sequence of finite non-negative numbers")
    if full:
        n, o = raw.shape[0], raw.shape[2]
        y = _targets(y_train, n).reshape(n * o, 1)
    else:
        n = k.shape[0]
        y = _targets(y_train, n)
        o = y.shape[1]
    f0 = torch.zeros_like(y) if f0_train is None else _targets(f0_train, n, "f0_train").reshape(y.shape)
    c = lr / (n if loss == "mean" else 1)
    lam, v = torch.linalg.eigh(k)
    lam = lam.clamp(min=0.0)
    r0 = v.T @ (f0 - y)  # residual in the eigenbasis
    t = torch.as_tensor(times, dtype=torch.float64, device=k.device)[:, None]
    if discrete:
        decay = (1 - c * lam[None, :]) ** t
        # (1 - (1 - c lam)^t) / lam, stable for small lam
        small = lam < 1e-12
        gain = torch.where(
            small[None, :],
            c * t.expand(-1, lam.shape[0]),
            (1 - decay) / torch.where(small, torch.ones_like(lam), lam)[None, :],
        )
    else:
        x = c * lam[None, :] * t
        decay = torch.exp(-x)
        gain = torch.where(
            lam[None, :] > 0,
            -torch.expm1(-x) / torch.where(lam > 0, lam, torch.ones_like(lam))[None, :],
            c * t.expand(-1, lam.shape[0]),
        )
    train = y[None] + torch.einsum("pk,tk,kj->tpj", v, decay, r0)
    test = None
    if k_test_train is not None:
        kt = _kernel_matrix(k_test_train, "k_test_train")
        if kt.shape[1] != k.shape[0]:
            raise ValueError(f"`k_test_train` must have {k.shape[0]} columns, got shape {tuple(kt.shape)}")
        m = kt.shape[0]
        ft0 = (
            torch.zeros(m, y.shape[1], dtype=torch.float64, device=k.device)
            if f0_test is None
            else _targets(f0_test, m // (o if full else 1), "f0_test").reshape(m, -1)
        )
        kv = kt @ v
        test = ft0[None] - torch.einsum("mk,tk,kj->tmj", kv, gain, r0)
        if full:
            test = test.reshape(len(times), m // o, o)
    if full:
        train = train.reshape(len(times), n, o)
    return GradientFlow(times, train, test, lam.flip(0), lr, loss, bool(discrete))


def _flat_pair(k1, k2):
    a = _kernel_matrix(k1, "k1")
    b = _kernel_matrix(k2, "k2")
    if a.shape != b.shape:
        raise ValueError(f"`k1` and `k2` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def alignment(kernel, y, *, centered: bool = False) -> float:
    """Kernel-target alignment ``A(K, y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)``.

    Cristianini, Shawe-Taylor, Elisseeff & Kandola, "On Kernel-Target Alignment", NeurIPS 2001.
    ``centered=True`` centres both ``K`` and ``Y Y^T`` with ``H = I - 11^T/n`` first (Cortes, Mohri
    & Rostamizadeh, "Algorithms for Learning Kernels Based on Centered Alignment", 2012,
    arXiv:1203.0550). ``y`` is ``(n,)`` or ``(n, o)``. In ``[-1, 1]`` (``[0, 1]`` for PSD ``K``).
    """
    k = _square(kernel, "kernel")
    n = k.shape[0]
    yy = _targets(y, n, "y")
    t = yy @ yy.T
    if centered:
        h = torch.eye(n, dtype=k.dtype, device=k.device) - 1.0 / n
        k, t = h @ k @ h, h @ t @ h
    denom = float(torch.linalg.norm(k) * torch.linalg.norm(t))
    if denom == 0.0:
        raise ValueError("alignment is undefined for a zero kernel or zero targets")
    return float((k * t).sum()) / denom


def kernel_distance(k1, k2) -> float:
    """Kernel distance ``1 - <K1, K2>_F / (||K1||_F ||K2||_F)`` (scale-invariant, in [0, 2]).

    As used by Fort et al., "Deep learning versus kernel learning: an empirical study of loss
    landscape geometry and the time evolution of the Neural Tangent Kernel", 2020, arXiv:2010.15110.
    """
    a, b = _flat_pair(k1, k2)
    denom = float(torch.linalg.norm(a) * torch.linalg.norm(b))
    if denom == 0.0:
        raise ValueError("kernel_distance is undefined for a zero kernel")
    return 1.0 - float((a * b).sum()) / denom


def relative_change(k_ref, k) -> float:
    """Relative Frobenius change ``||K - K_ref||_F / ||K_ref||_F`` (scale-dependent)."""
    a, b = _flat_pair(k_ref, k)
    den = float(torch.linalg.norm(a))
    if den == 0.0:
        raise ValueError("`k_ref` is the zero kernel: relative_change ||k - k_ref|| / ||k_ref|| is undefined")
    return float(torch.linalg.norm(b - a)) / den


def rbf_kernel(x1, x2=None, *, length: float = 1.0) -> torch.Tensor:
    r"""Gaussian (RBF) kernel ``k(x, x') = exp(-||x - x'||^2 / (2 l^2))`` in float64.

    ``x1`` ``(n, d)`` (or ``(n,)``, one feature), ``x2`` ``(m, d)`` (default ``x1``); returns ``(n, m)``
    on the inputs' device. ``length`` is the length scale ``l > 0``.

    Examples
    --------
    >>> import torch
    >>> from lossviz import ntk
    >>> round(ntk.rbf_kernel(torch.tensor([[0.0], [1.0]]), length=1.0)[0, 1].item(), 6)   # exp(-1/2)
    0.606531
    """
    length = check_float(length, "length", positive=True)

    def _as2d(x, name):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        x = check_tensor(x, name, ndim=(1, 2), floating=True)
        return (x[:, None] if x.ndim == 1 else x).to(torch.float64)

    a = _as2d(x1, "x1")
    b = a if x2 is None else _as2d(x2, "x2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"`x1` and `x2` must have the same number of features, got {a.shape[1]} and {b.shape[1]}"
        )
    d2 = (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.T).clamp(min=0.0)
    return torch.exp(-d2 / (2 * length**2))
