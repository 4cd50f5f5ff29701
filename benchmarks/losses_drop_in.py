"""The lossviz classification losses as drop-ins for ``F.cross_entropy`` in a training step.

Times forward + backward of the CE-equivalent settings (``tempered_cross_entropy(tau=1)``,
``comp_sum(q=0)``, ``soft_cross_entropy`` with integer labels) against ``F.cross_entropy`` on
the same tensors, interleaved (A B A B ...), one thread, medians; then a whole training step of
a small MLP with each loss; then ``torch._dynamo.explain`` graph-break counts. Prints a table.

    OMP_NUM_THREADS=1 python benchmarks/losses_drop_in.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torch.nn.functional as F

import lossviz.losses as L

torch.set_num_threads(1)
QUICK = "--quick" in sys.argv
REPS = 15 if QUICK else 61

LOSSES = {
    "tempered_cross_entropy(tau=1)": lambda z, y: L.tempered_cross_entropy(z, y, 1.0),
    "comp_sum(q=0)": lambda z, y: L.comp_sum(z, y, 0.0),
    "soft_cross_entropy": L.soft_cross_entropy,
    "tempered_cross_entropy(tau=0.5)": lambda z, y: L.tempered_cross_entropy(z, y, 0.5),
}


def _step(fn, z, y):
    z.grad = None
    fn(z, y).backward()


def _time(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def interleaved(a, b, inner):
    """Medians of ``REPS`` timings each, alternating the order (ABBA) so drifts in machine load
    hit both sides alike."""
    ta, tb = [], []
    for _ in range(3):  # warm-up
        a(), b()
    for r in range(REPS):
        if r % 2:
            tb.append(_time(b, inner))
            ta.append(_time(a, inner))
        else:
            ta.append(_time(a, inner))
            tb.append(_time(b, inner))
    return statistics.median(ta), statistics.median(tb)


def main():
    g = torch.Generator().manual_seed(0)
    cases = [
        ("(256, 10)", torch.randn(256, 10, generator=g), torch.randint(0, 10, (256,), generator=g), 200),
        ("(512, 1000)", torch.randn(512, 1000, generator=g), torch.randint(0, 1000, (512,), generator=g), 10),
        (
            "(8, 512, 128) B,V,T",
            torch.randn(8, 512, 128, generator=g),
            torch.randint(0, 512, (8, 128), generator=g),
            5,
        ),
    ]
    cases[2][2][:, -16:] = -100  # padding labels
    print("loss fwd+bwd vs F.cross_entropy (interleaved medians, 1 thread)")
    print(f"{'shape':22s} {'loss':34s} {'F.ce us':>9s} {'loss us':>9s} {'ratio':>6s}")
    for label, z, y, inner in cases:
        z = z.clone().requires_grad_(True)
        # the noise floor: F.cross_entropy against itself
        tl, tr = interleaved(
            lambda z=z, y=y: _step(F.cross_entropy, z, y),
            lambda z=z, y=y: _step(F.cross_entropy, z, y),
            inner,
        )
        print(
            f"{label:22s} {'(control) F.cross_entropy itself':34s} {tr * 1e6:9.1f} {tl * 1e6:9.1f} {tl / tr:6.2f}"
        )
        for name, fn in LOSSES.items():
            ref = (
                (lambda f: lambda z, y: f(z, y))(F.cross_entropy)
                if "0.5" not in name
                else (lambda z, y: F.cross_entropy(z / 0.5, y))
            )
            tl, tr = interleaved(
                lambda fn=fn, z=z, y=y: _step(fn, z, y), lambda ref=ref, z=z, y=y: _step(ref, z, y), inner
            )
            print(f"{label:22s} {name:34s} {tr * 1e6:9.1f} {tl * 1e6:9.1f} {tl / tr:6.2f}")

    # a whole training step (MLP 64-256-256-10, batch 256, SGD)
    x = torch.randn(256, 64, generator=g)
    yy = torch.randint(0, 10, (256,), generator=g)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def train_step(fn):
        opt.zero_grad()
        fn(net(x), yy).backward()
        opt.step()

    print("\ntraining step, MLP 64-256-256-10, batch 256")
    for name in ("tempered_cross_entropy(tau=1)", "soft_cross_entropy"):
        tl, tr = interleaved(lambda n=name: train_step(LOSSES[n]), lambda: train_step(F.cross_entropy), 20)
        print(f"{name:34s} F.ce {tr * 1e6:8.1f} us  loss {tl * 1e6:8.1f} us  ratio {tl / tr:5.2f}")

    print("\ntorch._dynamo.explain graph breaks (logits (64, 10), int64 labels, ignore_index padding)")
    import torch._dynamo as dynamo

    z = torch.randn(64, 10)
    y = torch.randint(0, 10, (64,))
    y[:4] = -100
    for name, fn in {**LOSSES, "ldr_kl": lambda z, y: L.ldr_kl(z, y, 1.0), "z_loss": L.z_loss}.items():
        dynamo.reset()
        try:
            ex = dynamo.explain(fn)(z, y)
            print(f"{name:34s} graphs {ex.graph_count}  breaks {ex.graph_break_count}")
        except Exception as e:  # noqa: BLE001
            print(f"{name:34s} explain failed: {type(e).__name__}: {str(e)[:80]}")


if __name__ == "__main__":
    main()
