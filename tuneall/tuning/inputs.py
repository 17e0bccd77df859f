"""What a search ran on, kept by value in ``tuneall.json`` (``inputs``), so that a resume runs the same code on the
same data from any working directory.

At the start of a search, each user model factory and data loader named by import path (``m.py:make``,
``mypkg.nets:make``, ``--data d.py:load``) is recorded with the absolute path of its file, the file's source as it
was executed (the bytes read once at import: :func:`tuneall.core.imports.import_object`) and fingerprints: of the
factory's code (what member keys hold, :mod:`tuneall.store.keys`) and of the data's tensors. Relative paths are
resolved once, there.

``tuneall resume`` imports those names from the kept copies (:func:`pin`), whatever the working directory and
whatever the files hold now; a file whose content differs from its copy (or that is gone) is named in one line,
and never mixed in. A resume checks before anything starts (:func:`check`): the factories' and the data's
fingerprints must equal the recorded ones, else it is refused in one line naming what changed (exit 2): a
``search --resume`` that imported an edited file, or data whose tensors changed (a loader's own input files are
not kept: only the data's fingerprint is).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from tuneall.core.errors import ConfigError

KEY = "inputs"


def _source_entry(obj) -> dict:
    """The file and source (text, or base64 where it is not UTF-8) of the module that defines ``obj``."""
    from tuneall.core.imports import module_source

    got = module_source(obj)
    if got is None:
        return {}
    file, src = got
    try:
        text = {"source": src.decode("utf-8")}
    except UnicodeDecodeError:
        text = {"source_b64": base64.b64encode(src).decode()}
    return {"file": str(Path(file).resolve()), **text, "file_sha256": hashlib.sha256(src).hexdigest()}


def _source_bytes(entry: dict) -> bytes | None:
    if "source" in entry:
        return entry["source"].encode("utf-8")
    return base64.b64decode(entry["source_b64"]) if "source_b64" in entry else None


def _model_specs(space) -> list[tuple[str, str]]:
    """(the spec as the space names it, the family it resolved to), in the space's order."""
    import yaml

    try:
        fams = (yaml.safe_load(space.source or "") or {}).get("families") or []
    except (yaml.YAMLError, AttributeError):
        fams = []
    fams = fams if isinstance(fams, list) else [fams]
    return list(zip(fams, space.families)) if len(fams) == len(space.families) else [(f, f) for f in space.families]


def record(space, dataset: str, data, ids: dict | None = None) -> dict:
    """The ``inputs`` of a new search: its user factories and data loader, by value, with their fingerprints."""
    from tuneall.core.imports import import_object, is_import_path
    from tuneall.models import get_family
    from tuneall.store.keys import data_id, model_id

    models = []
    for spec, name in _model_specs(space):
        fam = get_family(name)
        if not fam.user:
            continue
        entry = {"family": name, "spec": spec if is_import_path(spec) else "", "sha256": model_id(ids, name)}
        models.append({**entry, **_source_entry(fam.builder)})
    out = {"models": models, "data": {"spec": dataset, "sha256": data_id(ids, data)}}
    if is_import_path(dataset):
        out["data"].update(_source_entry(import_object(dataset, what="data")))
    return out


def _entries(inputs) -> list[dict]:
    """The recorded entries whose fields have the types a reader uses ({} or [] where ``inputs`` is no object)."""
    if not isinstance(inputs, dict):
        return []
    models = inputs.get("models") if isinstance(inputs.get("models"), list) else []
    text = ("spec", "file", "source", "source_b64", "sha256", "family")
    return [e for e in [*models, inputs.get("data")] if isinstance(e, dict)
            and all(isinstance(e.get(k), str) for k in text if e.get(k) is not None)]


def pin(meta: dict, log=print) -> None:
    """Make this process import a resumed search's factories and loader from the copies its ``tuneall.json`` kept;
    name (one line each) a file that differs from its copy."""
    from tuneall.core.imports import is_import_path, pin_file

    told = set()
    for e in _entries(meta.get(KEY)):
        try:
            spec, src = e.get("spec") or "", _source_bytes(e)
        except ValueError:  # a base64 copy cut short: nothing to pin (the fingerprint check still guards)
            continue
        if not is_import_path(spec) or src is None or not e.get("file"):
            continue
        pin_file(spec.split(":")[0], e["file"], src)
        try:
            now = Path(e["file"]).read_bytes()
        except OSError:
            now = None
        if now != src and e["file"] not in told:
            told.add(e["file"])
            what = "is gone" if now is None else "changed since the search started"
            log(f"tuneall: {e['file']} {what}; resuming with the copy kept in tuneall.json (a new search would use "
                "the file as it is now)")


def check(meta: dict, space, dataset: str, data, out) -> None:
    """Refuse to resume when the factories or the data differ from what the search recorded (one line each)."""
    from tuneall.models import get_family
    from tuneall.store.keys import family_fingerprint
    from tuneall.store.records import data_fingerprint

    inputs = meta.get(KEY)
    if not isinstance(inputs, dict):
        return  # made before inputs were recorded
    for e in _entries({"models": inputs.get("models")}):
        name = e.get("family")
        if name in space.families and get_family(name).user and family_fingerprint(name) != e.get("sha256"):
            where = e.get("file") or e.get("spec") or name
            raise ConfigError(f"model {name!r}: the code in {where} differs from the copy {out} kept; resume with "
                              f"tuneall resume {out} (it runs the kept copy), or start a new search with another "
                              "name")
    d = (_entries({"data": inputs.get("data")}) or [{}])[0]
    if d.get("sha256") and data_fingerprint(data) != d["sha256"]:
        raise ConfigError(f"data {dataset!r}: its tensors differ from the ones {out} was searched on (fingerprint "
                          f"{d['sha256'][:12]}, now {data_fingerprint(data)[:12]}); restore the data, or start a new "
                          "search with another name")


__all__ = ["KEY", "record", "pin", "check"]
