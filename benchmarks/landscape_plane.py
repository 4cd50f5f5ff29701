"""Benchmarks 1 and 3 of the landscape issue: a 41x41 loss plane.

Fixture: MLP 2-64-64-2 with tanh (4,482 parameters) trained on 1,000 two-moons points.
Compares, with ``torch.set_num_threads(1)`` and medians over ``--repeats`` runs:

* the floor: 1,681 x (one forward pass of the whole batch + the loss), a plain loop under no_grad;
* ``lossviz.landscape.plane`` with ``workers=1`` and ``workers=2`` (threads, one core each), and with
  ``--intra-op`` also ``workers=1`` with two intra-op torch threads (the other way to use both cores;
  OpenMP spin-waiting makes it 5-20x slower when the machine is shared);
* loss-landscapes 3.0.6 ``random_plane`` (same model, data, 41x41 grid, filter normalisation), run in
  a separate interpreter because it is not a lossviz dependency: set ``LOSSVIZ_ANCHOR_PYTHON``
  (default ``/tmp/benchvenv/bin/python``, made with
  ``python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install torch==2.13.0 loss-landscapes==3.0.6 numpy``).
  If that interpreter is missing, the anchor row is skipped.

Run: ``OMP_NUM_THREADS=1 python benchmarks/landscape_plane.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import lossviz
from lossviz import data, landscape, models, train

ANCHOR = r"""
import json, sys, time, statistics, torch
torch.set_num_threads(1)
import loss_landscapes
from loss_landscapes.metrics import Loss
blob = torch.load(sys.argv[1])
x, y, state, repeats = blob["x"], blob["y"], blob["state"], blob["repeats"]
net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                          torch.nn.Linear(64, 2))
net.load_state_dict(state)
net.eval()
metric = Loss(torch.nn.functional.cross_entropy, x, y)
times, cpu = [], []
for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = loss_landscapes.random_plane(net, metric, distance=1, steps=41, normalization="filter", deepcopy_model=True)
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
print(json.dumps({"times": times, "cpu": cpu, "shape": list(out.shape)}))
"""


def fixture():
    ds = data.two_moons(1000, noise=0.1, seed=0)
    net = models.MLP(2, (64, 64), 2, activation="tanh", seed=0)
    train.fit(
        net, torch.nn.functional.cross_entropy, ds, steps=300, optimizer="adam", lr=1e-2, progress=False
    )
    assert sum(p.numel() for p in net.parameters()) == 4482
    return net.eval(), ds.x, ds.y


def median_time(fn, repeats):
    """(median wall s, wall times, median process CPU s)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), times, statistics.median(cpu)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--intra-op",
        action="store_true",
        help="also time workers=1 with 2 intra-op threads (slow on a busy machine)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    net, x, y = fixture()
    loss_fn = torch.nn.functional.cross_entropy
    G = 41 * 41

    def floor():
        with torch.no_grad():
            for _ in range(G):
                loss_fn(net(x), y).item()

    dirs = landscape.random_directions(net, seed=0)
    rows = {}
    rows["floor: 1681 x (forward + loss)"] = median_time(floor, args.repeats)
    for w in (1, 2):
        rows[f"lossviz plane, workers={w}"] = median_time(
            lambda w=w: landscape.plane(net, loss_fn, (x, y), dirs, steps=41, workers=w), args.repeats
        )
    rows["lossviz plane, engine='vmap' (chunks of 64)"] = median_time(
        lambda: landscape.plane(net, loss_fn, (x, y), dirs, steps=41, engine="vmap"), args.repeats
    )
    if args.intra_op:
        torch.set_num_threads(2)
        rows["lossviz plane, workers=1, 2 intra-op threads"] = median_time(
            lambda: landscape.plane(net, loss_fn, (x, y), dirs, steps=41, workers=1), args.repeats
        )
        torch.set_num_threads(1)
    anchor_py = os.environ.get("LOSSVIZ_ANCHOR_PYTHON", "/tmp/benchvenv/bin/python")
    if os.path.exists(anchor_py):
        with tempfile.TemporaryDirectory() as tmp:
            blob = os.path.join(tmp, "fixture.pt")
            state = {
                k.replace("layers.0", "0").replace("layers.1", "2").replace("head", "4"): v
                for k, v in net.state_dict().items()
            }
            torch.save({"x": x, "y": y, "state": state, "repeats": args.repeats + 1}, blob)
            script = os.path.join(tmp, "anchor.py")
            with open(script, "w") as f:
                f.write(ANCHOR)
            env = dict(os.environ, OMP_NUM_THREADS="1")
            out = subprocess.run(
                [anchor_py, script, blob], capture_output=True, text=True, env=env, check=True
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            times = res["times"][1:]
            rows["loss-landscapes 3.0.6 random_plane"] = (
                statistics.median(times),
                times,
                statistics.median(res["cpu"][1:]),
            )
    else:
        print(f"(anchor interpreter {anchor_py} not found: skipping loss-landscapes)")
    base = rows.get("loss-landscapes 3.0.6 random_plane")
    fl = rows["floor: 1681 x (forward + loss)"][0]
    print(
        f"# 41x41 plane, MLP 2-64-64-2 tanh, 1000 points; torch {torch.__version__}, lossviz {lossviz.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, medians of {args.repeats} runs, 1 thread"
    )
    print("# wall = elapsed time; cpu = process CPU time (all threads), which the other jobs on a shared")
    print("# machine do not inflate; 'vs' columns are ratios of wall medians (anchor / row, row / floor)")
    print(f"{'method':46s} {'wall s':>7s} {'cpu s':>7s} {'vs anchor':>10s} {'vs floor':>9s}   wall runs")
    for name, (med, times, cpu) in rows.items():
        va = f"{base[0] / med:9.2f}x" if base else "      n/a"
        print(f"{name:46s} {med:7.3f} {cpu:7.3f} {va:>10s} {med / fl:8.2f}x   {[round(t, 3) for t in times]}")


if __name__ == "__main__":
    sys.exit(main())
