"""``max_trial_time``: stop a trial that runs longer, as a tuner callback of its own."""

from __future__ import annotations

from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.tuner_callback import TunerCallback

from d2l_hpo.run.recorder import ExperimentRecorder


class TrialTimeLimit(TunerCallback):
    """After each loop of the tuner, stop every trial that has run longer than
    ``seconds`` (the backend kills its process and the processes it started); the
    recorder then records it as ``timeout``, and its worker takes the next trial.

    :param recorder: the run's recorder (when each running trial started)
    :param trial_backend: the backend that stops trials
    :param seconds: the longest a trial may run
    """

    def __init__(self, recorder: ExperimentRecorder, trial_backend: TrialBackend,
                 seconds: float):
        self.recorder, self.trial_backend, self.seconds = recorder, trial_backend, seconds

    def on_loop_end(self):
        now = self.recorder.now()
        for trial_id, start in self.recorder.running_trials():
            if trial_id not in self.recorder.timed_out and now - start > self.seconds:
                self.recorder.mark_timed_out(trial_id)
                self.trial_backend.stop_trial(trial_id=trial_id)
