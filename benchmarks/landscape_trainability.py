"""Benchmark 3 of the landscape issue: L02's trainability map.

128 x 128 grid of (lr_in, lr_out) x 500 full-batch GD steps of the mean-field 1-hidden-layer width-16 tanh
network on 16 points (float32). Target: under 10 s on the 2-core machine.

Rows (medians over ``--repeats`` runs; ``torch.set_num_threads(1)``):

* ``lossviz.landscape.trainability`` with ``workers=1`` (one core) and ``workers=2`` (two threads);
* the baseline: a plain batched implementation (einsum forward over all cells, autograd backward, no
  dropping of diverged cells). It takes over a minute on the full grid, so it is run on ``1/--baseline-fraction``
  of the rows of the grid, once, and scaled up (its cost is linear in the number of cells); the scaled
  figure is marked as such.

Run: ``OMP_NUM_THREADS=1 python benchmarks/landscape_trainability.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

import lossviz
from lossviz import landscape


def plain_baseline(rows: int, cols: int = 128, steps: int = 500, seed: int = 0) -> tuple[float, np.ndarray]:
    """Plain batched einsum + autograd over a rows x cols sub-grid of the default view; returns (seconds, losses)."""
    X, Y, W1, W2 = landscape.mean_field_problem(seed=seed, dtype=torch.float32)
    xs = np.linspace(0.0, 4.0, 128)[:rows]
    ys = np.linspace(0.5, 3.0, cols)
    LX, LY = np.meshgrid(10.0**xs, 10.0**ys, indexing="ij")
    lr_in = torch.tensor(LX.ravel(), dtype=torch.float32)[:, None, None]
    lr_out = torch.tensor(LY.ravel(), dtype=torch.float32)[:, None]
    C = lr_in.shape[0]
    w1 = W1.expand(C, -1, -1).clone().requires_grad_()
    w2 = W2.expand(C, -1).clone().requires_grad_()
    d, h = W1.shape
    t0 = time.perf_counter()
    for _ in range(steps):
        H = torch.tanh(math.sqrt(2.0 / d) * torch.einsum("nd,cdh->cnh", X, w1))
        f = torch.einsum("cnh,ch->cn", H, w2) / h
        losses = ((f - Y) ** 2).mean(1)
        g1, g2 = torch.autograd.grad(losses.sum(), (w1, w2))
        with torch.no_grad():
            w1 -= lr_in * g1
            w2 -= lr_out * g2
    return time.perf_counter() - t0, losses.detach().numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-fraction", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for w in (1, 2):
        times, cpu = [], []
        for _ in range(args.repeats):
            c0 = time.process_time()
            res = landscape.trainability(resolution=128, steps=500, workers=w)
            cpu.append(time.process_time() - c0)
            times.append(res.seconds)
        rows[f"lossviz trainability, workers={w}"] = (statistics.median(times), times, statistics.median(cpu))
    sub = 128 // args.baseline_fraction
    c0 = time.process_time()
    sec, _ = plain_baseline(sub)
    cpu1 = time.process_time() - c0
    f = args.baseline_fraction
    rows[f"plain einsum+autograd (x{f} from {sub} rows, 1 run)"] = (sec * f, [sec], cpu1 * f)
    print(
        f"# trainability 128x128 x 500 steps (float32); torch {torch.__version__}, lossviz {lossviz.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, medians of {args.repeats} runs, 1 intra-op thread"
    )
    print(
        f"# cells alive on average: {res.cell_steps / (128 * 128 * 500):.3f} of all cell-steps "
        f"(converged {res.converged.mean():.3f}, diverged {res.diverged.mean():.3f})"
    )
    base = list(rows.values())[-1][0]
    print("# wall = elapsed; cpu = process CPU time over all threads (not inflated by other jobs)")
    print(f"{'method':52s} {'wall s':>7s} {'cpu s':>7s} {'speed-up':>9s}   wall runs")
    for name, (med, times, cpu) in rows.items():
        print(f"{name:52s} {med:7.2f} {cpu:7.2f} {base / med:8.1f}x   {[round(t, 2) for t in times]}")


if __name__ == "__main__":
    sys.exit(main())
