"""The package's edges: a light ``import tuneall``, no import cycles, search spaces shipped as package data, and a
non-editable install that plans and searches."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tuneall"
HEAVY = ("torch", "ray", "pandas")


def _heavy_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize("code", [
    "import tuneall",
    "import tuneall.cli; tuneall.cli.build_parser()",  # what `tuneall --help` does
    "import tuneall.api, tuneall.core.config, tuneall.rundir.results, tuneall.core.budget",
])
def test_light_imports_pay_for_no_heavy_library(code):
    assert _heavy_after(code) == []


def test_api_verbs_are_reachable_from_the_package_and_never_shadowed():
    code = ("import tuneall, tuneall.sweeping.driver, tuneall.reporting.search_report, tuneall.planning.design_classes, tuneall.tuning.driver\n"
            "import tuneall.api as api\n"
            "assert all(getattr(tuneall, v) is getattr(api, v) for v in tuneall._API), 'a module shadows a verb'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _module_imports(path: Path) -> set[str]:
    """tuneall modules a module imports at import time (top level, not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks never run
            continue
        for n in ([node] if isinstance(node, (ast.Import, ast.ImportFrom)) else []):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("tuneall"):
                found.add(n.module)
                found.update(f"{n.module}.{a.name}" for a in n.names)
            elif isinstance(n, ast.Import):
                found.update(a.name for a in n.names if a.name.startswith("tuneall"))
    return found


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        mods[name] = path
    return mods


def test_no_import_cycle_at_import_time():
    mods = _modules()
    graph = {m: {i for i in _module_imports(p) if i in mods and i != m} for m, p in mods.items()}
    # A package imports its own submodules (re-exports): that is not a cycle through its parent.
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, m, d]))
            if d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_search_spaces_are_package_data():
    from importlib import resources

    from tuneall.planning.space import load_space

    names = {p.name for p in (resources.files("tuneall") / "search_spaces").iterdir()}
    assert {"paper.yaml", "wide.yaml", "data.yaml", "tuned.yaml", "more_or_less.yaml"} <= names
    assert load_space().name == "paper"
    assert "search_spaces/*.yaml" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_non_editable_install_plans_and_searches(tmp_path):
    """`pip install .` (a wheel, not editable) into a fresh venv: the packaged spaces are found, plan and a short
    search run. The venv borrows this environment's dependencies (torch, Ray, ...) through a .pth path entry, so
    only tuneall itself is installed from the wheel."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], check=True,
                   cwd=tmp_path)
    wheel = next(dist.glob("tuneall-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # A plain path entry: the dependencies, but not this checkout's editable-install hook (.pth files in that
    # directory are not processed).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Without PYTHONPATH: a checkout on it (with the tuneall.egg-info the wheel build leaves there) would make pip
    # take tuneall as installed already and skip the wheel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, env=env)
    where = subprocess.run([str(py), "-c", "import tuneall; print(tuneall.__file__)"], capture_output=True, text=True,
                           check=True, cwd=tmp_path, env=env).stdout
    assert str(site) in where and str(ROOT) not in where  # the wheel's copy, not this checkout
    tuneall = venv / "bin" / "tuneall"
    plan = subprocess.run([str(tuneall), "plan", "--budget", "3e7"], capture_output=True, text=True, cwd=tmp_path,
                          env=env)
    assert plan.returncode == 0, plan.stderr
    assert "feasible allocation(s) for C = 3e+07" in plan.stdout
    search = subprocess.run([str(tuneall), "search", "--budget", "2e6", "--family", "cnn3", "--widths", "0.25",
                             "--depths", "1", "--k", "1,2", "--trials", "2", "--seeds", "1", "--min-steps", "20",
                             "--num-cpus", "1", "--storage-path", str(tmp_path / "results"), "--name", "w",
                             "--verbose", "0"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert search.returncode == 0, search.stdout[-2000:] + search.stderr[-2000:]
    assert "Best allocation" in search.stdout
    assert (tmp_path / "results" / "w" / "summary.md").exists()
