"""The GPU benchmark (`make test-gpu` runs it): lossviz's heavy calls on one device, each against
its anchor library on the same device where that library is installed, time and error side by side.

Rows: a 41x41 loss plane (anchor: loss-landscapes), top Hessian eigenvalue and Hutch++ trace of an
MLP (anchors: PyHessian; curvlinops for the trace), the empirical NTK of 64 inputs (reference: the
same kernel in float64), a 128x128 x 500-step trainability map. Every timing is a median over
``--repeats`` runs after a warm-up, with ``torch.cuda.synchronize()`` around it on a GPU. Errors are
against a float64 computation of the same quantity on the same device.

Usage: ``python benchmarks/gpu.py [--device cuda] [--repeats 5] [--out test-artifacts/gpu-bench.md]``.
Without a CUDA device (and ``--device cuda``) it prints why and exits 0: a CPU machine skips
cleanly. ``--device cpu --tiny`` runs the same code path at small sizes (the test suite does, so
the first GPU run is not the first run of this script).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def median_time(fn, dev, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (kernels, caches)
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        out = fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fixture(dev, tiny: bool, dtype=torch.float32):
    from lossviz import data, models

    n = 200 if tiny else 1000
    ds = data.two_moons(n, noise=0.1, seed=0, dtype=dtype, device=dev)
    width = 16 if tiny else 64
    model = models.MLP(2, [width, width], 2, activation="tanh", seed=0).to(device=dev, dtype=dtype)
    return model, ds.x, ds.y


def rows(dev: torch.device, tiny: bool, repeats: int) -> list[dict]:
    from lossviz import curvature, landscape, ntk

    ce = torch.nn.functional.cross_entropy
    out = []
    model, x, y = fixture(dev, tiny)
    model64, x64, y64 = fixture(dev, tiny, torch.float64)
    steps = 9 if tiny else 41

    t, p = median_time(lambda: landscape.plane(model, ce, (x, y), steps=steps, seed=0), dev, repeats)
    p64 = landscape.plane(model64, ce, (x64, y64), steps=steps, seed=0)
    err = float(abs(p.loss - p64.loss).max())
    out.append(
        {
            "row": f"plane {steps}x{steps}",
            "lossviz s": t,
            "error": err,
            "anchor": _loss_landscapes(model, x, y, steps, dev, repeats),
        }
    )

    t, top = median_time(lambda: curvature.top_eigenvalues(model, ce, (x, y), k=1), dev, repeats)
    ref = float(curvature.top_eigenvalues(model64, ce, (x64, y64), k=1).eigenvalues[0])
    out.append(
        {
            "row": "top eigenvalue",
            "lossviz s": t,
            "error": abs(float(top.eigenvalues[0]) - ref) / abs(ref),
            "anchor": _pyhessian_top(model, x, y, dev, repeats, ref),
        }
    )

    budget = 30 if tiny else 99
    t, tr = median_time(lambda: curvature.trace(model, ce, (x, y), matvecs=budget, seed=0), dev, repeats)
    exact = float(torch.trace(curvature.exact_hessian(model64, ce, (x64, y64)).matrix)) if tiny else None
    err = abs(float(tr.trace) - exact) / abs(exact) if exact else float("nan")
    out.append({"row": f"Hutch++ trace ({budget} products)", "lossviz s": t, "error": err, "anchor": "-"})

    xs = x[: (16 if tiny else 64)]
    t, k = median_time(lambda: ntk.empirical(model, xs).kernel, dev, repeats)
    k64 = ntk.empirical(model64, x64[: xs.shape[0]]).kernel
    out.append(
        {
            "row": f"empirical NTK ({xs.shape[0]} inputs)",
            "lossviz s": t,
            "error": float((k.double() - k64).abs().max() / k64.abs().max()),
            "anchor": "-",
        }
    )

    res, st = (16, 50) if tiny else (128, 500)
    t, _ = median_time(
        lambda: landscape.trainability(resolution=res, steps=st, seed=0, device=dev),
        dev,
        max(1, repeats // 2),
    )
    out.append({"row": f"trainability {res}^2 x {st}", "lossviz s": t, "error": float("nan"), "anchor": "-"})
    return out


def _loss_landscapes(model, x, y, steps, dev, repeats) -> str:
    if importlib.util.find_spec("loss_landscapes") is None:
        return "loss-landscapes not installed"
    import copy

    import loss_landscapes
    from loss_landscapes.metrics import Loss

    metric = Loss(torch.nn.functional.cross_entropy, x, y)
    t, _ = median_time(
        lambda: loss_landscapes.random_plane(
            copy.deepcopy(model), metric, distance=1.0, steps=steps, normalization="filter"
        ),
        dev,
        repeats,
    )
    return f"{t:.3f} s"


def _pyhessian_top(model, x, y, dev, repeats, ref) -> str:
    if importlib.util.find_spec("pyhessian") is None:
        return "PyHessian not installed"
    import copy

    from pyhessian import hessian

    def run():
        m = copy.deepcopy(model)
        h = hessian(m, torch.nn.functional.cross_entropy, data=(x, y), cuda=dev.type == "cuda")
        return h.eigenvalues(top_n=1)[0][0]

    t, val = median_time(run, dev, repeats)
    return f"{t:.3f} s, error {abs(val - ref) / abs(ref):.1e}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=os.environ.get("LOSSVIZ_DEVICE", "cuda"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tiny", action="store_true", help="small sizes (a smoke run of the same code)")
    ap.add_argument("--out", default=str(ROOT / "test-artifacts" / "gpu-bench.md"))
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here (torch.cuda.is_available() is False): skipped")
        return 0
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    table = rows(dev, args.tiny, args.repeats)
    lines = [
        f"# GPU benchmark: {name}, torch {torch.__version__}, {'tiny' if args.tiny else 'full'} sizes",
        "",
        "| row | lossviz (median s) | error vs float64 | anchor on the same device |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['row']} | {r['lossviz s']:.4f} | {r['error']:.1e} | {r['anchor']} |" for r in table]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
