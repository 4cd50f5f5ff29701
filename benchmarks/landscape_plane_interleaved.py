"""lossviz ``plane`` against loss-landscapes 3.0.6 in ONE process, interleaved (issue 15 item 3).

Fixture: the 41x41 plane of ``landscape_plane.py`` (MLP 2-64-64-2 tanh, 4,482 parameters, 1,000
two-moons points, trained 300 Adam steps). Every repeat runs each task once, in a shuffled order,
so load changes hit all tasks alike; medians over ``--repeats`` and the median of the per-repeat
ratios (anchor time / lossviz time, > 1 means lossviz is faster) are printed. Both thread settings
are run: ``torch.set_num_threads(1)`` and torch's default (the number of cores). The 1-minute
load average is printed before and after.

Tasks: ``lossviz plane()`` with its defaults (``workers=None``: the load-aware choice of
``landscape.cpu_workers``), ``workers=1`` and ``workers=2``, and loss-landscapes
``random_plane(distance=1, steps=41, normalization="filter", deepcopy_model=True)`` on the same
weights and data (it must be importable: ``pip install loss-landscapes==3.0.6``, numpy only).

Run: ``python benchmarks/landscape_plane_interleaved.py --repeats 11``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time

import torch

import lossviz
from lossviz import data, landscape, models, train


def fixture():
    ds = data.two_moons(1000, noise=0.1, seed=0)
    net = models.MLP(2, (64, 64), 2, activation="tanh", seed=0)
    train.fit(
        net, torch.nn.functional.cross_entropy, ds, steps=300, optimizer="adam", lr=1e-2, progress=False
    )
    return net.eval(), ds.x, ds.y


def anchor_task(net, x, y):
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    plain = torch.nn.Sequential(
        torch.nn.Linear(2, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 2),
    )
    state = {
        k.replace("layers.0", "0").replace("layers.1", "2").replace("head", "4"): v
        for k, v in net.state_dict().items()
    }
    plain.load_state_dict(state)
    plain.eval()
    metric = Loss(torch.nn.functional.cross_entropy, x, y)

    def run():
        return loss_landscapes.random_plane(
            plain, metric, distance=1, steps=41, normalization="filter", deepcopy_model=True
        )

    return run


def measure(tasks: dict, repeats: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    for fn in tasks.values():  # warm-up
        fn()
    times = {k: [] for k in tasks}
    for _ in range(repeats):
        order = list(tasks)
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            tasks[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args(argv)
    default_threads = torch.get_num_threads()
    net, x, y = fixture()
    loss_fn = torch.nn.functional.cross_entropy
    dirs = landscape.random_directions(net, seed=0)
    try:
        anchor = anchor_task(net, x, y)
    except ImportError:
        print("loss-landscapes is not importable: pip install loss-landscapes==3.0.6")
        return 1
    tasks = {
        "lossviz plane() defaults": lambda: landscape.plane(net, loss_fn, (x, y), dirs, steps=41),
        "lossviz plane(workers=1)": lambda: landscape.plane(net, loss_fn, (x, y), dirs, steps=41, workers=1),
        "lossviz plane(workers=2)": lambda: landscape.plane(net, loss_fn, (x, y), dirs, steps=41, workers=2),
        "loss-landscapes random_plane": anchor,
    }
    print(
        f"# 41x41 plane, MLP 2-64-64-2 tanh, 1000 points; torch {torch.__version__}, lossviz {lossviz.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.repeats} interleaved repeats"
    )
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        load0 = os.getloadavg()[0]
        times = measure(tasks, args.repeats)
        load1 = os.getloadavg()[0]
        base = times["loss-landscapes random_plane"]
        print(f"\n## torch threads = {threads}; load average {load0:.2f} before, {load1:.2f} after")
        print(f"{'task':32s} {'median s':>9s} {'anchor/row (median of paired ratios)':>38s}")
        for k, ts in times.items():
            paired = statistics.median(b / t for b, t in zip(base, ts))
            print(f"{k:32s} {statistics.median(ts):9.3f} {paired:37.2f}x")
    torch.set_num_threads(default_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
