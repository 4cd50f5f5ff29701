"""Build the course site: execute the notebooks in quick mode (cached), render them with Sphinx.

Usage: ``python scripts/build_site.py [--out site] [--jobs 2] [--timeout 300] [notebooks ...]``
(``make site``). The tool chain is Sphinx + myst-nb + sphinx-book-theme (the Jupyter Book 1
stack): it builds offline, unlike Jupyter Book 2 / mystmd, which downloads its web theme at build
time. Steps:

1. **Execute** every notebook in its own kernel with ``LOSSVIZ_QUICK=1`` and one thread
   (``--jobs`` notebooks at a time). A notebook whose cells, the ``lossviz`` sources and the build
   settings are unchanged since the last build is **not re-executed**: its executed copy is read
   from the cache (``--cache``, default ``build/site/cache``, keyed by a hash of the cells and
   the build settings, as jupyter-cache does). A failing notebook stops
   the build with the notebook and the cell named; nothing is rendered then. ``--rerun``
   ignores the cache (the log marks cached notebooks that ran against other ``lossviz`` sources).
2. **Clean the outputs for students**: stderr (warnings, progress bars) is removed from the pages
   and the warnings are listed in the build log, by notebook and cell, so their causes get fixed;
   plotly figures become a ``<div>`` and one ``Plotly.newPlot`` call against the **one shared**
   ``_static/plotly.min.js`` (no copy of plotly.js per page), so kernel-free sliders
   (``lossviz.widgets.panel_frames``: frames + slider) stay interactive; a live widget (needs a
   kernel) is replaced by a note pointing at the launch buttons and at its kernel-free copy.
3. **Stage** a Sphinx source tree (a temporary folder beside the cache): ``book/`` (conf.py, templates, static
   files), the executed notebooks in their track folders, a students' index generated from the
   notebooks' title cells and the map ``notebooks/README.md`` (what each notebook teaches,
   prerequisites, time), the sidebar by track and an API reference (autosummary over ``lossviz``).
4. **Render** with ``sphinx-build`` into ``--out``; MathJax 3 is bundled into ``_static`` (from
   ``$LOSSVIZ_MATHJAX``, the build cache, or the npm package ``mathjax@3``), so math renders
   offline. The build fails if any page loads a resource from another host or the site is larger
   than ``--max-mb`` (50 MB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
BOOK_DIR = ROOT / "book"
WORK_DIR = ROOT / "build" / "site"
# Bump when the execution settings change meaning (invalidates every cached notebook).
EXEC_VERSION = "1"
MATHJAX_VERSION = "3.2.2"
KERNEL_ENV = {
    "LOSSVIZ_QUICK": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",  # plain tqdm bars off; tqdm.auto's widget bars are dropped in clean_outputs
    "PLOTLY_RENDERER": "plotly_mimetype",  # figures as JSON; rewritten against the shared plotly.js
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}
# Sidebar captions, in this order; notebooks outside these folders go under "Notebooks".
TRACKS = {
    "": "Start here",
    "landscape": "Loss landscapes and curvature (L)",
    "collapse": "Neural collapse (N)",
    "ntk": "Neural tangent kernels (K)",
    "temperature": "Temperature and loss functions (T)",
}
WIDGET_NOTE = (
    '<p class="lossviz-widget-note">Interactive widget: it needs a running Python kernel. Launch this '
    "notebook on Binder or Colab (rocket button at the top of the page) or run it locally with "
    "<code>make lab</code>. Where the notebook shows a kernel-free copy of the figure, it follows "
    "below.</p>"
)
WARNING_RE = re.compile(r"\b[A-Z]\w*Warning\b")
PROGRESS_RE = re.compile(r"\d+/\d+ \[")  # a tqdm bar's text: "desc:  40%|####  | 2/5 [00:01<...]"


class NotebookFailed(RuntimeError):
    pass


def _rel(path: Path, base: Path) -> Path:
    try:
        return path.resolve().relative_to(base)
    except ValueError:
        return Path(path.name)


# --------------------------------------------------------------------------- 1. execution (cached)


def library_hash() -> str:
    """Hash of the ``lossviz`` sources: a library change re-executes the notebooks."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "lossviz").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def notebook_key(nb) -> str:
    """Cache key: the notebook's cells (type, source, tags) and the build settings.

    Like jupyter-cache, the key ignores the library: a notebook whose cells did not change is not
    re-executed after a change in ``lossviz`` (``--rerun`` re-executes everything; the build log
    says which cached notebooks ran against other ``lossviz`` sources).
    """
    cells = [
        [c.get("cell_type"), c.get("source"), sorted(c.get("metadata", {}).get("tags", []))] for c in nb.cells
    ]
    payload = json.dumps([EXEC_VERSION, KERNEL_ENV, cells], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def execute_cached(
    path: str, cache_dir: str, timeout: int, lib_hash: str, rerun: bool = False
) -> tuple[str, str | None]:
    """Execute one notebook unless the cache has it.

    Returns the executed notebook's path and, when it came from the cache, the ``lossviz`` hash
    it ran against (``None`` when it was executed now).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    src = Path(path)
    nb = nbformat.read(src, as_version=4)
    key = notebook_key(nb)
    cached = Path(cache_dir) / _rel(src, NB_DIR)
    if cached.exists() and not rerun:
        try:
            meta = nbformat.read(cached, as_version=4).metadata.get("lossviz_site", {})
            if meta.get("key") == key:
                return str(cached), meta.get("lossviz", "")
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
            pass
    env_backup = dict(os.environ)
    os.environ.update(KERNEL_ENV)
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
            first = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()  # no colour codes
            raise NotebookFailed(
                f"{_rel(src, ROOT)}: cell {index} failed during `make site`:\n" + "\n".join(first[-15:])
            ) from None
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    nb.metadata["lossviz_site"] = {"key": key, "lossviz": lib_hash}
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(cached)
    return str(cached), None


# --------------------------------------------------------------------------- 2. outputs for students


def shrink_arrays(obj):
    """float64 arrays of a plotly figure (``{"dtype": "f8", "bdata": ...}``) as float32: half the bytes.

    Plotly draws with about 4 significant digits and shows about as many on hover, so float32's 7
    are invisible; the figure data is most of a page's weight.
    """
    import base64

    import numpy as np

    if isinstance(obj, dict):
        if obj.get("dtype") == "f8" and isinstance(obj.get("bdata"), str):
            a = np.frombuffer(base64.b64decode(obj["bdata"]), dtype="<f8")
            with np.errstate(over="ignore"):
                b = a.astype("<f4")
            if np.array_equal(np.isfinite(a), np.isfinite(b)):  # no overflow to inf
                return {**obj, "dtype": "f4", "bdata": base64.b64encode(b.tobytes()).decode()}
            return obj
        return {k: shrink_arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shrink_arrays(v) for v in obj]
    return obj


def plotly_html(fig: dict) -> str:
    """A plotly figure as a div + ``Plotly.newPlot`` call, using the page's shared plotly.js."""
    import plotly.io as pio

    return pio.to_html(
        shrink_arrays(fig),
        include_plotlyjs=False,
        full_html=False,
        validate=False,
        auto_play=False,
        default_width="100%",
        default_height="480px",
        config={"responsive": True, "displaylogo": False},
    )


NOTEBOOK_LINK = re.compile(r"""(\]\(|href=["'])(?![a-z][a-z0-9+.-]*:|/)([^)"'#\s]+)\.ipynb""", re.I)


def _site_links(text):
    """Relative links to notebooks in an output (e.g. the map the tour displays) point at pages."""
    if isinstance(text, list):
        text = "".join(text)
    return NOTEBOOK_LINK.sub(r"\1\2.html", text)


BADGE_RE = re.compile(r"^.*(colab-badge\.svg|mybinder\.org/badge_logo\.svg).*$\n?", re.M)


def strip_launch(nb) -> None:
    """Drop the notebook's own launch badges (remote images) and its Colab/fresh-kernel set-up cell:
    the site has launch buttons of its own, and its pages load nothing from other hosts."""
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and "setup" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.get("cell_type") == "markdown":
            cell["source"] = BADGE_RE.sub("", cell.get("source", ""))
        cells.append(cell)
    nb.cells = cells


def clean_outputs(nb, name: str) -> list[str]:
    """Rewrite a notebook's outputs for the site (in place); return the warnings it printed."""
    strip_launch(nb)
    warnings = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        outputs, noted = [], False
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                found = sorted(set(WARNING_RE.findall(text)))
                if found:
                    line = next((ln for ln in text.splitlines() if WARNING_RE.search(ln)), "").strip()
                    warnings.append(f"{name}: cell {index}: {line[:200]}")
                continue
            data = out.get("data")
            if kind in ("display_data", "execute_result") and data is not None:
                if "application/vnd.plotly.v1+json" in data:
                    out["data"] = {"text/html": plotly_html(data["application/vnd.plotly.v1+json"])}
                elif "application/vnd.jupyter.widget-view+json" in data:
                    plain = data.get("text/plain", "")
                    if noted or PROGRESS_RE.search("".join(plain) if isinstance(plain, list) else plain):
                        continue  # a progress bar (tqdm.auto), or a second widget of the same cell
                    out["data"] = {"text/html": WIDGET_NOTE}
                    noted = True
                for mime in ("text/html", "text/markdown"):
                    if mime in out["data"]:
                        out["data"][mime] = _site_links(out["data"][mime])
            outputs.append(out)
        cell["outputs"] = outputs
    nb.metadata.pop("widgets", None)  # widget state: nothing on the site can use it
    return warnings


# --------------------------------------------------------------------------- 3. students' index


@dataclass
class Entry:
    """What the students' index says about one notebook (all derived from the notebook and the map)."""

    rel: Path  # path under notebooks/ (or the bare file name)
    id: str
    title: str
    track: str
    paper: str = ""
    teaches: str = ""
    runtime: str = ""
    minutes: int = 0
    prerequisites: list[str] = field(default_factory=list)

    @property
    def doc(self) -> str:
        return self.rel.with_suffix("").as_posix()


def _field(text: str, label: str) -> str:
    """The paragraph after ``**Label.**`` (or ``**Label:**``) in a title cell."""
    m = re.search(rf"\*\*{label}[^*]*\*\*\s*(.+?)(?:\n\s*\n|\Z)", text, flags=re.S | re.I)
    return " ".join(m.group(1).split()) if m else ""


def read_map(path: Path = NB_DIR / "README.md") -> dict[str, dict[str, str]]:
    """The notebook map's table as ``{id: {column: text}}`` (columns by their header names)."""
    if not path.exists():
        return {}
    rows, header = {}, None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            header = None if not rows and header is None else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        if row.get("id"):
            rows[row["id"]] = row
    return rows


def describe(nb, rel: Path, known_ids: set[str], map_rows: dict[str, dict[str, str]]) -> Entry:
    """Derive a notebook's index entry from its title cell, its text and its row in the map."""
    stem = rel.stem
    nb_id = stem.split("_", 1)[0]
    track = rel.parts[0] if len(rel.parts) > 1 else ""
    md = [c.source for c in nb.cells if c.get("cell_type") == "markdown"]
    head = md[0] if md else ""
    m = re.search(r"^#\s+(.+)$", head, flags=re.M)
    title = m.group(1).strip() if m else stem.replace("_", " ")
    title = re.sub(rf"^{re.escape(nb_id)}\s*[·:\-–]\s*", "", title)
    row = {k: v for k, v in map_rows.get(nb_id, {}).items() if v.strip() not in ("", "-")}
    teaches = row.get("claim") or _field(head, "The claim")
    if not teaches:  # a tour: its first paragraph after the heading
        paras = [p for p in re.split(r"\n\s*\n", head) if p.strip() and not p.lstrip().startswith("#")]
        teaches = " ".join(paras[0].split()) if paras else ""
    runtime = row.get("quick runtime") or ""
    if not runtime:
        m = re.search(r"runtime[^:]*:\**\s*(.+?)(?:\.|\n|$)", head, flags=re.I)
        runtime = m.group(1).strip() if m else ""
    # Time to work through: reading at ~150 words/min (math-heavy text), ~2 min per code cell to
    # run and read its output, ~5 min per exercise; rounded up to 5 min.
    words = sum(len(s.split()) for s in md)
    code = sum(1 for c in nb.cells if c.get("cell_type") == "code")
    exercises = sum(1 for c in nb.cells if c.get("cell_type") == "code" and "check_prediction(" in c.source)
    minutes = words / 150 + 2 * code + 5 * exercises
    minutes = max(5, 5 * round(minutes / 5 + 0.49))
    mentioned = set(re.findall(r"\b([LNKT]\d\d)\b", "\n".join(md)))
    prereq = sorted(mentioned & known_ids - {nb_id}, key=lambda s: ("LNKT".index(s[0]), s))
    if row.get("prerequisites"):
        prereq = [p.strip() for p in re.split(r"[,;]", row["prerequisites"]) if p.strip() not in ("", "-")]
    if nb_id != "00" and "00" in known_ids and "00" not in prereq:
        prereq.insert(0, "00")
    return Entry(
        rel=rel,
        id=nb_id,
        title=title,
        track=track,
        paper=_field(head, "Paper") or row.get("paper", ""),
        teaches=teaches,
        runtime=runtime.lstrip("~").strip(),
        minutes=minutes,
        prerequisites=prereq,
    )


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def students_index(entries: list[Entry]) -> tuple[str, str]:
    """The MyST text of the students' index: per track, what/prerequisites/time; and the sidebar."""
    by_id = {e.id: e for e in entries}
    tracks = [t for t in TRACKS if any(e.track == t for e in entries)]
    tracks += sorted({e.track for e in entries} - set(tracks))
    parts = []
    toctrees = []
    for t in tracks:
        caption = TRACKS.get(t) or "Notebooks"
        group = sorted((e for e in entries if e.track == t), key=lambda e: e.rel.as_posix())
        parts.append(f"## {caption}\n")
        for e in group:
            pre = ", ".join(
                f"[{p} · {by_id[p].title}]({by_id[p].rel.as_posix()})" if p in by_id else p
                for p in e.prerequisites
            )
            heading = f"{e.id} · {e.title}" if e.id != e.rel.stem else e.title
            lines = [f"### [{heading}]({e.rel.as_posix()})\n"]
            if e.teaches:
                lines.append(f"**What it teaches.** {_md_escape(e.teaches)}\n")
            if e.paper:
                lines.append(f"**Paper.** {e.paper}\n")
            lines.append(f"**Prerequisites.** {pre or 'none'}\n")
            time = f"about {e.minutes} min to work through"
            if e.runtime:
                time += f"; runs in {e.runtime} in quick mode"
            lines.append(f"**Time.** {time}.\n")
            parts.append("\n".join(lines))
        toctrees.append(
            "```{toctree}\n:hidden:\n:caption: "
            + caption
            + "\n\n"
            + "\n".join(e.doc for e in group)
            + "\n```\n"
        )
    return "\n".join(parts), "\n".join(toctrees)


# --------------------------------------------------------------------------- 4. assets and Sphinx


def find_mathjax(cache: Path) -> Path:
    """A folder with MathJax 3's ``tex-mml-chtml.js`` (and its fonts/extensions) for ``_static``.

    Looked for in ``$LOSSVIZ_MATHJAX``, then in the build cache; else the npm package
    ``mathjax@3`` is fetched once with ``npm pack`` (the package registry, not a CDN) into the
    cache. Without any of these the build stops with a hint.
    """
    candidates = [Path(os.environ["LOSSVIZ_MATHJAX"])] if os.environ.get("LOSSVIZ_MATHJAX") else []
    target = cache / f"mathjax-{MATHJAX_VERSION}"
    candidates.append(target)
    for c in candidates:
        for d in (c, c / "es5", c / "package" / "es5"):
            if (d / "tex-mml-chtml.js").exists():
                return d
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "make site: MathJax 3 is needed for offline math: install Node.js/npm (the build runs "
            f"`npm pack mathjax@{MATHJAX_VERSION}` once), or unpack the npm package mathjax@3 and set "
            "LOSSVIZ_MATHJAX to its folder"
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", "--silent", f"mathjax@{MATHJAX_VERSION}"], cwd=tmp, check=True, capture_output=True
        )
        (tgz,) = Path(tmp).glob("mathjax-*.tgz")
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
            tar.extractall(tmp, members=members, **safe)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(Path(tmp) / "package" / "es5"), target)
    return target


def copy_mathjax(src: Path, dest: Path) -> None:
    """Only what CommonHTML output needs: the combined component, TeX extensions, fonts."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "tex-mml-chtml.js", dest / "tex-mml-chtml.js")
    for sub in ("input/tex/extensions", "output/chtml/fonts/woff-v2", "a11y", "ui"):
        if (src / sub).exists():
            shutil.copytree(src / sub, dest / sub, dirs_exist_ok=True)


def stage(src: Path, entries: list[Entry], executed: dict[Path, object], api: bool) -> None:
    """Write the Sphinx source tree: book/, the executed notebooks, index, API reference."""
    import nbformat

    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(BOOK_DIR, src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, nb in executed.items():
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    index_text, toctrees = students_index(entries)
    if api:
        toctrees += "\n```{toctree}\n:hidden:\n:caption: Reference\n\napi/index\n```\n"
    else:
        shutil.rmtree(src / "api", ignore_errors=True)
    page = (src / "index.md").read_text()
    page = page.replace("<!-- students-index -->", index_text).replace("<!-- sidebar -->", toctrees)
    (src / "index.md").write_text(page)


def run_sphinx(src: Path, out: Path, doctrees: Path, log: Path) -> int:
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-d", str(doctrees), "-w", str(log)]
    cmd += [str(src), str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env).returncode


EXTERNAL_RESOURCE = re.compile(
    r"""<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc=["']?(?:https?:)?//|"""
    r"""<link\b[^>]*\bhref=["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:https?:)?//""",
    re.I,
)


def external_resources(out: Path) -> list[str]:
    """Pages and style sheets of the site that load something from another host."""
    bad = []
    for p in list(out.rglob("*.html")) + list(out.rglob("*.css")):
        m = EXTERNAL_RESOURCE.search(p.read_text(errors="replace"))
        if m:
            bad.append(f"{p.relative_to(out)}: {m.group(0)[:80]}")
    return bad


HREF = re.compile(r"""<a\b[^>]*\bhref=["']([^"'#?]+)[^"']*["']""", re.I)


def broken_links(out: Path) -> list[str]:
    """Links between pages of the site whose target file does not exist (e.g. a notebook links a
    file that is not on the site)."""
    bad = []
    for page in out.rglob("*.html"):
        for href in set(HREF.findall(page.read_text(errors="replace"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", href, flags=re.I) or href.startswith("//"):
                continue  # another site (launch buttons, papers): not a resource of this one
            target = (page.parent / href).resolve()
            if not target.exists():
                bad.append(f"{page.relative_to(out)} -> {href}")
    return sorted(bad)


def site_size(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to build (default: all)")
    ap.add_argument("--out", default=str(ROOT / "site"))
    ap.add_argument("--cache", default=str(WORK_DIR / "cache"), help="executed notebooks, MathJax")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300, help="per-cell timeout in seconds")
    ap.add_argument("--rerun", action="store_true", help="re-execute notebooks the cache has")
    ap.add_argument("--no-api", action="store_true", help="skip the API reference (faster)")
    ap.add_argument("--max-mb", type=float, default=50.0, help="fail when the site is larger")
    args = ap.parse_args(argv)
    import nbformat

    out, cache = Path(args.out).resolve(), Path(args.cache).resolve()
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(
        p for p in NB_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    if not paths:
        print("no notebooks to build", file=sys.stderr)
        return 1
    lib = library_hash()
    failed, done = [], {}

    def report(path, result_fn):
        try:
            executed, ran_against = result_fn()
            done[path] = executed
            if ran_against is None:
                print(f"executed {_rel(path, ROOT)}", flush=True)
            else:
                stale = " (lossviz changed since: --rerun to refresh)" if ran_against != lib else ""
                print(f"cached   {_rel(path, ROOT)}{stale}", flush=True)
        except NotebookFailed as exc:
            failed.append(str(exc))

    if args.jobs <= 1:
        for p in paths:
            report(p, lambda p=p: execute_cached(str(p), str(cache), args.timeout, lib, args.rerun))
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futs = [
                (p, pool.submit(execute_cached, str(p), str(cache), args.timeout, lib, args.rerun))
                for p in paths
            ]
            for p, fut in futs:
                report(p, fut.result)
    if failed:
        print("\n\n".join(failed), file=sys.stderr)
        print(f"make site: {len(failed)} notebook(s) failed", file=sys.stderr)
        return 1

    map_rows = read_map()
    rels = {p: _rel(p, NB_DIR) for p in paths}
    known = {r.stem.split("_", 1)[0] for r in rels.values()}
    executed, entries, warnings = {}, [], []
    for p in paths:
        nb = nbformat.read(done[p], as_version=4)
        rel = rels[p]
        original = nbformat.read(p, as_version=4)
        strip_launch(original)
        entries.append(describe(original, rel, known, map_rows))
        warnings += clean_outputs(nb, rel.as_posix())
        executed[rel] = nb
    cache.mkdir(parents=True, exist_ok=True)
    mathjax = find_mathjax(cache)
    log = cache.parent / f"sphinx-warnings-{out.name}.txt"
    with tempfile.TemporaryDirectory(prefix="site-src-", dir=cache.parent) as tmp:
        src = Path(tmp) / "src"
        stage(src, entries, executed, api=not args.no_api)
        static = src / "_static"
        static.mkdir(exist_ok=True)
        import plotly

        shutil.copy2(
            Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js"
        )
        copy_mathjax(mathjax, static / "mathjax")
        if out.exists():
            shutil.rmtree(out)
        rc = run_sphinx(src, out, Path(tmp) / "doctrees", log)
    if rc != 0:
        print(f"make site: sphinx-build failed (exit {rc}); see {log}", file=sys.stderr)
        return 1
    for p in (out / "_static").rglob("*.js.map"):  # source maps: for the theme's developers only
        p.unlink()
    # The download button offers the notebook as students get it: the repository's, without outputs.
    for p, rel in rels.items():
        target = out / "_sources" / rel
        if target.parent.exists():
            shutil.copy2(p, target)
    sphinx_warnings = [ln for ln in log.read_text().splitlines() if "WARNING" in ln] if log.exists() else []
    if sphinx_warnings:
        print(f"sphinx: {len(sphinx_warnings)} warning(s), listed in {log}")
    if warnings:
        print("warnings printed by notebooks (removed from the pages; fix their causes):")
        print("\n".join(f"  {w}" for w in warnings))
    bad = external_resources(out)
    if bad:
        print("make site: pages load resources from other hosts:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    links = broken_links(out)
    if links:
        print(f"{len(links)} broken link(s) between pages (fix them in the notebooks):")
        print("\n".join(f"  {ln}" for ln in links))
    size = site_size(out) / 2**20
    print(f"wrote {out / 'index.html'} ({len(paths)} notebooks, {size:.1f} MB)")
    if size > args.max_mb:
        print(f"make site: the site is {size:.1f} MB, over the {args.max_mb:g} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
