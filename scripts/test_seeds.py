"""Run notebooks under many seeds in quick mode and tabulate pass/fail and wall time.

``make test-seeds`` calls this for every notebook with ``SEEDS="0 1 ... 19"`` on 2 workers. Each
(notebook, seed) runs in its own kernel with ``LOSSVIZ_SEED=<seed> LOSSVIZ_QUICK=1`` and one
thread, exactly as the test suite runs it, so a failure here is a claim check (or any cell) that
fails at that seed. Results go to ``test-artifacts/seeds.json`` and ``test-artifacts/seeds.md``.

Usage::

    python scripts/test_seeds.py [--seeds 0-19 | --seeds "0 1 5"] [--workers 2] [notebook ...]

With no notebooks given, every notebook under ``notebooks/`` is run. Exit status 1 when any run
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_seeds(text: str) -> list[int]:
    """``"0-19"``, ``"0 1 5"`` or ``"0,1,5"`` -> a list of seeds."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        if "-" in part:
            lo, hi = part.split("-")
            seeds += list(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    if not seeds or min(seeds) < 0:
        raise SystemExit(f"--seeds: expected non-negative integers or ranges, got {text!r}")
    return seeds


def run_one(notebook: str, timeout: int) -> None:
    """Execute one notebook in this process's environment (called in a subprocess)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(notebook).parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "error")
        print(f"FAILED: {err[:400]}", file=sys.stderr)
        raise SystemExit(1) from None


def job(notebook: Path, seed: int, timeout: int) -> dict:
    env = dict(os.environ, LOSSVIZ_SEED=str(seed), LOSSVIZ_QUICK="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--run-one", str(notebook), "--timeout", str(timeout)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    err = ""
    if proc.returncode != 0:
        err = next(
            (ln for ln in proc.stderr.splitlines() if ln.startswith("FAILED:")), proc.stderr.strip()[-400:]
        )
    return {
        "notebook": notebook.relative_to(ROOT).as_posix() if notebook.is_relative_to(ROOT) else str(notebook),
        "seed": seed,
        "passed": proc.returncode == 0,
        "wall_s": round(wall, 1),
        "error": err,
    }


def table(results: list[dict], seeds: list[int]) -> str:
    by_nb: dict[str, dict[int, dict]] = {}
    for r in results:
        by_nb.setdefault(r["notebook"], {})[r["seed"]] = r
    head = "| notebook | passed | " + " | ".join(str(s) for s in seeds) + " | median wall s |"
    lines = [head, "|" + "---|" * (len(seeds) + 3)]
    for nb, runs in sorted(by_nb.items()):
        cells = ["ok" if runs[s]["passed"] else "FAIL" for s in seeds]
        walls = sorted(r["wall_s"] for r in runs.values())
        passed = sum(r["passed"] for r in runs.values())
        lines.append(
            f"| {Path(nb).stem} | {passed}/{len(seeds)} | "
            + " | ".join(cells)
            + f" | {walls[len(walls) // 2]:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    ap.add_argument("--out", default=str(ROOT / "test-artifacts"))
    ap.add_argument("--run-one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_one:
        run_one(args.run_one, args.timeout)
        return 0
    seeds = parse_seeds(args.seeds)
    nbs = [Path(p).resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("**/*.ipynb"))
    nbs = [p for p in nbs if ".ipynb_checkpoints" not in p.parts]
    missing = [str(p) for p in nbs if not p.exists()]
    if missing:
        raise SystemExit(f"no such notebook: {missing}")
    jobs = [(nb, s) for s in seeds for nb in nbs]
    results = []
    t0 = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{len(nbs)} notebooks x {len(seeds)} seeds on {args.workers} workers (load {load:.1f})", flush=True
    )
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for r in pool.map(lambda js: job(*js, args.timeout), jobs):
            results.append(r)
            mark = "ok  " if r["passed"] else "FAIL"
            print(
                f"{mark} seed {r['seed']:>3}  {r['wall_s']:6.1f} s  {r['notebook']}  {r['error']}", flush=True
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = table(results, seeds)
    (out / "seeds.json").write_text(
        json.dumps(
            {
                "seeds": seeds,
                "when": time.strftime("%Y-%m-%d %H:%M"),
                "load_at_start": load,
                "results": results,
            },
            indent=1,
        )
    )
    (out / "seeds.md").write_text(md + "\n")
    print("\n" + md)
    failed = [r for r in results if not r["passed"]]
    print(f"\n{len(results) - len(failed)}/{len(results)} runs passed in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
