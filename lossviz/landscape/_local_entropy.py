r"""Local entropy: the smoothed energy of Entropy-SGD, by exact quadrature on a grid.

Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun & Zecchina, *Entropy-SGD:
Biasing Gradient Descent Into Wide Valleys*, ICLR 2017, arXiv:1611.01838. The local entropy of a
loss :math:`f` at :math:`x` with scope :math:`\gamma` and temperature :math:`T` is

.. math::

    F(x; \gamma, T) = \log \int \exp\Big(-\frac{f(x')}{T} - \frac{\gamma}{2T}\,\|x - x'\|^2\Big)\,dx' .

Here it is reported as an *energy* on the scale of :math:`f`,

.. math::

    f_{\gamma,T}(x) = -T\,F(x; \gamma, T) + \frac{dT}{2}\log\frac{2\pi T}{\gamma},

normalised so that :math:`f_{\gamma,T} \to f` as :math:`\gamma \to \infty` (the Gaussian's own
mass is taken out; :math:`d` is the dimension). Its gradient is :math:`\gamma (x - \langle x'\rangle)`
and its Hessian :math:`\gamma I - (\gamma^2/T)\,\mathrm{Cov}(x')`, where the moments are under the
Gibbs density :math:`\propto \exp(-f(x')/T - \gamma\|x - x'\|^2/(2T))`: the smoothed energy has
curvature at most :math:`\gamma` everywhere. For a quadratic well :math:`f = a x^2/2`,
:math:`f_{\gamma,T}(x) = \frac{a\gamma}{2(a+\gamma)} x^2 + \frac{T}{2}\log(1 + a/\gamma)`: a sharp well
(large :math:`a`) pays a width penalty :math:`\frac{T}{2}\log(1 + a/\gamma)`, which is how a wide,
shallower valley can become the global minimum of :math:`f_{\gamma,T}`.

The integral is a log-sum-exp over the grid points (rectangle rule, float64), separable over the
axes of an ``indexing="ij"`` grid in 2-D. Grids must be uniform and cover the Gibbs density
(:math:`f` plus the Gaussian must be large at the grid's edges), else the quadrature truncates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_float, check_int

__all__ = ["LocalEntropy", "local_entropy", "gibbs_moments", "local_entropy_descent"]


@dataclass(frozen=True, repr=False)
class LocalEntropy(Result):
    r"""The smoothed energy :math:`f_{\gamma,T}` on a grid (see :func:`local_entropy`).

    Attributes
    ----------
    grid : tuple of 1-D arrays (one per axis, ``indexing="ij"``)
    f, energy : arrays of shape ``tuple(len(a) for a in grid)``
        The loss and the smoothed energy at the grid points.
    gamma, temperature : float
    argmin, argmin_f : arrays of length ``d``
        Grid points of the smallest energy and of the smallest loss.
    mean, variance : arrays or None
        1-D only: the Gibbs mean :math:`\langle x'\rangle` and variance at each grid point (the
        gradient is ``gamma * (x - mean)``, the second derivative ``gamma - gamma**2 * variance / T``).
    resolution : float
        Diagnostic: the Gaussian's width :math:`\sqrt{T/\gamma}` over the largest grid spacing. Below
        about 0.5 the rectangle rule does not resolve the Gaussian and lowers the energy by up to
        :math:`T \log(\Delta x / \sqrt{2\pi T/\gamma})` per axis.
    """

    grid: tuple
    f: np.ndarray
    energy: np.ndarray
    gamma: float
    temperature: float
    argmin: np.ndarray
    argmin_f: np.ndarray
    mean: np.ndarray | None
    variance: np.ndarray | None
    resolution: float

    @property
    def curvature(self) -> np.ndarray:
        r"""1-D: the exact second derivative :math:`\gamma - (\gamma^2/T)\,\mathrm{Var}(x')` (at most ``gamma``)."""
        if self.variance is None:
            raise ValueError("`curvature` is available for 1-D grids only")
        return self.gamma - self.gamma**2 * self.variance / self.temperature

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw ``f`` and ``f_{gamma,T}`` with :func:`lossviz.landscape.plot_local_entropy`."""
        from .plotting import plot_local_entropy

        return plot_local_entropy(self, backend=backend, ax=ax, **kw)


def _axes(grid) -> tuple[torch.Tensor, ...]:
    if isinstance(grid, (np.ndarray, torch.Tensor)) and np.ndim(grid) == 1:
        grid = (grid,)
    if not isinstance(grid, (tuple, list)) or not grid or len(grid) > 2:
        raise TypeError("`grid` must be a 1-D array or a tuple of one or two 1-D arrays (indexing='ij')")
    out = []
    for i, a in enumerate(grid):
        t = torch.as_tensor(
            np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64), device="cpu"
        )
        if t.ndim != 1 or t.numel() < 3:
            raise ValueError(f"`grid[{i}]` must be 1-D with at least 3 points, got shape {tuple(t.shape)}")
        d = torch.diff(t)
        if not bool((d > 0).all()) or float((d - d[0]).abs().max()) > 1e-9 * max(1.0, float(d[0])):
            raise ValueError(f"`grid[{i}]` must be increasing and uniformly spaced")
        out.append(t)
    return tuple(out)


def _values(values, axes) -> torch.Tensor:
    shape = tuple(a.numel() for a in axes)
    if callable(values):
        mesh = torch.meshgrid(*axes, indexing="ij")
        values = values(*mesh)
    v = values.detach().cpu() if isinstance(values, torch.Tensor) else values
    v = torch.as_tensor(np.asarray(v, dtype=np.float64), device="cpu")
    if tuple(v.shape) != shape:
        raise ValueError(f"`values` must have the grid's shape {shape}, got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("`values` must be finite on the grid")
    return v


def _check_gt(gamma, temperature):
    return check_float(gamma, "gamma", positive=True), check_float(temperature, "temperature", positive=True)


def gibbs_moments(
    values, grid, x, gamma: float, temperature: float, *, moments: bool = True
) -> dict[str, np.ndarray]:
    r"""Smoothed energy, Gibbs mean and variance of :math:`x'` at query points ``x`` (1-D).

    ``values`` are :math:`f` on the uniform 1-D ``grid`` (or a callable evaluated there); ``x``
    any points. Returns ``{"energy", "mean", "variance"}`` as float64 arrays shaped like ``x``
    (conventions in :func:`local_entropy`; Chaudhari et al. 2017); ``moments=False`` skips the
    mean and variance (``None``), about three times faster.

    >>> import numpy as np
    >>> g = np.linspace(-10, 10, 4001)
    >>> m = gibbs_moments(g**2 / 2, g, np.array([1.0]), gamma=1.0, temperature=0.1)
    >>> round(float(m["mean"][0]), 6), round(float(m["energy"][0]), 6)   # a = 1: mean x/2, energy x^2/4 + T/2 log 2
    (0.5, 0.284657)
    """
    (axis,) = _axes(grid)
    f = _values(values, (axis,))
    gamma, temperature = _check_gt(gamma, temperature)
    xq = torch.as_tensor(np.asarray(x, dtype=np.float64), device="cpu")
    shape = xq.shape
    xq = xq.reshape(-1)
    dx = float(axis[1] - axis[0])
    a = -(f[None, :] + 0.5 * gamma * (xq[:, None] - axis[None, :]) ** 2) / temperature
    lse = torch.logsumexp(a, dim=1)
    energy = -temperature * (lse + math.log(dx)) + 0.5 * temperature * math.log(
        2 * math.pi * temperature / gamma
    )
    if not moments:
        return {"energy": energy.reshape(shape).numpy(), "mean": None, "variance": None}
    w = torch.exp(a - lse[:, None])
    mean = (w * axis[None, :]).sum(1)
    var = (w * (axis[None, :] - mean[:, None]) ** 2).sum(1)
    return {
        "energy": energy.reshape(shape).numpy(),
        "mean": mean.reshape(shape).numpy(),
        "variance": var.reshape(shape).numpy(),
    }


def local_entropy(values, grid, gamma: float, temperature: float, *, moments: bool = True) -> LocalEntropy:
    r"""The smoothed energy :math:`f_{\gamma,T}` of Entropy-SGD on a 1-D or 2-D grid.

    Parameters
    ----------
    values : array or callable
        :math:`f` at the grid points (shape ``(n,)`` or ``(n1, n2)`` with ``indexing="ij"``), or a
        callable ``f(x)`` / ``f(x, y)`` evaluated on the (meshed) grid.
    grid : 1-D array, or a tuple of one or two 1-D arrays
        Uniform axes; the quadrature is the rectangle rule over them.
    gamma : float
        Scope :math:`\gamma > 0` (large: :math:`f_{\gamma,T} \to f`; small: wide smoothing).
    temperature : float
        :math:`T > 0`.
    moments : bool
        1-D: also compute the Gibbs mean and variance (``False``: ``None``, about 3x faster).

    Returns
    -------
    LocalEntropy
        ``energy`` at the grid points, normalised so that ``energy -> f`` as ``gamma -> inf``
        (Chaudhari et al., Entropy-SGD, ICLR 2017, eq. for the local entropy; the additive
        normalisation is ours), with the Gibbs mean and variance in 1-D.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.linspace(-4, 4, 2001)
    >>> f = 0.05 * g**2 - np.exp(-(g + 1)**2 / 0.02) - 0.8 * np.exp(-(g - 1.5)**2 / 0.72)
    >>> float(local_entropy(f, g, gamma=1e3, temperature=0.2).argmin[0])   # barely smoothed: the deep, sharp well
    -1.0
    >>> bool(abs(local_entropy(f, g, gamma=1.0, temperature=0.2).argmin[0] - 1.5) < 0.3)  # the wide valley
    True
    """
    axes = _axes(grid)
    f = _values(values, axes)
    gamma, temperature = _check_gt(gamma, temperature)
    mean = var = None
    if len(axes) == 1:
        m = gibbs_moments(f.numpy(), axes, axes[0].numpy(), gamma, temperature, moments=moments)
        energy, mean, var = m["energy"], m["mean"], m["variance"]
    else:
        # separable: contract the second axis, then the first, in log space
        xs, ys = axes
        ky = -0.5 * gamma * (ys[:, None] - ys[None, :]) ** 2 / temperature  # (query, point)
        kx = -0.5 * gamma * (xs[:, None] - xs[None, :]) ** 2 / temperature
        a = -f / temperature  # (n1, n2)
        inner = torch.empty(xs.numel(), ys.numel(), dtype=torch.float64, device="cpu")  # (point x, query y)
        chunk = max(1, 2_000_000 // (ys.numel() ** 2))
        for i in range(0, xs.numel(), chunk):
            inner[i : i + chunk] = torch.logsumexp(a[i : i + chunk, None, :] + ky[None], dim=2)
        out = torch.empty_like(inner)  # (query x, query y)
        for i in range(0, xs.numel(), chunk):
            out[i : i + chunk] = torch.logsumexp(kx[i : i + chunk, :, None] + inner[None], dim=1)
        dv = float(xs[1] - xs[0]) * float(ys[1] - ys[0])
        energy = (
            -temperature * (out + math.log(dv)) + temperature * math.log(2 * math.pi * temperature / gamma)
        ).numpy()
    fn = f.numpy()
    mesh = np.meshgrid(*[a.numpy() for a in axes], indexing="ij")

    def at(idx):
        return np.array([m[idx] for m in mesh])

    return LocalEntropy(
        grid=tuple(a.numpy() for a in axes),
        f=fn,
        energy=energy,
        gamma=gamma,
        temperature=temperature,
        argmin=at(np.unravel_index(int(np.argmin(energy)), energy.shape)),
        argmin_f=at(np.unravel_index(int(np.argmin(fn)), fn.shape)),
        mean=mean,
        variance=var,
        resolution=math.sqrt(temperature / gamma) / max(float(a[1] - a[0]) for a in axes),
    )


def local_entropy_descent(
    values, grid, x0, gamma: float, temperature: float, *, lr: float | None = None, steps: int = 200
) -> np.ndarray:
    r"""Exact gradient descent on :math:`f_{\gamma,T}` (1-D, quadrature gradients) from each start.

    ``x_{k+1} = x_k - lr * gamma * (x_k - <x'>(x_k))``; the default ``lr = 1/gamma`` makes each step
    the jump to the Gibbs mean (a mean-shift iteration). Returns the path, shape ``(steps + 1,) +
    x0.shape``. This is the noise-free limit of Entropy-SGD (:class:`lossviz.train.EntropySGD`),
    whose inner Langevin chain estimates the same mean (Chaudhari et al. 2017).

    >>> import numpy as np
    >>> g = np.linspace(-10, 10, 2001)
    >>> path = local_entropy_descent(g**2 / 2, g, np.array([2.0]), gamma=1.0, temperature=0.1, steps=30)
    >>> bool(abs(path[-1, 0]) < 1e-6)
    True
    """
    (axis,) = _axes(grid)
    f = _values(values, (axis,)).numpy()
    gamma, temperature = _check_gt(gamma, temperature)
    lr = 1.0 / gamma if lr is None else check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    x = np.asarray(x0, dtype=np.float64).copy()
    path = [x.copy()]
    for _ in range(steps):
        mean = gibbs_moments(f, (axis,), x, gamma, temperature)["mean"]
        x = x - lr * gamma * (x - mean)
        path.append(x.copy())
    return np.stack(path)
