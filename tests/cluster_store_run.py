"""The searches of tests/test_store_cluster.py, run by a driver inside the test's network namespace.

``python cluster_store_run.py one OUT`` runs them on a local Ray of this machine; ``python cluster_store_run.py
cluster OUT ADDRESS`` on the cluster at ADDRESS. Each writes ``OUT/summary.json``: per search, its trials' statuses,
the member-steps it trained, and the chosen ensemble's recorded and reproduced test accuracy (loaded here, on the
driver, from the results directory). Not a test module itself (no ``test_`` prefix): it needs the namespace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPACE = {"families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2], "batch_size": 32}
COMMON = dict(dataset="digits", seeds=1, min_steps=20, concurrency=1, verbose=1)


def _search_facts(out: Path) -> dict:
    import pandas as pd

    import tuneall

    trials = pd.read_csv(out / "trials.csv")
    facts = {"trials": len(trials), "statuses": sorted(set(trials["status"])),
             "state": json.loads((out / "tuneall.json").read_text())["state"],
             "member_steps": int(trials["member_steps_trained"].sum()),
             "nodes": sorted(set(trials["node_id"].astype(str))) if "node_id" in trials else []}
    if (out / "halving.csv").exists():
        facts["member_steps"] += int(pd.read_csv(out / "halving.csv")["member_steps_trained"].fillna(0).sum())
    ens = tuneall.load_ensemble(out)
    facts["recorded_acc"] = float(ens.recorded_accuracy)
    facts["reproduced_acc"] = float(ens.evaluate()["ensemble_acc"])
    traffic = out / "store_traffic.json"
    facts["traffic"] = json.loads(traffic.read_text()) if traffic.exists() else None
    return facts


def main(mode: str, root: Path, address: str | None = None) -> None:
    import ray

    import tuneall
    from tuneall.planning.space import parse_space

    if mode == "one":
        ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2",
                 object_store_memory=200 << 20)
    else:
        ray.init(address=address, _node_ip_address="127.0.0.2")
    space = parse_space(SPACE)
    store = root / "store"  # the storage path (on the cluster: a private disk on the worker)
    run = dict(COMMON, space=space, budget=2e6, storage_path=str(store))
    out: dict = {"nodes": len([n for n in ray.nodes() if n["Alive"]])}
    tuneall.search(searcher="grid", name="grid", **run)
    out["grid"] = _search_facts(store / "grid")
    tuneall.search(searcher="halving", name="halving", **run)
    out["halving"] = _search_facts(store / "halving")
    tuneall.search(searcher="tpe", trials=3, name="tpe", member_store=False, **run)  # weights without the store
    out["tpe"] = _search_facts(store / "tpe")
    tuneall.search(searcher="random", trials=2, name="resume", **run)
    tuneall.search(searcher="random", trials=4, name="resume", resume=True, **run)
    out["resume"] = _search_facts(store / "resume")
    tuneall.sweep("1e6,2e6", space=space, name="sweep", **{**COMMON, "storage_path": str(store)})
    meta = json.loads((store / "sweep" / "sweep.json").read_text())
    out["sweep"] = {"member_steps": int(meta["sweep"]["member_steps_trained"]),
                    "failed_jobs": int(meta["sweep"]["failed_jobs"]), "jobs": int(meta["sweep"]["jobs"])}
    ray.shutdown()
    (root / "summary.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
