"""The house rules of ARCHITECTURE.md, read from the source (imports, loops, surface).

* Families (landscape, curvature, collapse, ntk, losses) are peers: no family module imports
  another family or the paper layer, at module level or lazily inside a function. The only route
  from a family to ``papers/`` is the string-based deprecation shim ``lossviz._deprecate.moved``.
* The shared base (data, models, train, widgets, testing, stats and the private floor) imports no
  family and no paper module.
* Exactly one loop over torch optimisers: only ``lossviz/train.py`` builds one (special solvers
  such as L-BFGS for unconstrained feature models are allowed).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import lossviz

ROOT = Path(lossviz.__file__).parent
FAMILIES = ("landscape", "curvature", "collapse", "ntk", "losses")
BASE = (
    "data",
    "models",
    "train",
    "optim",
    "widgets",
    "testing",
    "stats",
    "_model",
    "_validate",
    "_result",
    "_plot",
    "_runtime",
    "_deprecate",
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every lossviz module a file imports (absolute or relative, top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lossviz")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("lossviz"):
                continue
            found.add(mod)
            for a in node.names:  # `from lossviz import ntk` imports the family ntk
                found.add(f"{mod}.{a.name}")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
        ):
            arg = node.args[0] if node.args else None
            if (
                isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.startswith("lossviz")
            ):
                found.add(arg.value)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    if parts[1] in FAMILIES:
        return f"family:{parts[1]}"
    if parts[1] == "papers":
        return "papers"
    return "base"


def _files(sub: str):
    path = ROOT / sub
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    return [path.with_suffix(".py")] if path.with_suffix(".py").exists() else []


def test_the_five_families_are_packages():
    for fam in FAMILIES:
        assert (ROOT / fam / "__init__.py").exists(), f"lossviz.{fam} must be a package (lossviz/{fam}/)"
        assert (ROOT / fam / "plotting.py").exists(), f"lossviz.{fam} needs a plotting.py"


@pytest.mark.parametrize("family", FAMILIES)
def test_families_import_no_other_family_and_no_papers(family):
    bad = []
    for path in _files(family):
        for mod in _imports(path):
            layer = _layer(mod)
            if layer == "papers" or (layer and layer.startswith("family:") and layer != f"family:{family}"):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "families are peers and never import papers/:\n" + "\n".join(bad)


def test_base_imports_no_family_and_no_papers():
    bad = []
    for sub in BASE:
        for path in _files(sub):
            for mod in _imports(path):
                if _layer(mod) not in (None, "base"):
                    bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "the shared base must not depend on families or papers:\n" + "\n".join(bad)


def test_import_reader_sees_lazy_and_relative_imports(tmp_path):
    # the reader itself can fail: a lazy relative import inside a function is found
    fake = ROOT / "collapse" / "_probe_for_test.py"
    assert not fake.exists()
    src = "def f():\n    from ..losses import mixup\n    import lossviz.ntk\n"
    tree_path = tmp_path / "x.py"
    tree_path.write_text(src)
    # reuse the parser on a file placed (virtually) inside lossviz/collapse/
    fake.write_text(src)
    try:
        found = _imports(fake)
    finally:
        fake.unlink()
    assert "lossviz.losses" in found and "lossviz.ntk" in found


# a hand-written optimisation loop: zeroing grads or stepping an optimiser. Building an optimiser
# to hand to train.fit (optimizer=callable(params), e.g. for muP param groups) is fine.
LOOP = re.compile(r"\.zero_grad\(|\b(opt|optim|optimizer|optimiser)\.step\(")


# special solvers that may loop themselves (they share the callback contract via run_callbacks)
SPECIAL_SOLVERS = {"collapse/_ufm.py": "torch.optim.LBFGS"}


def _loops(text: str) -> bool:
    return bool(LOOP.search(text))


def test_exactly_one_loop_over_torch_optimisers():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel == "train.py":
            continue
        if rel in SPECIAL_SOLVERS:
            assert SPECIAL_SOLVERS[rel] in path.read_text(), f"{rel} is listed as a special solver"
            continue
        if _loops(path.read_text()):
            found.append(rel)
    assert not found, f"only lossviz/train.py may loop over a torch optimiser (use train.fit): {found}"
    assert _loops((ROOT / "train.py").read_text()), "the loop detector finds train.fit's own loop"
    assert not _loops("train.fit(net, loss, data, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))")


def test_star_import_and_every_public_module_imports():
    ns: dict = {}
    exec("from lossviz import *", ns)
    for name in lossviz.__all__:
        assert name in ns
    for info in pkgutil.walk_packages(lossviz.__path__, "lossviz."):
        importlib.import_module(info.name)


def test_no_module_shares_a_name_with_a_function_of_its_package():
    clashes = []
    for fam in FAMILIES:
        pkg = importlib.import_module(f"lossviz.{fam}")
        for info in pkgutil.iter_modules(pkg.__path__):
            obj = getattr(pkg, info.name, None)
            if obj is not None and not isinstance(obj, type(pkg)):
                clashes.append(f"lossviz.{fam}.{info.name}")
    assert not clashes, f"a module and a public name share a name: {clashes}"


def test_no_public_function_name_means_two_things_across_families():
    owners: dict[str, list[str]] = {}
    for fam in FAMILIES:
        pkg = importlib.import_module(f"lossviz.{fam}")
        for name in getattr(pkg, "__all__", []):
            owners.setdefault(name, []).append(fam)
    base = {
        n
        for mod in ("train", "optim", "data", "models", "widgets", "stats")
        for n in importlib.import_module(f"lossviz.{mod}").__all__
    }
    dup = {n: f for n, f in owners.items() if len(f) > 1 or n in base}
    assert not dup, f"one public name, several meanings: {dup}"


def test_no_min_max_parameter_names_in_public_functions():
    import inspect

    bad = []
    for fam in (*FAMILIES, "train", "optim", "data", "models", "widgets", "stats"):
        mod = importlib.import_module(f"lossviz.{fam}")
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if callable(obj):
                try:
                    params = inspect.signature(obj).parameters
                except (TypeError, ValueError):
                    continue
                bad += [f"{fam}.{name}({p})" for p in params if p in ("min", "max")]
    assert not bad, f"`min`/`max` shadow builtins: {bad}"


def test_no_reference_to_files_users_do_not_have():
    """Contributors' rules live in CONTRIBUTING.md and ARCHITECTURE.md, not in files outside the repo."""
    REPO = Path(__file__).resolve().parents[1]
    bad = []
    for path in REPO.rglob("*"):
        if not path.is_file() or any(
            p in {".venv", ".git", "build", "site", "test-artifacts", "node_modules"}
            for p in path.relative_to(REPO).parts
        ):
            continue
        if (
            path.suffix not in {".py", ".md", ".ipynb", ".toml", ".yml", ".cff", ".cfg", ".txt"}
            and path.name != "Makefile"
        ):
            continue
        text = path.read_text(errors="ignore")
        for needle in ("../shared", "CONVENTIONS.md", "CURRICULUM.md", "REVIEW.md"):
            if needle in text and path.name != "test_architecture.py":
                bad.append(f"{path.relative_to(REPO)}: {needle}")
    assert not bad, bad
