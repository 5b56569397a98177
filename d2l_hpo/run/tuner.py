"""The loop between scheduler and backend: Syne Tune's ``Tuner``, woken by events.

Syne Tune's tuner sleeps ``sleep_time`` seconds (5 by default) between looks at its
workers, so a worker that frees up waits for the next look. ``EventDrivenTuner``
waits on the backend instead (``RunnerBackend.wait_for_change``), which returns the
moment a trial ends; ``sleep_time`` then only bounds how stale the progress display
and the tables can get.
"""

from __future__ import annotations

from collections import Counter

from syne_tune import Tuner
from syne_tune.tuner_logger import TunerLogger
from syne_tune.tuning_status import TuningStatus

from d2l_hpo.backends.base import RunnerBackend
from d2l_hpo.common.signals import interrupts_held


class EventDrivenTuner(Tuner):
    """Syne Tune's ``Tuner``, waiting on ``runner_backend`` between polls.

    :param runner_backend: what the trial backend can tell beyond Syne Tune's seam
        (``d2l_hpo.backends.base``); the other arguments are ``Tuner``'s
    """

    def __init__(self, *args, runner_backend: RunnerBackend, **kwargs):
        super().__init__(*args, **kwargs)
        self.runner_backend = runner_backend

    def run(self):
        """Syne Tune's ``run``; whatever ends it (the budget, an error, Ctrl-C), every
        trial is stopped before it returns. Syne Tune stops them last in its clean-up,
        after saving; an interrupt that lands before (a second Ctrl-C while the results
        are saved) would skip that, so the stop is made again here, where interrupts
        wait (``interrupts_held``)."""
        if self.tuning_status is None:
            self.tuning_status = CountingTuningStatus(metric_names=self.scheduler.metric_names())
        try:
            super().run()
        except BaseException:
            with interrupts_held():
                self.trial_backend.stop_all()
            raise

    def _sleep(self):
        self.runner_backend.wait_for_change(self.sleep_time)
        for callback in self.callbacks:
            callback.on_tuning_sleep(self.sleep_time)


class CountingTuningStatus(TuningStatus):
    """Syne Tune's ``TuningStatus``, keeping its counts of trials by status up to date as
    statuses change. Syne Tune's counts scan every trial, and its tuner asks for one
    (failed trials) on every pass of its loop, so a run's cost grew with the square of
    its trials: 10,000 replayed trials spent a fifth of their time in that scan."""

    def __init__(self, metric_names: list[str]):
        super().__init__(metric_names)
        self._counts: Counter = Counter()

    def update(self, trial_status_dict, new_results):
        for trial_id, (_, status) in trial_status_dict.items():
            old = self.last_trial_status_seen.get(trial_id)
            if old is not None:
                self._counts[old] -= 1
            self._counts[status] += 1
        super().update(trial_status_dict, new_results)

    def mark_running_job_as_stopped(self):
        super().mark_running_job_as_stopped()
        self._counts = Counter(self.last_trial_status_seen.values())

    def _num_trials(self, status) -> int:
        statuses = {status} if isinstance(status, str) else set(status)
        return sum(self._counts[s] for s in statuses)


class QuietLogger(TunerLogger):
    """Syne Tune's banner and per-trial lines give way to our progress display."""


for _name in dir(TunerLogger):
    if _name.startswith("print_"):
        setattr(QuietLogger, _name, lambda self, *args, **kwargs: None)
