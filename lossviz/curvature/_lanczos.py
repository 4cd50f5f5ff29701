r"""The Lanczos iteration with full re-orthogonalisation and its tridiagonal eigensolve.

From a unit vector ``v_1``, ``m`` steps build an orthonormal basis ``V = [v_1, ..., v_m]`` of the
Krylov space ``span{v_1, H v_1, ..., H^{m-1} v_1}`` in which ``V^T H V = T`` is tridiagonal
(diagonal ``alpha``, off-diagonal ``beta``):

.. math::

    \beta_j v_{j+1} = H v_j - \alpha_j v_j - \beta_{j-1} v_{j-1}.

Every new vector is orthogonalised twice against all previous ones (classical Gram-Schmidt,
"twice is enough"); without it, orthogonality is lost in floating point and spurious copies of
the extreme eigenvalues appear (C. C. Paige, 1971; B. N. Parlett, *The Symmetric Eigenvalue
Problem*, SIAM 1998, chapter 13). The eigenpairs ``(theta_i, s_i)`` of ``T`` give Ritz pairs
``(theta_i, V s_i)`` with residual norm ``||H V s_i - theta_i V s_i|| = beta_m |s_{m,i}|``.

* :func:`lanczos` runs a fixed number of steps (the building block of stochastic Lanczos
  quadrature, :mod:`lossviz.curvature._slq`);
* ``_lanczos_extreme`` grows the space until the wanted Ritz pairs converge (the
  ``method="lanczos"`` path of :func:`lossviz.curvature.top_eigenvalues`);
* ``_tridiag_eigh`` is LAPACK ``dstev`` called directly (its wrappers cost 3-5x the solve at the
  sizes of one Lanczos step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal, lapack

from .._result import Result
from .._validate import check_int, check_tensor
from ._base import CurvatureOperator

__all__ = ["LanczosResult", "lanczos"]


def _tridiag_eigh(alpha: list[float], beta: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal ``T(alpha, beta)``.

    LAPACK ``dstev`` directly: it runs once per Lanczos step, and the wrapper overhead of
    ``numpy.linalg.eigh`` / ``scipy.linalg.eigh_tridiagonal`` was measured at 3-5x its cost here.
    """
    m = len(alpha)
    if m == 1:
        return np.array(alpha, dtype=np.float64), np.ones((1, 1))
    d = np.array(alpha, dtype=np.float64)
    e = np.array(beta[: m - 1], dtype=np.float64)
    w, z, info = lapack.dstev(d, e, compute_v=1)
    if info != 0:  # QL did not converge (practically never): the robust MRRR path
        return eigh_tridiagonal(d, e)
    return w, z


class _Basis:
    """The Lanczos vectors as a list of row blocks (no copy when the basis grows).

    A contiguous basis grown by doubling held old + new copies at once: 4.8 GB for 22 float64
    steps of ResNet-18 (11.2M parameters) where the basis itself is 2.0 GB. Blocks hold
    ``min(16, 128 MiB / row)`` rows, so the overhead is under one block.
    """

    def __init__(self, n: int, dtype: torch.dtype, device, first: torch.Tensor):
        self.n, self.dtype, self.device = n, dtype, device
        self.rows_per_block = max(
            1, min(16, (1 << 27) // (n * torch.empty((), dtype=dtype, device="meta").element_size()))
        )
        self.blocks: list[torch.Tensor] = []
        self.m = 0
        self.append(first)

    def append(self, v: torch.Tensor, scale: float = 1.0) -> None:
        if self.m == len(self.blocks) * self.rows_per_block:
            self.blocks.append(torch.empty(self.rows_per_block, self.n, dtype=self.dtype, device=self.device))
        blk, r = divmod(self.m, self.rows_per_block)
        torch.mul(v, scale, out=self.blocks[blk][r])
        self.m += 1

    def row(self, j: int) -> torch.Tensor:
        blk, r = divmod(j, self.rows_per_block)
        return self.blocks[blk][r]

    def _used(self):
        for i, blk in enumerate(self.blocks):
            rows = min(self.rows_per_block, self.m - i * self.rows_per_block)
            if rows > 0:
                yield blk[:rows]

    def dots(self, w: torch.Tensor) -> torch.Tensor:
        """``V w`` over the ``m`` rows."""
        return torch.cat([b @ w for b in self._used()])

    def subtract(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``w - V^T c``."""
        i = 0
        for b in self._used():
            w = torch.addmv(w, b.T, c[i : i + b.shape[0]], alpha=-1.0)
            i += b.shape[0]
        return w

    def combine(self, S: torch.Tensor, m: int) -> torch.Tensor:
        """``V[:m]^T S`` for ``S`` of shape ``(m, k)``: shape ``(n, k)``."""
        out = torch.zeros(self.n, S.shape[1], dtype=self.dtype, device=self.device)
        i = 0
        for b in self._used():
            if i >= m:
                break
            b = b[: m - i]
            out.addmm_(b.T, S[i : i + b.shape[0]])
            i += b.shape[0]
        return out


def _lanczos_extreme(
    op: CurvatureOperator,
    k: int,
    which: str,
    tol: float,
    maxiter: int | None,
    start: np.ndarray,
    stop: str = "residual",
    basis_dtype: torch.dtype = torch.float64,
    verify: bool = True,
    retries: int = 2,
):
    """Lanczos with full re-orthogonalisation, stopped when the ``k`` wanted Ritz pairs converge.

    The Krylov basis is kept in ``basis_dtype`` (default float64, whatever the operator's
    dtype): a float32 basis loses orthogonality at the 1e-7 level per step and its recurrence
    residual ``beta_m |s_{m,i}|`` then under-states the true residual (measured on ResNet-18:
    5.5e-5 reported, 2.5e-3 true, the value 17.46763 above the true 17.46533). With ``verify``
    the true residuals ``||A x_i - theta_i x_i||`` are recomputed with ``k`` explicit products
    whenever the recurrence says converged; if they miss ``tol |theta_i|`` the space keeps
    growing with a 10x tighter recurrence target (at most ``retries`` times).

    Returns Ritz values (k,), Ritz vectors (n, k) in ``basis_dtype``, residual norms (true ones
    when verified, else the recurrence's), a converged flag per pair (``residual <= tol |theta|``
    or, with ``stop="gap"`` unverified, ``min(r, r^2 / gap) <= tol |theta|``), and whether the
    residuals are verified.
    """
    n = op.size
    steps = min(n, maxiter if maxiter is not None else 300)
    q = torch.from_numpy(np.ascontiguousarray(start)).to(dtype=basis_dtype, device=op.device)
    V = _Basis(n, basis_dtype, op.device, q / q.norm())  # grown block by block
    alpha: list[float] = []
    beta: list[float] = []
    floor = 10 * torch.finfo(basis_dtype).eps
    target = tol

    def wanted(theta):  # theta is in ascending order
        if which == "SA":
            return np.arange(min(k, len(theta)))
        if which == "LM":
            return np.argsort(-np.abs(theta), kind="stable")[:k]
        return np.arange(len(theta) - 1, max(len(theta) - 1 - k, -1), -1)

    def estimates(theta, idx, res) -> list[float]:
        """Error estimate per wanted pair: ``r`` or, with ``stop="gap"``, ``min(r, r^2 / gap)``.

        Plain floats: it runs once per product, and numpy calls on these tiny arrays cost more
        than the arithmetic (measured in situ, benchmarks/curvature.md).
        """
        if stop != "gap" or len(theta) < 2:
            return res.tolist()
        th, out = theta.tolist(), []
        for i, r_i in zip(idx.tolist(), res.tolist()):
            gap = min(
                th[i] - th[i - 1] if i > 0 else math.inf, th[i + 1] - th[i] if i + 1 < len(th) else math.inf
            )
            out.append(min(r_i, r_i * r_i / max(gap, 1e-300)))
        return out

    def ritz_vectors(m, S, idx):
        Sm = torch.from_numpy(np.ascontiguousarray(S[:, idx])).to(dtype=basis_dtype, device=op.device)
        return V.combine(Sm, m)  # (n, got)

    def true_residuals(X, vals) -> np.ndarray:
        AX = op._matmat(X.T.to(op.dtype)).to(basis_dtype)  # rows A x_i
        lam = torch.as_tensor(vals, dtype=basis_dtype, device=op.device)
        return (AX - lam[:, None] * X.T).norm(dim=1).to(torch.float64).cpu().numpy()

    theta = S = idx = None
    res = None
    verified = None  # (m, vectors, residuals) of the last verification
    for j in range(steps):
        w = op._matmat(V.row(j)[None].to(op.dtype))[0].to(basis_dtype)
        # full re-orthogonalisation, twice (classical Gram-Schmidt); c[j] = v_j . A v_j = alpha_j
        c = V.dots(w)
        w = V.subtract(w, c)
        w = V.subtract(w, V.dots(w))
        a_j, b = torch.stack([c[j], torch.linalg.vector_norm(w)]).tolist()  # one device sync
        alpha.append(a_j)
        m = j + 1
        if m >= k:
            theta, S = _tridiag_eigh(alpha, beta)
            scale = max(abs(float(theta[0])), abs(float(theta[-1])), 1e-300)  # theta ascending
            idx = wanted(theta)
            if b <= floor * scale:  # invariant subspace: the Ritz pairs are exact (for the products)
                res = np.zeros(len(idx))
                done = True
            else:
                res = b * np.abs(S[-1, idx])
                th = theta.tolist()
                done = all(
                    e_i <= target * max(abs(th[i]), floor * scale)
                    for i, e_i in zip(idx.tolist(), estimates(theta, idx, res))
                )
            if done and verify:
                X = ritz_vectors(m, S, idx)
                r_true = true_residuals(X, theta[idx])
                verified = (m, X, r_true)
                err_true = np.array(estimates(theta, idx, r_true))
                ok = bool(np.all(err_true <= tol * np.maximum(np.abs(theta[idx]), 1e-300)))
                if ok or retries <= 0 or b <= floor * scale:
                    break
                retries -= 1
                target = target / 10  # the recurrence was optimistic: grow the space further
                done = False
            if done:
                break
        elif b <= floor * max(abs(a) for a in alpha):
            break
        if j + 1 < steps:
            beta.append(b)
            V.append(w, 1.0 / b)
    m = len(alpha)
    if theta is None or len(theta) != m:  # stopped before k Ritz values existed
        theta, S = _tridiag_eigh(alpha, beta[: m - 1])
        idx = wanted(theta)
        res = np.full(len(idx), np.inf)
    vals = np.full(k, np.nan)
    vecs = torch.full((n, k), float("nan"), dtype=basis_dtype, device=op.device)
    r = np.full(k, np.nan)
    got = len(idx)
    vals[:got] = theta[idx]
    if verify:
        if verified is not None and verified[0] == m:
            X, r_true = verified[1], verified[2]
        else:  # ran out of steps: verify the final Ritz pairs
            X = ritz_vectors(m, S, idx)
            r_true = true_residuals(X, theta[idx])
        vecs[:, :got] = X
        r[:got] = r_true
        err = np.array(estimates(theta, idx, r_true))
    else:
        vecs[:, :got] = ritz_vectors(m, S, idx)
        r[:got] = res
        err = np.array(estimates(theta, idx, res))
    ok = np.zeros(k, dtype=bool)
    ok[:got] = err <= tol * np.maximum(np.abs(theta[idx]), 1e-300)
    return vals, vecs, r, ok, bool(verify)


@dataclass(frozen=True, repr=False)
class LanczosResult(Result):
    """A Lanczos tridiagonalisation ``V^T H V = T`` started from ``v0``.

    Attributes
    ----------
    alpha, beta : np.ndarray
        Diagonal (m,) and off-diagonal (m - 1,) of ``T``.
    basis : torch.Tensor (m, n) or None
        Orthonormal Lanczos vectors (rows); ``None`` when not kept (``keep_basis=False``).
    orthogonality_loss : float
        ``max |V V^T - I|`` (without a kept basis: the largest ``|v_0 . v_j|``, a lower bound).
    breakdown : bool
        The Krylov space became invariant before ``steps`` (then ``m < steps`` and the Ritz
        values are exact eigenvalues of ``H``).
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: torch.Tensor | None
    orthogonality_loss: float
    breakdown: bool
    matvecs: int

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values ``theta_j`` and the squared first components ``tau_j`` of T's eigenvectors."""
        if len(self.alpha) == 1:
            return self.alpha.copy(), np.ones(1)
        theta, S = eigh_tridiagonal(self.alpha, self.beta)
        return theta, S[0] ** 2


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor] | CurvatureOperator,
    v0: torch.Tensor,
    steps: int,
    *,
    reorthogonalize: bool = True,
    keep_basis: bool | None = None,
    breakdown_tol: float | None = None,
) -> LanczosResult:
    r"""``steps`` Lanczos iterations from ``v0`` with full re-orthogonalisation.

    Each new vector is orthogonalised twice against all previous ones (classical Gram-Schmidt,
    twice is enough); without it Lanczos loses orthogonality and produces spurious copies of
    the extreme eigenvalues ("ghosts"). Stops early when ``beta_j`` falls below
    ``breakdown_tol * max|alpha|`` (invariant subspace). ``matvec`` maps a vector of length ``n``
    to ``H v`` (a :class:`CurvatureOperator` works).

    Memory: full re-orthogonalisation needs the whole basis, ``steps x n`` entries.
    ``reorthogonalize=False, keep_basis=False`` runs the plain three-term recurrence with three
    vectors of length ``n`` (what a quadrature such as :func:`spectral_density` needs: ``alpha``
    and ``beta`` only); ``basis`` is then ``None`` and ``orthogonality_loss`` is the largest
    ``|v_0 . v_j|`` (a lower bound of ``max |V V^T - I|``). ``keep_basis`` defaults to True.
    """
    steps = check_int(steps, "steps", minimum=1)
    v0 = check_tensor(v0, "v0", ndim=1, floating=True)
    mv = matvec.matvec if isinstance(matvec, CurvatureOperator) else matvec
    if not callable(mv):
        raise TypeError("`matvec` must be callable(v) -> H v or a CurvatureOperator")
    n = v0.shape[0]
    steps = min(steps, n)
    tol = (100 * torch.finfo(v0.dtype).eps) if breakdown_tol is None else breakdown_tol
    nrm = v0.norm()
    if not nrm > 0:
        raise ValueError("`v0` must be non-zero")
    keep = True if keep_basis is None else bool(keep_basis)
    if not keep and reorthogonalize:
        raise ValueError(
            "`keep_basis=False` needs `reorthogonalize=False` (re-orthogonalising uses the basis)"
        )
    if not keep:
        return _lanczos_three_term(mv, v0 / nrm, steps, tol)
    V = torch.empty(steps, n, dtype=v0.dtype, device=v0.device)
    V[0] = v0 / nrm
    alpha, beta = [], []
    count, breakdown, scale = 0, False, 0.0
    for j in range(steps):
        w = mv(V[j])
        count += 1
        a = float(torch.dot(w, V[j]))
        alpha.append(a)
        scale = max(scale, abs(a))
        if j == steps - 1:
            break
        if reorthogonalize:
            w = w - V[: j + 1].T @ (V[: j + 1] @ w)
            w = w - V[: j + 1].T @ (V[: j + 1] @ w)
        else:
            w = w - a * V[j] - (beta[-1] * V[j - 1] if j > 0 else 0)
        b = float(w.norm())
        if b <= tol * max(scale, 1e-300):
            breakdown = True
            break
        beta.append(b)
        V[j + 1] = w / b
    m = len(alpha)
    V = V[:m]
    gram = V @ V.T
    ortho = float((gram - torch.eye(m, dtype=V.dtype, device=V.device)).abs().max())
    return LanczosResult(np.array(alpha), np.array(beta[: m - 1]), V, ortho, breakdown, count)


def _lanczos_three_term(mv, q, steps: int, tol: float) -> LanczosResult:
    """The plain recurrence with three vectors (no basis kept, no re-orthogonalisation)."""
    first, prev = q, None
    alpha, beta = [], []
    count, breakdown, scale, drift = 0, False, 0.0, 0.0
    for j in range(steps):
        w = mv(q)
        count += 1
        a = float(torch.dot(w, q))
        alpha.append(a)
        scale = max(scale, abs(a))
        if j == steps - 1:
            break
        w = w - a * q
        if prev is not None:
            w = w - beta[-1] * prev
        b = float(w.norm())
        if b <= tol * max(scale, 1e-300):
            breakdown = True
            break
        beta.append(b)
        prev, q = q, w / b
        drift = max(drift, abs(float(torch.dot(first, q))))
    m = len(alpha)
    return LanczosResult(np.array(alpha), np.array(beta[: m - 1]), None, drift, breakdown, count)
