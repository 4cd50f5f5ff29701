"""Benchmark for lossviz.collapse.nc_metrics (one thread): speed and linear scaling in N.

Run:  OMP_NUM_THREADS=1 python benchmarks/collapse_metrics.py           (about 1-2 minutes)
      OMP_NUM_THREADS=1 python benchmarks/collapse_metrics.py --quick   (3 repeats, smaller N)

Features: float32, width 512, 10 classes, N = 10k / 50k / 250k. Prints medians over >= 5 runs of

* ``nc_metrics`` (two chunked O(N d K) passes in float64; NC1 on the whitened span of Sigma_B),
* the baseline run in the same process: the dense computation most neural-collapse code uses
  (float64 copy of the features, full d x d within-class covariance, ``pinv`` of Sigma_B, then
  ``trace(Sw @ pinv(Sb)) / K``), only for N <= 50k (it needs an N x d float64 copy),
* ``class_statistics`` (one streaming pass, full d x d covariances) and ``vci`` for reference,

and checks that nc_metrics and the baseline agree on NC1.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

torch.set_num_threads(1)

from lossviz import collapse  # noqa: E402


def make(n: int, d: int = 512, k: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(k, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    x = means[y] + torch.randn(n, d, generator=g)
    return x, y


def baseline_nc1(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Dense NC1 as in typical neural-collapse code (float64, full covariances, pinv)."""
    h = x.numpy().astype(np.float64)
    yn = y.numpy()
    mu = np.stack([h[yn == c].mean(0) for c in range(k)])
    mu_g = mu.mean(0)
    r = h - mu[yn]
    sw = r.T @ r / len(yn)
    c = mu - mu_g
    sb = c.T @ c / k
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10, hermitian=True)) / k)


def median_time(fn, repeats: int, *args) -> tuple[float, object]:
    out = fn(*args)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 3 if args.quick else 5
    sizes = (10_000, 50_000) if args.quick else (10_000, 50_000, 250_000)
    print(
        f"lossviz.collapse benchmark: torch {torch.__version__}, {platform.machine()}, "
        f"threads={torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"median of {repeats} runs; d=512, K=10, float32 features"
    )
    print(
        f"{'N':>8} {'nc_metrics s':>13} {'us/sample':>10} {'baseline s':>11} {'ratio':>7} "
        f"{'class_stats s':>14} {'vci s':>7} {'NC1 agree':>10}"
    )
    rows = []
    for n in sizes:
        x, y = make(n)
        t_nc, m = median_time(collapse.nc_metrics, repeats, x, y)
        t_cs, _ = median_time(collapse.class_statistics, repeats, x, y)
        t_vci, _ = median_time(collapse.vci, repeats, x, y)
        if n <= 50_000:
            t_base, ref = median_time(baseline_nc1, repeats, x, y, 10)
            agree = f"{abs(m.nc1 / ref - 1):.1e}"
            ratio = f"{t_base / t_nc:.1f}x"
            base = f"{t_base:.3f}"
        else:
            agree, ratio, base = "-", "-", "-"
        rows.append((n, t_nc))
        print(
            f"{n:>8} {t_nc:>13.3f} {1e6 * t_nc / n:>10.2f} {base:>11} {ratio:>7} {t_cs:>14.3f} {t_vci:>7.3f} {agree:>10}"
        )
        del x, y
    (n0, t0), (n1, t1) = rows[0], rows[-1]
    slope = np.polyfit(np.log([r[0] for r in rows]), np.log([r[1] for r in rows]), 1)[0]
    print(
        f"scaling exponent of nc_metrics time in N (log-log fit): {slope:.2f} (1 = linear); "
        f"time per sample {1e6 * t0 / n0:.2f} us at N={n0}, {1e6 * t1 / n1:.2f} us at N={n1}"
    )


if __name__ == "__main__":
    main()
