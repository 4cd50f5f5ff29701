"""pytest configuration for the notebook run (nbval).

Notebook runtime budget: nbval runs each notebook as one item per cell. This plugin adds up the
setup (kernel start) and call time of every cell of a notebook, records it, and turns the report
of the notebook's LAST cell into a failure when the total exceeds the quick-mode budget
(``LOSSVIZ_NOTEBOOK_BUDGET`` seconds, default 60). The per-notebook times are printed at the end of
the run and written to ``test-artifacts/notebook_times.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

BUDGET = float(os.environ.get("LOSSVIZ_NOTEBOOK_BUDGET", "60"))
_last_cell: dict[str, str] = {}
_elapsed: dict[str, float] = {}
_collected_times: dict[str, float] = {}


def _notebook_of(item) -> str | None:
    path = str(getattr(item, "path", getattr(item, "fspath", "")))
    if path.endswith(".ipynb"):
        return item.nodeid.split("::")[0]
    return None


# nbval waits 5 s for a finished cell's output messages (a fixed attribute, no option); on a
# shared 2-core machine they can arrive later, and the cell fails with "Timeout of 5 seconds
# exceeded waiting for output" although it ran. The execution timeout stays --nbval-cell-timeout.
OUTPUT_TIMEOUT = 60


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        nb = _notebook_of(item)
        if nb is not None:
            _last_cell[nb] = item.nodeid
            if hasattr(item, "output_timeout"):
                item.output_timeout = OUTPUT_TIMEOUT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    nb = _notebook_of(item)
    if nb is None:
        return
    report = outcome.get_result()
    if call.when in ("setup", "call"):
        _elapsed[nb] = _elapsed.get(nb, 0.0) + call.duration
    if call.when == "call" and item.nodeid == _last_cell.get(nb):
        total = _elapsed.get(nb, 0.0)
        report.user_properties.append(("notebook_seconds", total))
        if report.passed and total > BUDGET:
            report.outcome = "failed"
            report.longrepr = (
                f"{nb}: quick-mode wall time {total:.1f} s exceeds the budget of {BUDGET:.0f} s "
                "(CONTRIBUTING.md); make quick mode smaller"
            )


def pytest_runtest_logreport(report):
    for key, value in getattr(report, "user_properties", []):
        if key == "notebook_seconds":
            _collected_times[report.nodeid.split("::")[0]] = value


def pytest_terminal_summary(terminalreporter):
    if not _collected_times:
        return
    tr = terminalreporter
    tr.section("notebook quick-mode wall times")
    for nb, secs in sorted(_collected_times.items(), key=lambda kv: -kv[1]):
        flag = "  OVER BUDGET" if secs > BUDGET else ""
        tr.write_line(f"{secs:7.1f} s  {nb}{flag}")
    out = Path(tr.config.rootpath) / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "notebook_times.json").write_text(
        json.dumps(
            {"budget_s": BUDGET, "when": time.strftime("%Y-%m-%d %H:%M"), "times_s": _collected_times},
            indent=1,
        )
    )
