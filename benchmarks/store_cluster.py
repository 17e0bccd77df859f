"""What the driver's store service costs: a grid search on one machine (the results directory directly) against the
same search through the store service, on one machine and on a two-node loopback cluster whose head has no CPU
(every trial on the worker, every record, lock and saved weight through the head).

Per case: member-steps trained (must be equal: the service changes where records live, never what is trained),
wall time (Ray start to written report), and the bytes through the head per member (records read and written by
trials, and saved-weight files, from the service's ``store_traffic.json``). The loopback cluster shares this
machine's disk, so ``TUNEALL_STORE=service`` makes it use the service (as a cluster without a shared disk does).

    python benchmarks/store_cluster.py [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import _common as C

SPACE = {"families": ["cnn3"], "width": [0.25, 0.5, 1.0], "k": [1, 2, 4], "batch_size": 32}


def _search(root: Path, name: str, budget: float, seeds: int) -> dict:
    import pandas as pd

    import tuneall
    from tuneall.planning.space import parse_space
    from tuneall.store.records import STORE_DIR

    t0 = time.perf_counter()
    tuneall.search(budget=budget, dataset="digits", space=parse_space(SPACE), searcher="grid", seeds=seeds,
                   min_steps=20, storage_path=str(root), name=name, verbose=0, concurrency=2)
    wall = time.perf_counter() - t0
    out = root / name
    trials = pd.read_csv(out / "trials.csv")
    traffic = json.loads((out / "store_traffic.json").read_text()) if (out / "store_traffic.json").exists() else None
    members = len(list((out / STORE_DIR).glob("*.pt")))
    got = {"wall_s": wall, "trials": len(trials), "member_steps": int(trials["member_steps_trained"].sum()),
           "members": members, "traffic": traffic,
           "chosen_recorded_acc": float(tuneall.load_ensemble(out).recorded_accuracy)}  # its weights on this disk
    if traffic:
        moved = traffic["record_bytes_read"] + traffic["record_bytes_written"] + traffic["file_bytes_written"]
        got.update(bytes_through_head=moved, bytes_per_member=moved / max(1, members),
                   record_bytes_mean=traffic["record_bytes_written"] / max(1, traffic["records_written"]))
    return got


def _one_machine(root: Path, name: str, budget: float, seeds: int, service: bool) -> dict:
    import ray

    os.environ.pop("TUNEALL_STORE", None)
    if service:
        os.environ["TUNEALL_STORE"] = "service"
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2")
    try:
        return _search(root, name, budget, seeds)
    finally:
        ray.shutdown()
        os.environ.pop("TUNEALL_STORE", None)


def _cluster(root: Path, name: str, budget: float, seeds: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, node_ip_address="127.0.0.2",
                                                                include_dashboard=False))
    os.environ["TUNEALL_STORE"] = "service"
    try:
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.3")  # the driver attaches to the head (.2)
        ray.init(address=cluster.address, _node_ip_address="127.0.0.2")
        got = _search(root, name, budget, seeds)
        got["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        return got
    finally:
        os.environ.pop("TUNEALL_STORE", None)
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    args = C.parse_args(__doc__.splitlines()[0])
    budget, seeds = (2e6, 1) if args.quick else (1e7, 2)
    head = C.header("store_cluster", args.quick)
    root = Path(tempfile.mkdtemp(prefix="store_cluster_"))
    try:
        direct = _one_machine(root, "direct", budget, seeds, service=False)
        local_service = _one_machine(root, "service", budget, seeds, service=True)
        cluster = _cluster(root, "cluster", budget, seeds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [
        C.row("member-steps, 2-node cluster through the service", cluster["member_steps"], "one machine, direct",
              direct["member_steps"], "steps", "ratio 1", cluster["member_steps"] == direct["member_steps"]),
        C.row("member-steps, one machine through the service", local_service["member_steps"], "one machine, direct",
              direct["member_steps"], "steps", "ratio 1", local_service["member_steps"] == direct["member_steps"]),
        C.row("wall, 2-node cluster (head 0 CPU) through the service", cluster["wall_s"], "one machine, direct",
              direct["wall_s"], "s"),
        C.row("wall, one machine through the service", local_service["wall_s"], "one machine, direct",
              direct["wall_s"], "s"),
        C.row("bytes through the head per member (cluster)", cluster["bytes_per_member"],
              "mean record size on disk", cluster["record_bytes_mean"], "B"),
    ]
    C.print_rows(rows)
    C.write_result("store_cluster", {**head, "budget": budget, "seeds": seeds, "space": SPACE, "rows": rows,
                                     "direct": direct, "service_one_machine": local_service, "cluster": cluster})


if __name__ == "__main__":
    main()
