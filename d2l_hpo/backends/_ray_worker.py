"""What runs on the Ray nodes: the body of a trial's task, the warm-up task, and the
collector actor that keeps what trials print until the backend next asks.

The driver side is ``ray_backend.RayBackend``; this module is what Ray ships to the
worker processes (and the head node, for the collector).
"""

from __future__ import annotations

import io
import os
import sys
import time
import traceback

import ray
from syne_tune.constants import ST_METRIC_TAG

from d2l_hpo.backends._common import call_objective, fresh_state


class _Forward(io.TextIOBase):
    """A text stream that sends whole lines of one trial to the collector actor."""

    def __init__(self, collector, token: str, trial_id: int, attempt: int, stream: str):
        super().__init__()
        self.collector, self.key = collector, (token, trial_id, attempt, stream)
        self.pending = ""

    def writable(self):
        return True

    @property
    def encoding(self):
        return "utf-8"

    def isatty(self):
        return False

    def write(self, text: str) -> int:
        self.pending += text
        cut = self.pending.rfind("\n") + 1
        if cut:  # whole lines go at once (a report is one line), the rest waits
            sent = self.collector.text.remote(*self.key, self.pending[:cut])
            if self.key[3] == "err" or ST_METRIC_TAG in self.pending[:cut]:
                # reports and errors must survive a crash right after them: wait
                # until the collector has them (one short round trip)
                ray.get(sent)
            self.pending = self.pending[cut:]
        return len(text)

    def flush(self):
        if self.pending:
            self.collector.text.remote(*self.key, self.pending)
            self.pending = ""


def run_trial(token: str, trial_id: int, attempt: int, blob: bytes, config: dict,
              collector, threads: int) -> bool:
    """Body of the Ray task of one trial; True when the objective returned normally."""
    import dill

    context = ray.get_runtime_context()
    ray.get(collector.start.remote(token, trial_id, attempt, {
        "node": context.get_node_id(), "worker": context.get_worker_id(),
        "pid": os.getpid(), "host": os.uname().nodename, "time": time.time()}))
    saved = sys.stdout, sys.stderr, dict(os.environ), os.getcwd()
    out = _Forward(collector, token, trial_id, attempt, "out")
    err = _Forward(collector, token, trial_id, attempt, "err")
    sys.stdout, sys.stderr = out, err
    ok = False
    try:
        fresh_state(threads)
        call_objective(dill.loads(blob), config)
        ok = True
    except SystemExit as stop:  # sys.exit(0) in the objective is a normal end
        ok = stop.code in (None, 0)
        if not ok:
            print(f"SystemExit: {stop.code}", file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        out.flush()
        err.flush()
        sys.stdout, sys.stderr = saved[0], saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
        os.chdir(saved[3])
        # waiting for this call means every line sent before it has arrived too
        # (Ray runs one caller's calls to an actor in order)
        ray.get(collector.end.remote(token, trial_id, attempt, time.time(), ok))
    return ok


def warm(seconds: float, modules: list[str]) -> int:
    """Body of a warm-up task: import what the objective imports, in a worker process
    that later trials will reuse."""
    for name in modules:  # what the objective imports, once per worker process
        try:
            __import__(name)
        except Exception:  # the trial will meet (and report) the same error itself
            pass
    time.sleep(seconds)  # long enough that each of these tasks gets its own worker
    return os.getpid()


class Collector:
    """Actor that keeps what trials sent until their backend next asks for it. One per
    driver (``ray_backend`` keeps it), shared by its backends: each has its own ``token``."""

    def __init__(self):
        self.events: dict[str, list[tuple]] = {}

    def start(self, token, trial_id, attempt, placement):
        self.events.setdefault(token, []).append(("start", trial_id, attempt, placement))

    def text(self, token, trial_id, attempt, stream, text):
        self.events.setdefault(token, []).append(("text", trial_id, attempt, (stream, text)))

    def end(self, token, trial_id, attempt, timestamp, ok):
        self.events.setdefault(token, []).append(("end", trial_id, attempt, (timestamp, ok)))

    def drain(self, token) -> list[tuple]:
        return self.events.pop(token, [])
