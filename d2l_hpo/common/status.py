"""The status of a trial in an experiment's tables, in one place.

- ``running``: started, not ended yet
- ``completed``: the objective returned
- ``pruned``: early stopping (ASHA) stopped it at a rung; ``stopped_at`` in the
  trials table says at which epoch (its last report's resource level)
- ``failed``: it raised or its process died (``error`` holds the end of its stderr)
- ``diverged``: it reported a NaN or infinite metric and was stopped
- ``timeout``: it ran past ``max_trial_time`` and was killed
- ``stopped``: the wall-clock budget ran out while it ran
- ``interrupted``: Ctrl-C, SIGTERM, or its tuner was killed
"""

RUNNING, COMPLETED, PRUNED, FAILED, DIVERGED, TIMEOUT, STOPPED, INTERRUPTED = (
    "running", "completed", "pruned", "failed", "diverged", "timeout", "stopped",
    "interrupted")

# every status a finished trial can have, in the order summaries list them
ENDED = (COMPLETED, PRUNED, FAILED, DIVERGED, TIMEOUT, STOPPED, INTERRUPTED)
# ran to an end of its own (or the search's decision): kept by a resume (the others
# run again)
FINISHED = (COMPLETED, PRUNED, FAILED, DIVERGED, TIMEOUT)
# ended without success
UNSUCCESSFUL = (FAILED, DIVERGED, TIMEOUT)
# ended because the run stopped it
CUT_SHORT = (STOPPED, INTERRUPTED)

# Syne Tune's trial statuses, as the tables name them
FROM_SYNE_TUNE = {"InProgress": RUNNING, "Completed": COMPLETED, "Failed": FAILED,
                  "Stopped": STOPPED, "Stopping": STOPPED, "Paused": STOPPED}
