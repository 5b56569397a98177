"""What this package relies on in Syne Tune and Ray beyond their documented API, in one
place, with the versions it was checked against. ``tests/test_compat.py`` fails, naming
the item, when an upgrade changes one of them.

Checked against syne-tune 0.16.0 and ray 2.60.

Values copied here (so that a trial process need not import ``syne_tune``, whose
package ``__init__`` imports its ``Tuner`` and about 450 modules with it):
"""

from __future__ import annotations

SYNE_TUNE_CHECKED = "0.16"
RAY_CHECKED = "2.60"

# syne_tune.constants: how a trial's report line is marked, and the keys it adds
ST_METRIC_TAG = "tune-metric"
ST_WORKER_TIMESTAMP = "st_worker_timestamp"
ST_WORKER_TIME = "st_worker_time"
ST_WORKER_ITER = "st_worker_iter"

# Private (underscore) parts still used, each where Syne Tune or Ray leaves no public way;
# tests/test_compat.py checks each is there:
# - LocalBackend._allocate_gpu, ._prepare_for_schedule, ._read_status, ._read_time_stamp
#   (backends/local.py): the GPU rotation and the status and end-time files that our
#   SubprocessBackend inherits from Syne Tune's local backend
# - TrialBackend._trial_dict and the _all_trial_results hook (backends/local.py,
#   ray_backend.py): the hook a backend implements to hand the tuner its results
# - Tuner._sleep (run/tuner.py): the tuner's wait between looks, which our tuner cuts
#   short when a trial ends
# - AsynchronousSuccessiveHalving.brackets (search/asha.py): refilling the rungs on a
#   resume (bracket.on_result), which Syne Tune has no call for
# - ray._private.ray_constants.ENABLE_RAY_CLUSTER (backends/_ray_cluster.py): a local
#   Ray bound to 127.0.0.1 only
PRIVATE_REACHES = {
    "syne_tune.backend.local_backend:LocalBackend": (
        "_allocate_gpu", "_prepare_for_schedule", "_read_status", "_read_time_stamp"),
    "syne_tune.backend.trial_backend:TrialBackend": ("_all_trial_results", "_trial_dict"),
    "syne_tune.tuner:Tuner": ("_sleep",),
    "syne_tune.optimizer.schedulers.asha:AsynchronousSuccessiveHalving": ("brackets",),
    "syne_tune.optimizer.schedulers.asha:Bracket": ("on_result",),
    "ray._private.ray_constants": ("ENABLE_RAY_CLUSTER",),
}
