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

# Private parts still used, each where it is used (grep for the name):
# - syne_tune LocalBackend._allocate_gpu, ._prepare_for_schedule, ._read_status,
#   ._read_time_stamp, TrialBackend._trial_dict (backends/local.py, ray_backend.py): the
#   local backend's GPU rotation and status files, which our SubprocessBackend extends
# - AsynchronousSuccessiveHalving.brackets[0].on_result (search/asha.py): refilling the
#   rungs on a resume, which Syne Tune has no call for
# - ray._private.ray_constants and its authentication logger (backends/_ray_cluster.py):
#   binding a local cluster to 127.0.0.1 and quieting token set-up
PRIVATE_REACHES = {
    "syne_tune.backend.local_backend:LocalBackend": (
        "_allocate_gpu", "_prepare_for_schedule", "_read_status", "_read_time_stamp"),
    "syne_tune.backend.trial_backend:TrialBackend": ("_trial_dict",),
    "syne_tune.optimizer.schedulers.asha:AsynchronousSuccessiveHalving": (),
}
