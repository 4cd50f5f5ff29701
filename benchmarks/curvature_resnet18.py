"""ResNet-18 (11.2M parameters): top Hessian eigenvalue and trace, lossviz against PyHessian.

Fixture: torchvision's ResNet-18 layout (``tests/_models.resnet18(num_classes=10)``: torchvision's
wheel does not import against the CPU torch here), random initialisation (seed 0), one batch of
64 random 32x32 inputs with random labels (seed 0); BatchNorm statistics updated once on that
batch, then evaluated in eval mode (lossviz's default ``mode="eval"``; PyHessian puts the model
in eval mode itself). Cross-entropy, mean over the batch. Both libraries get the same batch.

Compared, interleaved in one process on one thread (every repeat runs each task once in a
freshly shuffled order), medians over the repeats:

* top eigenvalue: ``curvature.top_eigenvalues`` (default: certified Lanczos, float64 basis,
  verified residual) against PyHessian 0.1 ``hessian(...).eigenvalues()`` (power iteration,
  maxIter=100, tol=1e-3); error against a float64 reference (lossviz Lanczos on the float64 copy
  of the network, tol=1e-10, cached in ``--reference-cache``);
* trace: ``curvature.trace`` (default: adaptive Hutch++, 99 products) against PyHessian 0.1
  ``hessian(...).trace()`` (Hutchinson, stops when the running mean changes by < 1e-3
  relatively, at most 100 products); no exact trace exists at this size, so the table gives the
  estimates with their standard errors.

``--memory TASK`` runs one task in this (fresh) process and prints the growth of its peak RSS
(``ru_maxrss``, which torch's allocations count in; tracemalloc does not see them) over the RSS
after building the model and the batch.

Run: ``OMP_NUM_THREADS=1 python benchmarks/curvature_resnet18.py [--repeats 3]`` and
``OMP_NUM_THREADS=1 python benchmarks/curvature_resnet18.py --memory lossviz-trace`` (tasks:
lossviz-top, pyhessian-top, lossviz-trace, pyhessian-trace).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lossviz import curvature  # noqa: E402
from tests._models import resnet18  # noqa: E402

CE = nn.functional.cross_entropy


def fixture():
    net = resnet18(num_classes=10, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    with torch.no_grad():
        net.train()(x)  # BatchNorm statistics of this batch
    net.eval()
    return net, x, y


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_top(net, x, y, cache: str | None) -> float:
    if cache and os.path.exists(cache):
        return float(np.load(cache))
    net64 = copy.deepcopy(net).double()
    r = curvature.top_eigenvalues(net64, CE, (x.double(), y), tol=1e-10, seed=0)
    assert r.all_converged, r
    if cache:
        np.save(cache, r.eigenvalues[0])
    return float(r.eigenvalues[0])


def lossviz_top(net, x, y, seed):
    r = curvature.top_eigenvalues(net, CE, (x, y), seed=seed)
    return (
        float(r.eigenvalues[0]),
        r.matvecs,
        {"residual": float(r.residual_norms[0]), "converged": r.all_converged},
    )


def pyhessian_top(net, x, y, seed):
    from pyhessian import hessian

    m = copy.deepcopy(net)  # PyHessian leaves the model in eval mode with .grad populated
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        h = hessian(m, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        ev, _ = h.eigenvalues()
    return float(ev[0]), None, {}


def lossviz_trace(net, x, y, seed):
    r = curvature.trace(net, CE, (x, y), seed=seed)
    return r.trace, r.matvecs, {"se": r.standard_error, "estimator": r.estimator, **r.diagnostics}


def pyhessian_trace(net, x, y, seed):
    from pyhessian import hessian

    m = copy.deepcopy(net)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        h = hessian(m, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        samples = np.array(h.trace())
    se = float(samples.std(ddof=1) / np.sqrt(len(samples))) if len(samples) > 1 else float("nan")
    return float(samples.mean()), len(samples), {"se": se}


TASKS = {
    "lossviz-top": lossviz_top,
    "pyhessian-top": pyhessian_top,
    "lossviz-trace": lossviz_trace,
    "pyhessian-trace": pyhessian_trace,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument(
        "--reference-cache",
        default=os.path.join(tempfile.gettempdir(), "lossviz_resnet18_top64.npy"),
        help="file keeping the float64 reference eigenvalue between runs (outside the repository)",
    )
    ap.add_argument("--memory", choices=list(TASKS), default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, x, y = fixture()
    if args.memory:
        before = rss_mb()
        t0 = time.perf_counter()
        val, mv, extra = TASKS[args.memory](net, x, y, 0)
        print(
            f"{args.memory}: value {val:.7g}, products {mv}, {time.perf_counter() - t0:.1f} s, peak RSS "
            f"{rss_mb():.0f} MB, growth over the fixture {rss_mb() - before:.0f} MB ({extra})"
        )
        return
    load0 = os.getloadavg()
    print(
        f"# ResNet-18 curvature benchmark ({time.strftime('%Y-%m-%d %H:%M')} UTC, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread, {args.repeats} repeats, medians; "
        f"load average at start {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f})"
    )
    print(f"fixture: {sum(p.numel() for p in net.parameters()):,} parameters, batch of 64 32x32 inputs")
    names = [t for t in args.tasks.split(",") if t]
    lam = reference_top(net, x, y, args.reference_cache) if any(t.endswith("-top") for t in names) else None
    if lam is not None:
        print(f"float64 reference top eigenvalue: {lam:.9g}")
    out = {t: {"time": [], "value": [], "mv": [], "extra": []} for t in names}
    rng = np.random.default_rng(12345)
    for r in range(args.repeats):
        for i in rng.permutation(len(names)):
            t = names[i]
            t0 = time.perf_counter()
            val, mv, extra = TASKS[t](net, x, y, r)
            out[t]["time"].append(time.perf_counter() - t0)
            out[t]["value"].append(val)
            out[t]["mv"].append(mv)
            out[t]["extra"].append(extra)
            print(
                f"  repeat {r} {t}: {val:.7g} in {out[t]['time'][-1]:.1f} s ({mv} products) {extra}",
                flush=True,
            )
    load1 = os.getloadavg()
    print(f"\nload average at end {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f}\n")
    print(
        "| task | median time [s] | ratio to PyHessian | median value | max rel. error (top) / median SE (trace) | products |"
    )
    print("|---|---|---|---|---|---|")
    for t in names:
        d = out[t]
        base = out.get(("pyhessian-" + t.split("-")[1]) if t.startswith("lossviz") else t)
        ratio = np.median(d["time"]) / np.median(base["time"]) if base and base["time"] else float("nan")
        if t.endswith("-top"):
            err = f"{max(abs(v - lam) / lam for v in d['value']):.1e}"
        else:
            err = f"{np.median([e['se'] for e in d['extra']]):.3g}"
        mv = d["mv"][0] if d["mv"][0] is not None else "n/a"
        print(
            f"| {t} | {np.median(d['time']):.1f} | {ratio:.2f} | {np.median(d['value']):.7g} | {err} | {mv} |"
        )


if __name__ == "__main__":
    main()
