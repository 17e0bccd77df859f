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


# Files pinned to a kept copy (``tuneall resume``: the source a run recorded at its start), by absolute path and by
# the spelling the run was given (a relative path resolves to the recorded file from any working directory).
_PINNED: dict[str, tuple[Path, bytes]] = {}


def pin_file(spelled: str, path: str | Path, source: bytes) -> None:
    """Import ``spelled`` (a ``file.py`` as the run wrote it, or a dotted module) and ``path`` from ``source``
    instead of the disk, in this process."""
    _PINNED[str(spelled)] = (Path(path), bytes(source))
    if str(spelled).endswith(".py"):
        _PINNED[str(path)] = (Path(path), bytes(source))


def _module_from_file(path: Path, source: bytes | None = None, dotted: str | None = None):
    """The file's module, executed from ``source`` (default: the file's bytes, read once here). The bytes executed
    are kept as ``__tuneall_source__``: what the run's fingerprints and provenance record. ``dotted``: the module's
    importable name, when a kept copy of an installed module stands in for it (its relative imports still work)."""
    if source is None:
        source = path.read_bytes()
    digest = hashlib.sha1(str(path).encode() + hashlib.sha256(source).digest()).hexdigest()[:10]
    name = f"_tuneall_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__tuneall_source__ = source
    module.__tuneall_module__ = dotted or "<file>"  # the name fingerprints use (a private name holds the path)
    if dotted:
        module.__package__ = dotted.rpartition(".")[0]
    sys.modules[name] = module  # before exec: dataclasses and pickling look the module up by name
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's own code, as import runs it
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


def resolve_file(mod_spec: str) -> tuple[Path, bytes | None]:
    """A ``file.py`` spec as an absolute path and its pinned source (None: read the disk)."""
    if mod_spec in _PINNED:
        return _PINNED[mod_spec]
    path = Path(mod_spec).expanduser().resolve()
    return _PINNED.get(str(path), (path, None))


def import_object(spec: str, what: str = "object"):
    """The object ``spec`` names; ConfigError (one line, naming ``spec``) when it cannot be imported."""
    if not is_import_path(spec):
        raise ConfigError(f"{what} {spec!r}: expected an import path such as mypkg.nets:make_mlp or "
                          "path/to/file.py:make_mlp")
    mod_spec, attr = spec.split(":")
    try:
        if not mod_spec.endswith(".py") and mod_spec in _PINNED:  # a kept copy of an installed module
            module = _module_from_file(*_PINNED[mod_spec], dotted=mod_spec)
        elif mod_spec.endswith(".py"):
            path, source = resolve_file(mod_spec)
            if source is None and not path.is_file():
                raise ConfigError(f"{what} {spec!r}: file {mod_spec} not found")
            module = _module_from_file(path, source)
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


def module_source(fn) -> tuple[str, bytes] | None:
    """(file, source bytes) of the module that defines ``fn``: the bytes it was executed from where tuneall loaded it
    (:func:`import_object` keeps them), else its file's bytes; None without a readable file."""
    mod = sys.modules.get(getattr(fn, "__module__", None) or "")
    if mod is None:
        return None
    file = getattr(mod, "__file__", None)
    src = getattr(mod, "__tuneall_source__", None)
    if src is None and file and str(file).endswith(".py"):
        try:
            src = Path(file).read_bytes()
        except OSError:
            return None
    return (str(file), src) if src is not None else None


def code_fingerprint(fn) -> str:
    """A digest of the code ``fn`` runs: its module's source and its name, or, for a closure or anything that is
    not a plain module-level function (whose captured values the source does not show), the cloudpickle of it by
    value (what Ray ships). Other modules the code imports are not part of it (the docs say so)."""
    qual = getattr(fn, "__qualname__", "") or ""
    plain = callable(fn) and hasattr(fn, "__code__") and not getattr(fn, "__closure__", None) and "<" not in qual
    src = module_source(fn) if plain else None
    if src is not None:
        # A file's private module name holds its path: the file's content and the function's name identify it.
        mod = getattr(sys.modules.get(fn.__module__), "__tuneall_module__", None) or fn.__module__
        blob = src[1] + b"\0" + f"{mod}:{qual}".encode()
    else:
        blob = b"pickle\0" + dumps_by_value(fn, [fn])
    return hashlib.sha256(blob).hexdigest()[:32]


__all__ = ["is_import_path", "import_object", "pickle_by_value", "dumps_by_value", "loads", "pin_file",
           "resolve_file", "module_source", "code_fingerprint"]
