"""What runs on the Ray nodes: the body of a trial's task, the warm-up task, and the
collector actor that keeps what trials print until the backend next asks.

The driver side is ``ray_backend.RayBackend``; this module is what Ray ships to the
worker processes (and the head node, for the collector).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
import traceback

import ray
from d2l_hpo.common.compat import ST_METRIC_TAG

from d2l_hpo.backends._common import call_objective, fresh_state


def wait_holding_cpus(ref):
    """``ray.get(ref)`` without lending this task's CPUs to another task meanwhile.

    A task that calls ``ray.get`` from its main thread tells Ray it is blocked, and Ray
    gives its CPUs to a queued task until the call returns: with more workers than the
    nodes have room for, a second trial then started on a node whose CPUs were all
    taken (checked with Ray 2.60, 2-CPU tasks on a 2-CPU node, during a report's round
    trip). Ray does not do that for a call made from another thread."""
    box = {}

    def get():
        try:
            box["value"] = ray.get(ref)
        except BaseException as err:  # raised again in the task's own thread
            box["error"] = err

    waiter = threading.Thread(target=get, name="d2l-hpo-wait", daemon=True)
    waiter.start()
    waiter.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class _Forward(io.TextIOBase):
    """A text stream that sends whole lines of one trial to the collector actor."""

    def __init__(self, collector, token: str, trial_id: int, run: int, stream: str):
        super().__init__()
        self.collector, self.key = collector, (token, trial_id, run, stream)
        self.pending = ""
        self.buffer = _Bytes(self)  # sys.stdout.buffer.write(b"...") works too

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
                wait_holding_cpus(sent)
            self.pending = self.pending[cut:]
        return len(text)

    def flush(self):
        if self.pending:
            self.collector.text.remote(*self.key, self.pending)
            self.pending = ""


class _Bytes(io.RawIOBase):
    """The ``buffer`` of a ``_Forward``: bytes, decoded as UTF-8 (others as U+FFFD)."""

    def __init__(self, text: _Forward):
        super().__init__()
        self.text = text

    def writable(self):
        return True

    def write(self, data) -> int:
        self.text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


def _route_logging(real: tuple, trial: tuple):
    """For the length of one trial, logging handlers that write to the worker's own
    stdout/stderr (made when a module was imported, say) write to the trial's.
    Returns what undoes it: those handlers write to the worker's streams again,
    handlers the trial added to existing loggers (``logging.basicConfig``, say) are
    removed, those it removed put back, and the loggers' levels restored, so the next trial on this reused worker
    starts with the worker's logging as it was. Handlers of loggers made during the
    trial (a module it imported first) stay, writing to the worker's streams, to be
    routed to each later trial in turn."""
    def loggers():
        found = {"": logging.getLogger()}
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and name.split(".")[0] != "ray":
                found[name] = logger
        return found

    def reroute(streams_from, streams_to):
        for logger in loggers().values():
            for handler in logger.handlers:
                stream = getattr(handler, "stream", None)
                if type(handler) is logging.StreamHandler and stream in streams_from:
                    handler.setStream(streams_to[streams_from.index(stream) % 2])

    before = {name: (list(logger.handlers), logger.level)
              for name, logger in loggers().items()}
    reroute(real, trial)

    def undo():
        for name, logger in loggers().items():
            if name in before:  # its handlers and level as they were
                handlers, level = before[name]
                for handler in logger.handlers[:]:
                    if handler not in handlers:
                        logger.removeHandler(handler)
                        handler.close()
                for handler in handlers:  # removed by basicConfig(force=True), say
                    logger.addHandler(handler)
                logger.setLevel(level)
        reroute(trial, real)
    return undo


def run_trial(token: str, trial_id: int, run: int, blob: bytes, config: dict,
              collector, threads: int, checkpoint_dir: str) -> bool:
    """Body of the Ray task of one trial (its ``run``-th task: a resumed trial has
    several); True when the objective returned normally."""
    import dill

    context = ray.get_runtime_context()
    wait_holding_cpus(collector.start.remote(token, trial_id, run, {
        "node": context.get_node_id(), "worker": context.get_worker_id(),
        "pid": os.getpid(), "host": os.uname().nodename, "time": time.time()}))
    saved = sys.stdout, sys.stderr, dict(os.environ), os.getcwd(), sys.argv
    out = _Forward(collector, token, trial_id, run, "out")
    err = _Forward(collector, token, trial_id, run, "err")
    undo_logging = _route_logging(
        (saved[0], saved[1], sys.__stdout__, sys.__stderr__), (out, err))
    sys.stdout, sys.stderr = out, err
    # where the trial saves and finds its checkpoint, as Syne Tune passes it
    sys.argv = ["objective", "--st_checkpoint_dir", checkpoint_dir]
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
        undo_logging()
        sys.stdout, sys.stderr, sys.argv = saved[0], saved[1], saved[4]
        os.environ.clear()
        os.environ.update(saved[2])
        os.chdir(saved[3])
        # waiting for this call means every line sent before it has arrived too
        # (Ray runs one caller's calls to an actor in order)
        wait_holding_cpus(collector.end.remote(token, trial_id, run, time.time(), ok))
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

    def start(self, token, trial_id, run, placement):
        self.events.setdefault(token, []).append(("start", trial_id, run, placement))

    def text(self, token, trial_id, run, stream, text):
        self.events.setdefault(token, []).append(("text", trial_id, run, (stream, text)))

    def end(self, token, trial_id, run, timestamp, ok):
        self.events.setdefault(token, []).append(("end", trial_id, run, (timestamp, ok)))

    def drain(self, token) -> list[tuple]:
        return self.events.pop(token, [])
