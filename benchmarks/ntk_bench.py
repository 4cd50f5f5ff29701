"""Benchmarks for lossviz.ntk (one thread): empirical NTK paths, analytic kernel, scaling with n.

Run:  OMP_NUM_THREADS=1 python benchmarks/ntk_bench.py            (about 1-2 minutes)
      OMP_NUM_THREADS=1 python benchmarks/ntk_bench.py --quick    (fewer repeats, smaller n)

Prints medians over >= 5 runs and ratios against the generic torch.func Jacobian contraction run
in the same process (the baseline). Memory: peak resident set size of a fresh subprocess that
builds the model and computes one kernel, minus the same subprocess's RSS just before the kernel
call (so the model's own parameters are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

torch.set_num_threads(1)

from lossviz import ntk  # noqa: E402

MINS: dict[int, float] = {}


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time over ``repeats`` runs (the minimum is kept in MINS[id(fn)])."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    MINS[id(fn)] = min(times)
    return statistics.median(times)


def _hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def memory_child(method: str, width: int, n: int) -> None:
    torch.set_num_threads(1)
    net = mlp((10, width, width, 1))
    x = torch.randn(n, 10)
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS counter (Linux)
        f.write("5")
    before = _rss_kib()
    ntk.empirical(net, x, method=method)
    after = _hwm_kib()
    params = sum(p.numel() for p in net.parameters())
    print(json.dumps({"extra_kib": after - before, "params": params}))


def memory(method: str, width: int, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", method, str(width), str(n)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-child", nargs=3)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), int(args.memory_child[2]))
        return
    reps = 5 if args.quick else 9
    print(f"# lossviz.ntk benchmarks  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"# {platform.platform()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cpus {os.cpu_count()}"
    )

    print("\n## 1. Empirical NTK, output='trace_sum', MLP 10-512-512-1, 200 x 200 inputs (float32)")
    net = mlp((10, 512, 512, 1))
    x = torch.randn(200, 10)
    f_struct = lambda: ntk.empirical(net, x, method="structured")  # noqa: E731
    f_jac = lambda: ntk.empirical(net, x, method="jacobian")  # noqa: E731
    t_struct = median_time(f_struct, reps)
    t_jac = median_time(f_jac, max(5, reps // 2), warmup=1)
    k1 = ntk.empirical(net, x, method="structured").kernel
    k2 = ntk.empirical(net, x, method="jacobian").kernel
    rel = float((k1 - k2).norm() / k2.norm())
    print("| method | median | min | ratio vs jacobian (medians) |")
    print("|---|---|---|---|")
    print(
        f"| structured (lossviz) | {t_struct * 1e3:.2f} ms | {MINS[id(f_struct)] * 1e3:.2f} ms | "
        f"{t_jac / t_struct:.0f}x faster |"
    )
    print(
        f"| jacobian (torch.func vmap(jacrev) + contraction) | {t_jac * 1e3:.0f} ms | "
        f"{MINS[id(f_jac)] * 1e3:.0f} ms | 1x |"
    )
    print(f"relative difference between the two kernels (float32): {rel:.1e}")

    print("\n## 2. Analytic ReLU NNGP + NTK, depth 3, 200 x 200 inputs (float64)")
    xd = torch.randn(200, 10, dtype=torch.float64)
    f_an = lambda: ntk.analytic(xd, depth=3, w_std=2**0.5, b_std=0.1)  # noqa: E731
    t_an = median_time(f_an, reps)
    print(f"median {t_an * 1e3:.2f} ms, min {MINS[id(f_an)] * 1e3:.2f} ms")

    print("\n## 3. Scaling with the number of inputs n (n x n kernels)")
    ns_emp = (100, 200, 1000) if args.quick else (100, 200, 1000, 2000)
    print("| n | structured (10-512-512-1, float32) | jacobian | analytic (depth 3, float64) |")
    print("|---|---|---|---|")
    ns_an = (100, 1000, 5000)
    for n in sorted(set(ns_emp) | set(ns_an)):
        xs = torch.randn(n, 10)
        r = max(3, reps // 3) if n >= 1000 else reps
        ts = (
            median_time(lambda xs=xs: ntk.empirical(net, xs, method="structured"), r, 1)
            if n in ns_emp
            else None
        )
        tj = median_time(lambda xs=xs: ntk.empirical(net, xs, method="jacobian"), 3, 1) if n <= 200 else None
        ta = median_time(lambda xs=xs: ntk.analytic(xs.double(), depth=3), r, 1) if n in ns_an else None

        def fmt(t):
            return "-" if t is None else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")

        print(f"| {n} | {fmt(ts)} | {fmt(tj)} | {fmt(ta)} |")

    print("\n## 4. Extra memory of one kernel computation (n = 200), by width of 10-w-w-1")
    print("| width | parameters | structured | jacobian |")
    print("|---|---|---|---|")
    for w in (128, 512, 1024):
        ms = memory("structured", w, 200)
        mj = memory("jacobian", w, 200)
        print(
            f"| {w} | {ms['params']:,} | {ms['extra_kib'] / 1024:.1f} MiB | {mj['extra_kib'] / 1024:.1f} MiB |"
        )


if __name__ == "__main__":
    main()
