"""The runner: the one driver of Ray that search and sweep share.

A run (a search or a sweep) is a set of trials; each trial is a config handed to a *job* function
``job(config, ctx, data) -> metrics`` in a Ray Tune trial process (or, for the local executor, in this process).
The runner owns everything around that call: starting a local Ray on this machine or joining ``--address``, checking
that a trial's resources fit the cluster, the trainable that Ray Tune runs (threads, quiet shutdown, the node that
ran it), concurrency, and stopping the Ray it started. Search (:mod:`tuneall.tuning.driver`) and sweep
(:mod:`tuneall.sweeping.driver`) are specs on top: what the trials are and what their results become.
"""

from __future__ import annotations

from tuneall.core.lazy import exports

# Public names -> the module that defines them, imported on first use: `tuneall --help` imports runner.signals
# alone, not the runner's Ray and results-directory machinery (benchmarks/cli_startup.py).
_WHERE = {
    **dict.fromkeys(("LOCAL_NODE_IP", "check_fits", "check_local_fits", "check_ray_options", "concurrency",
                     "local_cpus", "ray_session"), "cluster"),
    **dict.fromkeys(("EXECUTORS", "RunOptions", "TrialContext", "install_families", "quiet_sigterm_exit", "run_job",
                     "ship_families", "trainable"), "context"),
    **dict.fromkeys(("legacy_output", "outcomes", "ray_member_trainer", "run_local", "run_tune", "train_member_task",
                     "with_trial_resources"), "trials"),
}


__getattr__, __dir__ = exports(__name__, _WHERE)

__all__ = sorted(_WHERE)
