"""Refresh notebooks/README.md from the notebooks on disk and the last measured runtimes.

For every table row whose id has a notebook ``notebooks/<track>/<ID>_*.ipynb``: link it, mark it
*done*, and fill the quick-mode runtime from ``test-artifacts/notebook_times.json`` (written by the
nbval run of ``make test``), rounded up to 5 s. Rows without a notebook stay *planned*.

Usage: ``python scripts/update_notebook_map.py [times.json]``
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    times_file = Path(argv[0]) if argv else ROOT / "test-artifacts" / "notebook_times.json"
    times = json.loads(times_file.read_text())["times_s"] if times_file.exists() else {}
    times = {Path(k).name: v for k, v in times.items()}
    readme = NB / "README.md"
    lines = readme.read_text().splitlines()
    out = []
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and len(cells[0]) == 3 and cells[0][0] in "LNKT" and cells[0][1:].isdigit():
            nid = cells[0]
            found = sorted(NB.glob(f"*/{nid}_*.ipynb"))
            if found:
                rel = found[0].relative_to(NB)
                cells[1] = f"[{found[0].stem}]({rel.as_posix()})"
                cells[4] = "done"
                if found[0].name in times:
                    cells[5] = f"~{5 * math.ceil(times[found[0].name] / 5):.0f} s"
            else:
                cells[1], cells[4], cells[5] = "-", "planned", "-"
            line = "| " + " | ".join(cells) + " |"
        out.append(line)
    readme.write_text("\n".join(out) + "\n")
    print(f"updated {readme.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
