r"""The common base of the curvature operators and an explicit-matrix operator.

:class:`CurvatureOperator` holds what every matrix-free symmetric operator of
:mod:`lossviz.curvature` shares (products in blocks, a SciPy ``LinearOperator``, seeded random
probes generated block by block, the dense matrix of a small operator); the Hessian
(:mod:`._operator`), the generalised Gauss-Newton matrix and the empirical Fisher (:mod:`._ggn`)
and :class:`MatrixOperator` implement ``_matmat``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .._validate import check_int, check_tensor

__all__ = ["MATRICES", "CurvatureOperator", "MatrixOperator"]

MATRICES = ("hessian", "ggn", "fisher")


class CurvatureOperator:
    r"""A symmetric ``n x n`` matrix seen only through products ``v -> A v`` (the common base).

    Every estimator of :mod:`lossviz.curvature` (:func:`top_eigenvalues`, :func:`trace`,
    :func:`spectral_density`, :class:`SharpnessTracker`) consumes one of these:
    :class:`HessianOperator`, :class:`~lossviz.curvature.GGNOperator`,
    :class:`~lossviz.curvature.EmpiricalFisherOperator`, or a :class:`MatrixOperator` wrapping an
    explicit matrix (tests, teaching). Subclasses set ``size``, ``dtype``, ``device``, ``matrix``
    and implement ``_matmat(V)`` (rows ``A v_i``, counting ``matvecs``).
    """

    size: int
    dtype: torch.dtype
    device: torch.device
    matrix: str = "matrix"
    matvecs: int = 0

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_vectors(self, v: Any, name: str, ndim: int) -> torch.Tensor:
        v = check_tensor(v, name, ndim=ndim, floating=True)
        if v.shape[-1] != self.size:
            raise ValueError(
                f"`{name}` must have {self.size} entries per vector (the number of selected parameters), "
                f"got shape {tuple(v.shape)}"
            )
        return v.to(dtype=self.dtype, device=self.device)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``A v`` for a flat vector ``v`` of length ``size``."""
        v = self._check_vectors(v, "vector", 1)
        return self._matmat(v[None])[0]

    def default_block(self) -> int:
        """Products per backward pass: 1 on CPU, 32 on accelerators.

        Chosen by measurement: on CPU a vmapped backward over 33 vectors
        (``is_grads_batched=True``) was 1.2-1.5x *slower* than 33 sequential backward passes for
        the 4,482-parameter MLP of the benchmarks (benchmarks/curvature.md); on a GPU batching
        amortises kernel launches.
        """
        return 1 if self.device.type == "cpu" else 32

    def matmat(self, V: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """``A V^T`` row-wise: ``V`` has shape ``(m, size)``, the result too (rows ``A v_i``).

        Rows are processed in blocks of ``block`` (default :meth:`default_block`) with a vmapped
        backward pass.
        """
        V = self._check_vectors(V, "V", 2)
        block = self.default_block() if block is None else check_int(block, "block", minimum=1)
        return torch.cat([self._matmat(V[i : i + block]) for i in range(0, V.shape[0], block)])

    def to_scipy(self):
        """A :class:`scipy.sparse.linalg.LinearOperator` (float64 numpy in and out)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x):
            x = np.asarray(x).reshape(-1)
            t = torch.from_numpy(np.ascontiguousarray(x)).to(dtype=self.dtype, device=self.device)
            return self._matmat(t[None])[0].to(torch.float64).cpu().numpy()

        def mm(X):
            X = np.asarray(X)
            t = torch.from_numpy(np.ascontiguousarray(X.T)).to(dtype=self.dtype, device=self.device)
            return (
                torch.cat([self._matmat(t[i : i + 32]) for i in range(0, t.shape[0], 32)])
                .to(torch.float64)
                .cpu()
                .numpy()
                .T
            )

        return LinearOperator((self.size, self.size), matvec=mv, matmat=mm, rmatvec=mv, dtype=np.float64)

    def probes(
        self,
        m: int,
        seed: int,
        distribution: str = "rademacher",
        block: int = 1,
        dtype: torch.dtype | None = None,
    ) -> Iterator[torch.Tensor]:
        """``m`` random vectors in blocks of at most ``block`` rows, generated as they are consumed.

        Each row is drawn on the CPU from one seeded ``torch.Generator`` (Rademacher signs as
        integers in ``dtype``, Gaussian entries in float64 then cast), so the stream does not
        depend on the device, the dtype or the block size; ``dtype`` defaults to the operator's.
        Peak memory: one block in ``dtype`` (plus one float64 row for Gaussian probes).
        """
        gen = torch.Generator().manual_seed(seed)
        dtype = self.dtype if dtype is None else dtype
        for start in range(0, m, block):
            rows = min(block, m - start)
            out = torch.empty(rows, self.size, dtype=dtype, device=self.device)
            for r in range(rows):
                if distribution == "rademacher":  # integers: the same stream in every dtype
                    out[r].copy_(
                        torch.randint(0, 2, (self.size,), generator=gen, dtype=dtype, device=gen.device)
                        .mul_(2)
                        .sub_(1)
                    )
                else:
                    out[r].copy_(
                        torch.randn(self.size, generator=gen, dtype=torch.float64, device=gen.device)
                    )
            yield out

    def random_vectors(self, m: int, seed: int, distribution: str = "rademacher") -> torch.Tensor:
        """``m`` random vectors (rows) from a seeded CPU generator, cast to the operator's dtype
        (the rows of :meth:`probes`, all at once: ``m x size`` entries)."""
        return torch.cat(list(self.probes(m, seed, distribution, block=max(1, m))))

    def dense(self, max_params: int = 5000) -> torch.Tensor:
        """The explicit ``n x n`` matrix from ``n`` products with the unit vectors (small ``n`` only)."""
        max_params = check_int(max_params, "max_params", minimum=1)
        if self.size > max_params:
            raise ValueError(
                f"dense() needs {self.size} products and {self.size}^2 entries; `max_params`={max_params} "
                "(raise it deliberately for a bigger model)"
            )
        eye = torch.eye(self.size, dtype=self.dtype, device=self.device)
        A = torch.cat([self._matmat(eye[i : i + 64]) for i in range(0, self.size, 64)])
        return 0.5 * (A + A.T)


class MatrixOperator(CurvatureOperator):
    """An explicit symmetric matrix as a :class:`CurvatureOperator` (tests, teaching, references).

    ``matrix`` is a square symmetric tensor (not copied); products are ``A @ v`` in its dtype.
    """

    def __init__(self, matrix: torch.Tensor, *, name: str = "matrix"):
        A = check_tensor(matrix, "matrix", ndim=2, floating=True)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"`matrix` must be square, got shape {tuple(A.shape)}")
        if not torch.allclose(A, A.T, rtol=1e-5, atol=1e-8 * float(A.abs().max().clamp_min(1e-300))):
            raise ValueError("`matrix` must be symmetric")
        self.A = A.detach()
        self.size = int(A.shape[0])
        self.dtype = A.dtype
        self.device = A.device
        self.matrix = str(name)
        self.matvecs = 0

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.matvecs += V.shape[0]
        return V @ self.A  # rows (A v_i)^T, A symmetric

    def __repr__(self) -> str:
        return f"MatrixOperator(size={self.size}, dtype={self.dtype}, matvecs={self.matvecs})"
