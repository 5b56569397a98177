"""The loop between scheduler and backend: Syne Tune's ``Tuner``, woken by events.

Syne Tune's tuner sleeps ``sleep_time`` seconds (5 by default) between looks at its
workers, so a worker that frees up waits for the next look. ``EventDrivenTuner``
waits on the backend instead (``RunnerBackend.wait_for_change``), which returns the
moment a trial ends; ``sleep_time`` then only bounds how stale the progress display
and the tables can get.
"""

from __future__ import annotations

import contextlib
import signal

from syne_tune import Tuner
from syne_tune.tuner_logger import TunerLogger

from d2l_hpo.backends.base import RunnerBackend


class EventDrivenTuner(Tuner):
    """Syne Tune's ``Tuner``, waiting on ``runner_backend`` between polls.

    :param runner_backend: what the trial backend can tell beyond Syne Tune's seam
        (``d2l_hpo.backends.base``); the other arguments are ``Tuner``'s
    """

    def __init__(self, *args, runner_backend: RunnerBackend, **kwargs):
        super().__init__(*args, **kwargs)
        self.runner_backend = runner_backend

    def _sleep(self):
        self.runner_backend.wait_for_change(self.sleep_time)
        for callback in self.callbacks:
            callback.on_tuning_sleep(self.sleep_time)


class QuietLogger(TunerLogger):
    """Syne Tune's banner and per-trial lines give way to our progress display."""


for _name in dir(TunerLogger):
    if _name.startswith("print_"):
        setattr(QuietLogger, _name, lambda self, *args, **kwargs: None)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM ends a run like Ctrl-C does: trials stopped, results kept."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
