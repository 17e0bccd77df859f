"""Objects from user code named by import path: ``mypkg.nets:make_mlp`` (an importable module) or
``path/to/file.py:make_mlp`` (a file, loaded under a private module name). Torch-free.

Functions from such modules reach Ray's worker processes by value (:func:`pickle_by_value`), so the workers and the
nodes of a cluster need neither the file nor the package installed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

from tuneall.core.errors import ConfigError


def is_import_path(spec) -> bool:
    """Whether ``spec`` looks like ``module:attr`` or ``file.py:attr`` (not a plain registered name)."""
    return isinstance(spec, str) and spec.count(":") == 1 and all(spec.split(":")) and "://" not in spec


def _module_from_file(path: Path):
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_tuneall_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _cwd_on_path() -> None:
    """The working directory on ``sys.path``, as ``python -m`` and pytest put it: ``--model mypkg.nets:make`` run
    from the folder that holds ``mypkg`` finds it."""
    import os

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # last: never shadows an installed package


def import_object(spec: str, what: str = "object"):
    """The object ``spec`` names; ConfigError (one line, naming ``spec``) when it cannot be imported."""
    if not is_import_path(spec):
        raise ConfigError(f"{what} {spec!r}: expected an import path such as mypkg.nets:make_mlp or "
                          "path/to/file.py:make_mlp")
    mod_spec, attr = spec.split(":")
    try:
        if mod_spec.endswith(".py"):
            path = Path(mod_spec).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{what} {spec!r}: file {mod_spec} not found")
            module = _module_from_file(path)
        else:
            _cwd_on_path()
            module = importlib.import_module(mod_spec)
    except ConfigError:
        raise
    except SystemExit as e:  # sys.exit() at import must not end tuneall silently
        raise ConfigError(f"{what} {spec!r}: importing {mod_spec} called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001  whatever the user's module raises on import is theirs to fix
        raise ConfigError(f"{what} {spec!r}: importing {mod_spec} failed ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what} {spec!r}: {mod_spec} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _cloudpickle():
    try:
        from ray import cloudpickle  # the one Ray serialises with: its by-value registry is the one that counts
    except ImportError:  # pragma: no cover  Ray is a dependency; plain cloudpickle for a Ray-less install
        import cloudpickle
    return cloudpickle


@contextmanager
def pickle_by_value(objects):
    """While active, cloudpickle pickles the functions of the (non-tuneall, non-__main__) modules that ``objects``
    were defined in by value; ``__main__`` functions are pickled by value anyway."""
    cp = _cloudpickle()
    names = {getattr(o, "__module__", None) for o in objects}
    mods = [sys.modules[n] for n in sorted(n for n in names if n) if n in sys.modules and n != "__main__"
            and not n.startswith(("tuneall.", "torch")) and n != "tuneall"]
    done = []
    try:
        for m in mods:
            try:
                cp.register_pickle_by_value(m)
                done.append(m)
            except ValueError:  # already registered
                pass
        yield cp
    finally:
        for m in done:
            cp.unregister_pickle_by_value(m)


def dumps_by_value(obj, objects) -> bytes:
    """``obj`` pickled with cloudpickle, the modules of ``objects`` by value (see :func:`pickle_by_value`)."""
    with pickle_by_value(objects) as cp:
        return cp.dumps(obj)


def loads(blob: bytes):
    return _cloudpickle().loads(blob)


__all__ = ["is_import_path", "import_object", "pickle_by_value", "dumps_by_value", "loads"]
