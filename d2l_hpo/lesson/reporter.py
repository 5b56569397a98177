"""A trial's reports, written the way Syne Tune's ``Reporter`` writes them (one marked
JSON line on stdout per call, with the time stamp, time and count Syne Tune adds), but
without importing ``syne_tune``: its package loads the ``Tuner`` and some 450 modules
that a trial never uses. ``tests/test_compat.py`` checks that Syne Tune reads these lines
back as its own. An objective of your own may use ``syne_tune.Reporter`` just as well.
"""

from __future__ import annotations

import json
import sys
import time

from d2l_hpo.common.compat import (ST_METRIC_TAG, ST_WORKER_ITER, ST_WORKER_TIME,
                                   ST_WORKER_TIMESTAMP)


def _plain(value):
    if hasattr(value, "item"):  # a numpy scalar or a one-element tensor
        return value.item()
    raise TypeError(f"{value!r} ({type(value).__name__}) cannot be reported: report numbers")


class Reporter:
    """``Reporter()(epoch=1, validation_error=0.3)`` reports one epoch's values."""

    def __init__(self):
        self.start = time.perf_counter()
        self.iter = 0

    def __call__(self, **values) -> None:
        if any(key.startswith("st_") for key in values):
            raise ValueError("names starting with 'st_' are Syne Tune's own: report "
                             f"another name than {[k for k in values if k.startswith('st_')]}")
        if any(v is None for v in values.values()):
            raise ValueError(f"a reported value is None: {values}")
        values[ST_WORKER_TIMESTAMP] = time.time()
        values[ST_WORKER_TIME] = time.perf_counter() - self.start
        values[ST_WORKER_ITER] = self.iter
        self.iter += 1
        print(f"[{ST_METRIC_TAG}]: {json.dumps(values, default=_plain)}", flush=True)
        sys.stdout.flush()
