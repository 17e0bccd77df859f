"""The runner: the one driver of Ray that search and sweep share.

A run (a search or a sweep) is a set of trials; each trial is a config handed to a *job* function
``job(config, ctx, data) -> metrics`` in a Ray Tune trial process (or, for the local executor, in this process).
The runner owns everything around that call: starting a local Ray on this machine or joining ``--address``, checking
that a trial's resources fit the cluster, the trainable that Ray Tune runs (threads, quiet shutdown, the node that
ran it), concurrency, and stopping the Ray it started. Search (:mod:`tuneall.tuning.driver`) and sweep
(:mod:`tuneall.sweeping.driver`) are specs on top: what the trials are and what their results become.
"""

from __future__ import annotations

from tuneall.runner.cluster import (LOCAL_NODE_IP, check_fits, check_local_fits, check_ray_options, concurrency,
                                    local_cpus, ray_session)
from tuneall.runner.context import (EXECUTORS, RunOptions, TrialContext, install_families, quiet_sigterm_exit,
                                    run_job, ship_families, trainable)
from tuneall.runner.trials import (legacy_output, outcomes, ray_member_trainer, run_local, run_tune,
                                   train_member_task, with_trial_resources)

__all__ = ["RunOptions", "TrialContext", "trainable", "run_job", "run_tune", "ray_session", "check_ray_options",
           "check_fits", "check_local_fits", "local_cpus", "concurrency", "with_trial_resources", "run_local",
           "outcomes", "legacy_output", "quiet_sigterm_exit", "ray_member_trainer", "train_member_task",
           "ship_families", "install_families", "EXECUTORS", "LOCAL_NODE_IP"]
