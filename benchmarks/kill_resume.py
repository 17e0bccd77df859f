"""Nothing lost: a real ``tuneall search`` whose driver is killed with SIGKILL at random moments, resumed after each
kill with the same command plus ``--resume``, until it completes; then checked.

Checks, from the search's own journal (``journal.jsonl``, the source of the trials table):

- every trial of the search is in the final trials table exactly once (``trials`` rows, unique trial ids);
- lost: trials recorded as finished before a kill that are missing from the final table, or whose metrics changed;
- re-run: points trained twice (a second journal record of a point that was not answered from the first,
  ``repeat_of``) or trial ids recorded twice;
- the search ends ``complete`` with a summary, and each killed state was left ``running``;
- distinct points explored: the killed-and-resumed search against the same command run once without a kill (same
  seed). Before sampler continuity a resumed TPE search replayed its opening and explored far fewer points.

Kills cycle through three moments: ``random`` (uniform in ``--window`` after the run's first newly finished trial),
``journal`` (the instant a new journal line appears: around a journal write) and ``report`` (once every trial is in
the journal, while the tables, summary and state are being written).

The driver runs in its own session; a kill takes down its whole process group (Ray's agents included), as a crash
of the machine's driver would. Writes ``results/benchmarks/kill_resume.json``.

    python benchmarks/kill_resume.py [--kills 3] [--seed 0] [--searcher tpe] [--trials 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402  (puts the repository root on sys.path)

from tuneall.rundir import journal  # noqa: E402

BUDGET = "3e7"  # trials of ~2-10 s on digits: a search of 9 trials, under a minute when nothing kills it
SPACE = "name: kill\nfamilies: [cnn3]\nwidth: [0.25, 0.5, 1.0]\nk: [1, 2, 3]\nbatch_size: 32\n"


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TUNEALL_NODE_IP": "127.0.0.2"}  # loopback-only local Ray
    return subprocess.Popen([sys.executable, "-m", "tuneall.cli", *args], cwd=cwd, env=env, start_new_session=True,
                            stdout=open(cwd / "driver.log", "a"), stderr=subprocess.STDOUT)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _count(out: Path) -> int:
    return len(journal.read(out)) if (out / journal.JOURNAL).exists() else 0


def _run(cmd: list[str], cwd: Path) -> int:
    proc = _start(cmd, cwd)
    try:
        return proc.wait(timeout=900)
    finally:
        _kill_group(proc.pid)


def _distinct(records: list[dict]) -> int:
    return len({journal.point_key(r["config"]) for r in records})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=3, help="one per moment: random, journal, report")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--searcher", default="tpe", choices=("tpe", "random", "grid"))
    p.add_argument("--trials", type=int, default=8, help="trials of the search (grid: every point)")
    p.add_argument("--window", default="0:4",
                   help="a random kill lands uniformly this many seconds after the run's first newly finished trial")
    args = p.parse_args()
    rng = random.Random(args.seed)
    lo, hi = (float(x) for x in args.window.split(":"))
    moments = ["random", "journal", "report"]
    out_rec = C.header("kill_resume", False)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "kill.yaml").write_text(SPACE)
        base = ["search", "--dataset", "digits", "--budget", BUDGET, "--space", "kill.yaml", "--seeds", "1",
                "--min-steps", "20", "--verbose", "0", "--searcher", args.searcher, "--trials", str(args.trials)]
        import tuneall

        feasible, _ = tuneall.plan(budget=float(BUDGET), dataset="digits", space=str(tmp / "kill.yaml"), min_steps=20)
        n_trials = len(feasible) if args.searcher == "grid" else args.trials
        # The same command, never killed: the exploration a killed search must match.
        ref_rc = _run(base + ["--name", "ref"], tmp)
        ref = journal.read(tmp / "results" / "ref")
        out = tmp / "results" / "k"
        cmd = base + ["--name", "k"]
        kills, finished_before, rc = [], {}, None
        for i in range(args.kills + 1):
            proc = _start(cmd + (["--resume"] if i else []), tmp)
            if i == args.kills:  # the last run goes to the end
                rc = proc.wait(timeout=900)
                break
            moment = moments[i % len(moments)]
            t0, before = time.perf_counter(), _count(out)
            if moment == "report":  # every trial in the journal: the driver is writing tables, summary, state
                while proc.poll() is None and _count(out) < n_trials:
                    time.sleep(0.02)
                delay = rng.uniform(0.0, 0.5)
            else:
                poll = 0.01 if moment == "journal" else 0.2
                while proc.poll() is None and _count(out) <= before:
                    time.sleep(poll)
                delay = 0.0 if moment == "journal" else rng.uniform(lo, hi)
            try:
                proc.wait(timeout=delay) if delay else None
                if proc.poll() is not None:
                    rc = proc.returncode  # finished before the kill landed
                    break
                _kill_group(proc.pid)
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait(timeout=60)
            at = time.perf_counter() - t0
            recs = journal.read(out)
            state = json.loads((out / "tuneall.json").read_text())["state"] if (out / "tuneall.json").exists() \
                else None
            kills.append({"moment": moment, "after_s": round(at, 2), "finished_so_far": len(recs),
                          "state_left": state, "summary_left": (out / "summary.md").exists()})
            for r in recs:
                finished_before.setdefault(r["trial_id"], r["metrics"])
            print(f"kill {len(kills)} ({moment}) at {at:.1f} s: {len(recs)} trial(s) finished so far, state "
                  f"{state!r}", flush=True)
        final = journal.read(out)
        ids = [r["trial_id"] for r in final]
        trained = [journal.point_key(r["config"]) for r in final if not (r["metrics"] or {}).get("repeat_of")]
        by_id = {r["trial_id"]: r["metrics"] for r in final}
        lost = sorted(t for t, m in finished_before.items() if by_id.get(t) != m)
        rerun = sorted({str(k) for k in trained if trained.count(k) > 1} | {t for t in ids if ids.count(t) > 1})
        meta = json.loads((out / "tuneall.json").read_text())
        res = {"searcher": args.searcher, "kills": len(kills), "kill_log": kills, "trials_asked": n_trials,
               "trials_in_table": len(final), "unique_trial_ids": len(set(ids)),
               "finished_before_a_kill": len(finished_before), "lost": lost, "rerun": rerun,
               "final_state": meta["state"], "summary": (out / "summary.md").exists(),
               "resumes": len(meta.get("resumes", [])), "exit_code": rc,
               "distinct_points": _distinct(final), "distinct_points_uninterrupted": _distinct(ref),
               "uninterrupted_exit_code": ref_rc}
    ratio = res["distinct_points"] / max(1, res["distinct_points_uninterrupted"])
    res["distinct_ratio"] = ratio
    ok = (len(kills) == args.kills  # every kill landed mid-search
          and res["trials_in_table"] == res["trials_asked"] == res["unique_trial_ids"] and not lost and not rerun
          and res["final_state"] == "complete" and res["summary"] and rc == 0 and ratio >= 1.0
          and all(k["state_left"] in ("running", None) for k in kills))
    res["ok"] = ok
    out_rec.update(res)
    out_rec["rows"] = [C.row(f"trials lost after {len(kills)} SIGKILL(s) and resumes", len(lost),
                             "trials finished before a kill", len(finished_before), "trials", "= 0", not lost),
                       C.row("finished trials re-run after a resume", len(rerun), "trials in the final table",
                             len(final), "trials", "= 0", not rerun),
                       C.row("trials in the final table, each once", len(set(ids)), "trials asked", n_trials,
                             "trials", "= asked", len(set(ids)) == len(ids) == n_trials),
                       C.row("distinct points explored with kills", res["distinct_points"],
                             "the same command uninterrupted", res["distinct_points_uninterrupted"], "points",
                             ">= 1x", ratio >= 1.0)]
    out_rec["elapsed_s"] = time.perf_counter() - t_start
    print(f"kills {res['kills']} ({', '.join(k['moment'] for k in kills)}), trials {res['trials_in_table']}/"
          f"{res['trials_asked']} (unique {res['unique_trial_ids']}), finished before a kill "
          f"{res['finished_before_a_kill']}, lost {len(lost)}, re-run {len(rerun)}, distinct points "
          f"{res['distinct_points']} vs {res['distinct_points_uninterrupted']} uninterrupted ({ratio:.2f}x), final "
          f"state {res['final_state']}, exit {rc}: {'OK' if ok else 'FAILED'}")
    print(f"wrote {C.write_result('kill_resume', out_rec)}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
