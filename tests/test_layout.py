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


# Subpackages from the bottom layer up: a module may import its own layer and the ones below, never one above.
LAYERS = ("core", "rundir", "models", "data", "planning", "training", "store", "runner", "reporting", "tuning",
          "sweeping", "api", "options", "commands", "cli")


def _modules(pkg: Path = PKG) -> dict[str, Path]:
    mods = {}
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg.parent).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[tuple[str, int]]:
    """(tuneall module, line) of EVERY import statement in a module: top level, function-local, TYPE_CHECKING."""
    def resolve(dotted):
        while dotted and dotted not in mods:
            dotted = dotted.rpartition(".")[0]
        return dotted

    found = set()
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {(resolve(a.name), node.lineno) for a in node.names if a.name.startswith("tuneall")}
        elif isinstance(node, ast.ImportFrom):
            mod = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            if mod.split(".")[0] == "tuneall":
                found |= {(resolve(f"{mod}.{a.name}"), node.lineno) for a in node.names}
    return {(m, line) for m, line in found if m and m != name}


def _graph(pkg: Path = PKG) -> dict[str, set[tuple[str, int]]]:
    mods = _modules(pkg)
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _problems(graph: dict[str, set[tuple[str, int]]]) -> list[str]:
    """Every upward arrow between layers and every import cycle, counting all import statements."""
    out = [f"{m}:{line} imports {d}, a higher layer" for m, deps in sorted(graph.items()) for d, line in sorted(deps)
           if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m)]
    edges = {m: {d for d, _ in deps} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                out.append("import cycle: " + " -> ".join([*stack[stack.index(d):], d]) if d in stack
                           else "import cycle: " + " -> ".join([*stack, d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return out


def test_no_import_cycle_and_no_upward_import_counting_every_import_statement():
    assert _problems(_graph()) == []


def test_the_layout_check_sees_a_function_local_cycle_and_a_type_checking_import(tmp_path):
    """The check is not blind where cycles hide: a function-local import back up, and one under TYPE_CHECKING."""
    import shutil

    pkg = tmp_path / "tuneall"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    assert _problems(_graph(pkg)) == []
    budget = pkg / "core" / "budget.py"
    budget.write_text(budget.read_text() + "\n\ndef _late():\n    from tuneall.tuning import driver\n")
    found = _problems(_graph(pkg))
    assert any("tuneall.core.budget:" in p and "tuneall.tuning.driver, a higher layer" in p for p in found), found
    assert any(p.startswith("import cycle:") and "tuneall.core.budget" in p for p in found), found
    errors = pkg / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from tuneall.planning.factory import TrialPlan\n")
    assert any("tuneall.core.errors:" in p and "tuneall.planning.factory" in p for p in _problems(_graph(pkg)))


def test_modules_stay_small_and_the_drivers_functions_short():
    """A reader finds a concept in a module that fits on a few screens; a driver reads as a list of steps."""
    assert {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 400} == {}
    drivers = [PKG / "tuning" / "driver.py", PKG / "sweeping" / "driver.py", PKG / "runner" / "trials.py"]
    long = [f"{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p in drivers
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef)
            and n.end_lineno - n.lineno + 1 > 60]
    assert long == []


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
