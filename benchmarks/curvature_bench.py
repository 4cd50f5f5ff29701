"""Benchmark 2 of the landscape/curvature issue: top Hessian eigenvalue and Hutch++ trace.

Fixture: MLP 2-64-64-2 with tanh (4,482 parameters, float32) trained with full-batch Adam
(lr 1e-2, 1,000 steps) on 1,000 two-moons points (noise 0.1, seed 0); cross-entropy, mean over
samples. The exact Hessian is formed in float64 (``curvature.exact_hessian(dtype=float64)``)
for reference values.

Targets
-------
1. ``curvature.top_eigenvalues(k=1)`` reaches relative error <= 1e-4 against the exact top
   eigenvalue in no more wall time than PyHessian 0.1 needs for its own default. The judged row is
   the *certified* stop (``method="lanczos", tol=1e-4``: residual <= 1e-4 theta, which bounds the
   error rigorously); the cheaper a-posteriori ``stop="gap"`` rows are reported, not judged, because
   the gap estimate is not a bound (at ``tol=1e-4`` it ended 2 of 400 seeds at 1.08e-4)
   (``hessian(...).eigenvalues()``: power iteration, maxIter=100, relative tol 1e-3).
   PyHessian is installed in a separate venv (``--anchor-venv``, default /tmp/benchvenv, made
   with ``python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install torch==2.13.0
   pyhessian==0.1``) and its pure-Python package is imported into this process, so both run
   interleaved in the same process and time window. A faithful re-implementation of its
   default algorithm (same cached graph, same list-of-tensors power iteration and stopping rule)
   is always reported too, and is the baseline when the package is missing.
2. ``curvature.trace`` (Hutch++, 75 products; 60, 90 and 99 reported too) within 1% of the exact
   trace, in no more time than 100 Hessian-vector products computed one by one the PyHessian way (a cached gradient graph,
   ``torch.autograd.grad(grads, params, v, retain_graph=True)``), the graph's construction not
   counted for the baseline but counted for Hutch++.

Run: ``OMP_NUM_THREADS=1 python benchmarks/curvature_bench.py [--repeats 31]``. Prints medians
over the repeats (one thread), the ratios and PASS/FAIL per target; with ``--strict`` it exits 1 when a
target is missed (``make bench`` runs it without, so one missed target does not stop the other benchmarks).
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lossviz import curvature, data, models, train

CE = nn.functional.cross_entropy
HERE = Path(__file__).resolve().parent


def fixture():
    ds = data.two_moons(1000, noise=0.1, seed=0)
    net = models.MLP(2, (64, 64), 2, activation="tanh", seed=0)
    train.fit(net, CE, ds, steps=1000, optimizer="adam", lr=1e-2, progress=False)
    assert sum(p.numel() for p in net.parameters()) == 4482
    return net, (ds.x, ds.y)


def as_sequential(net):
    seq = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    with torch.no_grad():
        for dst, src in zip([seq[0], seq[2], seq[4]], [*net.layers, net.head]):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return seq


def pyhessian_default_reimplementation(model, x, y, seed, max_iter=100, tol=1e-3):
    """PyHessian 0.1 ``hessian(model, crit, data=(x, y)).eigenvalues()`` re-implemented faithfully."""
    model = copy.deepcopy(model).eval()
    torch.manual_seed(seed)
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward(create_graph=True)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad + 0.0 for p in params]

    def norm(v):
        s = float(sum((vi * vi).sum() for vi in v)) ** 0.5
        return [vi / (s + 1e-6) for vi in v]

    v = norm([torch.randn(p.size()) for p in params])
    eigenvalue, hvps = None, 0
    for _ in range(max_iter):
        v = norm(v)  # orthnormal() against no previous eigenvectors = normalisation
        Hv = torch.autograd.grad(grads, params, grad_outputs=v, only_inputs=True, retain_graph=True)
        hvps += 1
        tmp = float(sum((h * vi).sum() for h, vi in zip(Hv, v)))
        v = norm(Hv)
        if eigenvalue is None:
            eigenvalue = tmp
        elif abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
            break
        else:
            eigenvalue = tmp
    return eigenvalue, hvps


def hvps_pyhessian_way(model, x, y, n=100, seed=0):
    """Time ``n`` sequential HVPs with a cached gradient graph (graph construction excluded)."""
    model = copy.deepcopy(model).eval()
    loss = CE(model(x), y)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator().manual_seed(seed)
    vs = [[torch.randn(p.shape, generator=g) for p in params] for _ in range(n)]
    t0 = time.perf_counter()
    for v in vs:
        torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
    return time.perf_counter() - t0


def import_pyhessian(path):
    """Import the PyHessian 0.1 package from the anchor venv into this process.

    PyHessian is pure Python on top of torch and numpy; only its package directory is put on
    ``sys.path`` (through a temporary directory holding a link to it), so this process keeps its
    own torch (the same 2.13.0 CPU build as the anchor venv) and numpy.
    """
    import glob
    import importlib

    hits = sorted(glob.glob(os.path.join(path, "lib", "python3*", "site-packages", "pyhessian")))
    if not hits:
        return (
            None,
            f"no pyhessian package under {path!r} (make it with: python3 -m venv {path} && "
            f"{path}/bin/pip install torch==2.13.0 pyhessian==0.1)",
        )
    tmp = tempfile.mkdtemp(prefix="pyhessian-link-")
    os.symlink(hits[-1], os.path.join(tmp, "pyhessian"))
    sys.path.insert(0, tmp)
    try:
        importlib.import_module("pyhessian")
        return importlib.import_module("pyhessian.hessian"), None
    except Exception as exc:  # noqa: BLE001
        return None, f"importing pyhessian failed: {exc!r}"


def pyhessian_package(ph, model, x, y, seed):
    """PyHessian 0.1 with its defaults; returns (eigenvalue, HVP count). The model copy is made outside the timing."""
    count = {"n": 0}
    original = ph.hessian_vector_product

    def counted(*a, **k):
        count["n"] += 1
        return original(*a, **k)

    ph.hessian_vector_product = counted
    try:
        torch.manual_seed(seed)
        h = ph.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        eig, _ = h.eigenvalues()
    finally:
        ph.hessian_vector_product = original
    return float(eig[0]), count["n"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--anchor-venv", default=os.environ.get("LOSSVIZ_ANCHOR_VENV", "/tmp/benchvenv"))
    ap.add_argument("--hutchpp-matvecs", type=int, default=75)
    ap.add_argument(
        "--reference-cache", default=None, help="file to keep the exact eigenvalues in between runs"
    )
    ap.add_argument(
        "--error-seeds", type=int, default=400, help="seeds for the untimed accuracy sweep (0 to skip)"
    )
    ap.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    R = max(5, args.repeats)
    print(
        f"# curvature benchmark ({time.strftime('%Y-%m-%d %H:%M')} UTC, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread, {R} repeats, medians)"
    )

    net, (x, y) = fixture()
    t0 = time.perf_counter()
    if args.reference_cache and os.path.exists(args.reference_cache):
        lam = np.load(args.reference_cache)
    else:
        lam = curvature.exact_hessian(net, CE, (x, y), dtype=torch.float64).eigenvalues.numpy()
        if args.reference_cache:
            np.save(args.reference_cache, lam)
    t_exact = time.perf_counter() - t0
    lam_max, tr_exact = float(lam[-1]), float(lam.sum())
    print(
        f"fixture: 4,482 parameters; exact float64 Hessian in {t_exact:.1f} s: lambda_max = {lam_max:.6g}, "
        f"lambda_2 = {lam[-2]:.4g}, trace = {tr_exact:.6g}"
    )

    # -- 1. top eigenvalue ---------------------------------------------------------------------------
    configs = {  # the first entry is the judged one
        "lossviz top_eigenvalues, method='lanczos', tol=1e-4 (certified: residual <= 1e-4 theta)": dict(
            method="lanczos", tol=1e-4
        ),
        "lossviz top_eigenvalues, method='lanczos', tol=5e-5, stop='gap' (estimate r^2/gap <= 5e-5 theta)": dict(
            method="lanczos", tol=5e-5, stop="gap"
        ),
        "lossviz top_eigenvalues, method='lanczos', tol=1e-4, stop='gap' (estimate r^2/gap <= 1e-4 theta)": dict(
            method="lanczos", tol=1e-4, stop="gap"
        ),
        "lossviz top_eigenvalues, method='lanczos' (default), default tol (6e-6)": dict(),
        "lossviz top_eigenvalues, method='eigsh', default tol": dict(method="eigsh"),
    }
    ours = {name: ([], [], [], []) for name in configs}
    base_t, base_err, base_mv = [], [], []
    pkg_t, pkg_err, pkg_mv = [], [], []
    ph, why = import_pyhessian(args.anchor_venv)
    if ph is None:
        print(f"note: {why}; the baseline is the in-process re-implementation of PyHessian's default")

    def run_ours(r, name):
        kw = configs[name]
        t0 = time.perf_counter()
        res = curvature.top_eigenvalues(net, CE, (x, y), k=1, seed=r, **kw)
        ours[name][0].append(time.perf_counter() - t0)
        ours[name][1].append(abs(res.eigenvalues[0] - lam_max) / lam_max)
        ours[name][2].append(res.matvecs)
        ours[name][3].append(bool(res.all_converged))

    def run_reimplementation(r):
        t0 = time.perf_counter()
        ev, n = pyhessian_default_reimplementation(net, x, y, seed=r)
        base_t.append(time.perf_counter() - t0)
        base_err.append(abs(ev - lam_max) / lam_max)
        base_mv.append(n)

    def run_package(r):
        m = as_sequential(net)
        t0 = time.perf_counter()
        ev, n = pyhessian_package(ph, m, x, y, seed=r)
        pkg_t.append(time.perf_counter() - t0)
        pkg_err.append(abs(ev - lam_max) / lam_max)
        pkg_mv.append(n)

    # Every repeat runs every method once, in a freshly shuffled order: the first call after a
    # switch of method runs ~5-10% slower on this machine (caches, allocator), and a fixed order
    # would hand that penalty to the same method every time. Ratios are paired within a repeat.
    tasks = [functools.partial(run_ours, name=name) for name in configs] + [run_reimplementation]
    if ph is not None:
        tasks.append(run_package)
    order_rng = np.random.default_rng(12345)
    for r in range(R):
        for i in order_rng.permutation(len(tasks)):
            tasks[i](r)
    rows = [(name, t, e, m) for name, (t, e, m, _) in ours.items()]
    rows.append(("PyHessian 0.1 default, re-implemented (deepcopy timed too)", base_t, base_err, base_mv))
    if ph is not None:
        rows.append(("PyHessian 0.1 package, `hessian(...).eigenvalues()` defaults", pkg_t, pkg_err, pkg_mv))
    print("\n## 1. top Hessian eigenvalue\n")
    anchor = np.array(pkg_t if ph is not None else base_t)
    print("| method | median time [ms] | median paired ratio to PyHessian | max rel. error | HVPs (median) |")
    print("|---|---|---|---|---|")
    for name, t, e, m in rows:
        print(
            f"| {name} | {1e3 * np.median(t):.1f} | {np.median(np.array(t) / anchor):.2f} | {max(e):.1e} | "
            f"{int(np.median(m))} |"
        )
    first = next(iter(configs))
    t1, e1, _, c1 = ours[first]
    ratio1 = float(np.median(np.array(t1) / anchor))
    ok1 = max(e1) <= 1e-4 and ratio1 <= 1.0 and all(c1)
    print(
        f"\ntarget (first row): ratio lossviz / PyHessian = {ratio1:.2f}; max rel. error {max(e1):.1e} "
        f"(target <= 1e-4, converged={all(c1)}) -> {'PASS' if ok1 else 'FAIL'}"
    )
    if args.error_seeds:  # accuracy only (untimed): how often does each stop rule miss 1e-4?
        op = curvature.hessian_operator(net, CE, (x, y))
        print(f"\naccuracy over seeds 0..{args.error_seeds - 1} (untimed):\n")
        print("| method | max rel. error | 99th percentile | seeds above 1e-4 | HVPs: min / median / max |")
        print("|---|---|---|---|---|")
        for name, kw in configs.items():
            if kw.get("method") != "lanczos":
                continue
            errs, mvs = [], []
            for r in range(args.error_seeds):
                res = curvature.top_eigenvalues(op, k=1, seed=r, **kw)
                errs.append(abs(res.eigenvalues[0] - lam_max) / lam_max)
                mvs.append(res.matvecs)
            errs = np.array(errs)
            print(
                f"| {name} | {errs.max():.2e} | {np.quantile(errs, 0.99):.1e} | {int((errs > 1e-4).sum())} | "
                f"{min(mvs)} / {int(np.median(mvs))} / {max(mvs)} |"
            )

    # -- 2. Hutch++ trace ----------------------------------------------------------------------------
    budgets = sorted({args.hutchpp_matvecs, 60, 90, 99})
    hpp = {m: ([], [], []) for m in budgets}
    hvp100 = []

    def run_hpp(r):
        for m in budgets:
            t0 = time.perf_counter()
            res = curvature.trace(net, CE, (x, y), matvecs=m, seed=r)
            hpp[m][0].append(time.perf_counter() - t0)
            hpp[m][1].append(abs(res.trace - tr_exact) / abs(tr_exact))
            hpp[m][2].append(res.standard_error / abs(tr_exact))

    for r in range(R):  # interleaved, alternating order
        if r % 2 == 0:
            hvp100.append(hvps_pyhessian_way(net, x, y, 100, seed=r))
            run_hpp(r)
        else:
            run_hpp(r)
            hvp100.append(hvps_pyhessian_way(net, x, y, 100, seed=r))
    hut_err, ph_tr = [], []
    for r in range(R):
        res = curvature.trace(net, CE, (x, y), method="hutchinson", matvecs=99, seed=r)
        hut_err.append(abs(res.trace - tr_exact) / abs(tr_exact))
        if ph is not None:  # PyHessian's trace() default: Hutchinson, stop on a 1e-3 change of the mean
            m = as_sequential(net)
            torch.manual_seed(r)
            t0 = time.perf_counter()
            samples = ph.hessian(m, nn.CrossEntropyLoss(), data=(x, y), cuda=False).trace()
            ph_tr.append(
                (time.perf_counter() - t0, abs(np.mean(samples) - tr_exact) / abs(tr_exact), len(samples))
            )
    base = np.array(hvp100)
    print("\n## 2. Hessian trace\n")
    print(
        "| method | median time [ms] | median paired ratio to 100 HVPs | max rel. error | median rel. standard error |"
    )
    print("|---|---|---|---|---|")
    print(f"| 100 HVPs one by one, cached graph (baseline) | {1e3 * np.median(base):.1f} | 1.00 | - | - |")
    for m in budgets:
        t, e, se = hpp[m]
        print(
            f"| lossviz trace, Hutch++, {m} HVPs | {1e3 * np.median(t):.1f} | {np.median(np.array(t) / base):.2f} | "
            f"{max(e):.1e} | {np.median(se):.1e} |"
        )
    print(f"| lossviz trace, Hutchinson, 99 HVPs (accuracy only) | - | - | {max(hut_err):.1e} | - |")
    if ph_tr:
        t_ph, e_ph, n_ph = (np.array(v) for v in zip(*ph_tr))
        print(
            f"| PyHessian 0.1 `trace()` default (median {int(np.median(n_ph))} HVPs) | {1e3 * np.median(t_ph):.1f} | "
            f"{np.median(t_ph) / np.median(base):.2f} (unpaired) | {e_ph.max():.1e} | - |"
        )
    t, e, _ = hpp[args.hutchpp_matvecs]
    ratio2 = float(np.median(np.array(t) / base))
    ok2 = max(e) <= 0.01 and ratio2 <= 1.0
    print(
        f"\ntarget (Hutch++ with {args.hutchpp_matvecs} HVPs): ratio to 100 HVPs = {ratio2:.2f}; max rel. error "
        f"{max(e):.1e} (target <= 1e-2) -> {'PASS' if ok2 else 'FAIL'}"
    )
    return 1 if args.strict and not (ok1 and ok2) else 0


if __name__ == "__main__":
    sys.exit(main())
