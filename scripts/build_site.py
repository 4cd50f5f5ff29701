"""Build the static course site: execute every notebook in quick mode, render HTML into site/.

Usage: ``python scripts/build_site.py [--out site] [--jobs 2] [--timeout 300] [notebooks ...]``
(``make site``). Each notebook runs in its own folder with ``LOSSVIZ_QUICK=1``; plotly figures use
the ``notebook`` renderer (plotly.js embedded once per page), so they stay interactive in the
HTML without a kernel; widget cells show their static default figure next to the widget, and
sweeps that a slider scrubs in the notebook are shown as plotly figures with built-in sliders
(``lossviz.widgets.frames_figure``). The index page is ``notebooks/README.md`` with links to the
rendered pages. A notebook that fails stops the build with the notebook and cell named.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    pass


def _rel(path: Path, base: Path) -> Path:
    try:
        return path.resolve().relative_to(base)
    except ValueError:
        return Path(path.name)


def execute_and_render(path: str, out_dir: str, timeout: int) -> str:
    """Execute one notebook and write its HTML; return the output path."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    src = Path(path)
    nb = nbformat.read(src, as_version=4)
    env_backup = dict(os.environ)
    os.environ.update(
        LOSSVIZ_QUICK="1", PLOTLY_RENDERER="notebook", MPLBACKEND="module://matplotlib_inline.backend_inline"
    )
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(src.parent)}}
        )
        try:
            client.execute()
        except CellExecutionError as exc:
            index = next(
                (
                    i
                    for i, c in enumerate(nb.cells)
                    if c.get("cell_type") == "code"
                    and any(o.get("output_type") == "error" for o in c.get("outputs", []))
                ),
                None,
            )
            first = str(exc).strip().splitlines()
            raise NotebookFailed(
                f"{_rel(src, ROOT)}: cell {index} failed during `make site`:\n" + "\n".join(first[-15:])
            ) from None
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": src.stem}})
    rel = _rel(src, NB_DIR).with_suffix(".html")
    target = Path(out_dir) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body)
    return str(target)


def render_index(out: Path) -> Path:
    """notebooks/README.md as the index page, with .ipynb links pointing at the rendered pages."""
    import mistune

    text = (NB_DIR / "README.md").read_text().replace(".ipynb)", ".html)")
    body = mistune.html(text) if callable(getattr(mistune, "html", None)) else mistune.markdown(text)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>lossviz notebooks</title>
<style>body{{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .5em;vertical-align:top}}</style>
</head><body><h1>{html.escape("lossviz")}</h1>{body}</body></html>"""
    index = out / "index.html"
    index.write_text(page)
    return index


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to build (default: all)")
    ap.add_argument("--out", default=str(ROOT / "site"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300, help="per-cell timeout in seconds")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(
        p for p in NB_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    if not paths:
        print("no notebooks to build", file=sys.stderr)
        return 1
    failed = []

    def report(result_fn):
        try:
            print(f"built {Path(result_fn()).relative_to(out)}")
        except NotebookFailed as exc:
            failed.append(str(exc))

    if args.jobs <= 1:
        for p in paths:
            report(lambda p=p: execute_and_render(str(p), str(out), args.timeout))
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for fut in [pool.submit(execute_and_render, str(p), str(out), args.timeout) for p in paths]:
                report(fut.result)
    if failed:
        print("\n\n".join(failed), file=sys.stderr)
        print(f"make site: {len(failed)} notebook(s) failed", file=sys.stderr)
        return 1
    print(f"wrote {render_index(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
