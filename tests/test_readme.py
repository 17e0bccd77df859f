"""The README's Python snippets execute as written, in order, in one namespace: the fast test binds every tuneall
call to the real signatures (stand-ins for the search); the slow test runs them for real with small settings."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_snippets():
    code = blocks()
    assert len(code) >= 3 and any("tuneall.search(" in c for c in code)
    for c in code:
        compile(c, "README.md", "exec")


def _small(search):
    """tuneall.search as the README calls it, with the budget, trials and seeds of a test."""
    def small(**kw):
        inspect.signature(search).bind(**kw)  # the README's arguments exist as written
        kw.update(budget=2e6, min_steps=20, trials=2, seeds=1, storage_path=SMALL["storage"], verbose=0)
        return search(**kw)
    return small


SMALL: dict = {}


@pytest.mark.slow
def test_readme_python_snippets_run_in_order(tmp_path, monkeypatch):
    import tuneall
    from tuneall import api

    SMALL["storage"] = str(tmp_path)
    monkeypatch.setattr(api, "search", _small(api.search))
    monkeypatch.setenv("TUNEALL_NODE_IP", "127.0.0.2")  # loopback-only Ray in tests
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for code in blocks():
        exec(compile(code, "README.md", "exec"), ns)  # noqa: S102
    assert ns["results_dir"] == str(tmp_path / "mnist1d-from-python")
    # the saved ensemble on raw digits pixels (flattened, unstandardised): its transform applied, not chance
    assert ns["ens"].transform["kind"] == "standardize"
    assert ns["ens"].evaluate((ns["pixels"], ns["labels"]))["ensemble_acc"] > 0.9
    assert ns["ensemble"].evaluate()["ensemble_acc"] == pytest.approx(ns["ensemble"].recorded_accuracy, abs=1e-12)
    assert ns["study"].best_trial.params["k"] == ns["best"].config["k"] == ns["frontier"].iloc[0]["k"]  # one answer
    assert tuneall.load_ensemble is api.load_ensemble


def test_every_module_path_the_docs_name_exists():
    """A restructure moved every module; a doc that names a file that is gone sends the reader nowhere."""
    root = README.parent
    missing = [(doc, path) for doc in ("README.md", "docs/design.md", "results/README.md")
               for path in sorted(set(re.findall(r"\btuneall/[\w/]+\.py\b", (root / doc).read_text())))
               if not (root / path).exists()]
    assert not missing, missing
