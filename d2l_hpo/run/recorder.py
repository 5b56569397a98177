"""The experiment's tables, kept up to date on disk while the tuner runs.

``ExperimentRecorder`` is a Syne Tune ``TunerCallback``. It keeps one row per trial
(status, start, end, worker lane, configuration, error, process and node) and one row
per report, the best value so far, and the progress display, and writes the tables
at most once a second (``d2l_hpo.experiment.storage``). It only watches: stopping trials is the
scheduler's job, or ``TrialTimeLimit``'s (``d2l_hpo.run.time_limit``).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path

from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.tuner_callback import TunerCallback

from d2l_hpo.experiment.measures import best_value, improves
from d2l_hpo.backends.base import ATTEMPT, RunnerBackend
from d2l_hpo.run.progress import ProgressState, progress_display
from d2l_hpo.run.settings import RunSettings, RunState, to_json
from d2l_hpo.common.status import (
    COMPLETED, CUT_SHORT, DIVERGED, FAILED, FROM_SYNE_TUNE, INTERRUPTED, PRUNED, RUNNING,
    STOPPED, TIMEOUT, UNSUCCESSFUL,
)
from d2l_hpo.common.files import process_start_time
from d2l_hpo.experiment.storage import config_column, report_row, write_tables

class ResultsNotSavedError(OSError):
    """The experiment's tables could not be written (a full disk, say); the run stops.
    What the trials reported is still in their logs (``N/std.out``)."""

    def __init__(self, path: Path, cause: OSError):
        why = cause.strerror or str(cause)
        super().__init__(
            cause.errno,
            f"could not write the experiment's tables into {path}: {why}"
            + (f" (errno {cause.errno})" if cause.errno else "")
            + ". The run stopped and its trials were stopped; nothing they reported is "
            "lost: each trial's reports are in its folder (N/std.out), and "
            f"load_experiment('{path}') reads them back. Free some space, then run the "
            "same call with resume=True to go on.")
        self.path, self.cause = path, cause

    def __str__(self):
        return self.args[1]


class ExperimentRecorder(TunerCallback):
    """Records a run into ``path`` (see ``d2l_hpo.common.status`` for the statuses).

    :param path: the experiment's folder
    :param settings: the run's settings; ``state`` its state, updated here
    :param backend: what the trial backend tells beyond Syne Tune's seam
    :param trial_backend: the Syne Tune backend (for a failed trial's error output)
    :param progress: show a progress display; default True
    :param kept_trials: rows of trials an earlier run finished (a resume); default none
    :param kept_reports: their reports; default none
    :param strategy: the search strategy, whose state is saved with the experiment (a
        resume replays it)
    :param scheduler: the scheduler; when it stops a trial whose ``pruned_at`` is an
        epoch (early stopping), the trial is ``pruned``, else it ``diverged``
    :param called: ``time.time()`` when ``run_random_search`` was called; the time
        from then to the start of the clock is recorded as the set-up
    """

    def __init__(self, path: Path, settings: RunSettings, state: RunState,
                 backend: RunnerBackend, trial_backend: TrialBackend | None = None,
                 progress: bool = True, kept_trials: list[dict] = (),
                 kept_reports: list[dict] = (), strategy=None, scheduler=None,
                 called: float | None = None):
        self.path, self.settings, self.state = Path(path), settings, state
        self.backend, self.trial_backend = backend, trial_backend
        self.show_progress = progress
        self.strategy, self.scheduler = strategy, scheduler
        self.called = called
        self.setup_before = state.setup_time  # earlier calls' set-up (a resume)
        self.trials: dict[int, dict] = {int(r["trial_id"]): dict(r) for r in kept_trials}
        self.rows: list[dict] = [dict(r) for r in kept_reports]
        self.elapsed_before = state.wallclock  # a resumed run goes on from there
        self.diverged: set[int] = set()
        self.pruned: set[int] = set()
        self.levels: dict[int, float] = {}  # trial id -> its highest resource level so far
        for row in self.rows:
            self._count_level(row)
        self.timed_out: set[int] = set()
        self.attempt: dict[int, int] = {}  # trial id -> the attempt whose reports count
        self.bar = None  # a d2l_hpo.run.progress display while the tuner runs
        self.best = self._best()
        self.statuses = Counter(row["status"] for row in self.trials.values())
        self.lanes: dict[int, int] = {}  # running trial id -> its worker lane
        self.t0 = backend.clock() - self.elapsed_before
        self._last_save = 0.0
        self._save_every = 1.0  # seconds between writes; more when a write takes long
        self._dirty = True
        self.save_error: OSError | None = None  # the first write of the tables that failed

    def __getstate__(self):
        # the Tuner pickles itself with dill; a progress display cannot be
        return {**self.__dict__, "bar": None}

    def now(self) -> float:
        """Seconds on the experiment's clock (the backend's: simulated time for a replay)."""
        return self.backend.clock() - self.t0

    def running_trials(self) -> list[tuple[int, float]]:
        """(trial id, start) of every trial that is running now."""
        return [(i, self.trials[i]["start"]) for i in self.lanes]

    def mark_timed_out(self, trial_id: int) -> None:
        """The trial is being stopped for running past ``max_trial_time``."""
        self.timed_out.add(trial_id)

    def silent_trials(self) -> list[int]:
        """Trials that ended without reporting anything."""
        reported = {row["trial_id"] for row in self.rows}
        return [i for i, row in self.trials.items()
                if row["status"] not in (RUNNING, *CUT_SHORT) and i not in reported]

    # --- Syne Tune callback hooks -------------------------------------------------
    def on_tuning_start(self, tuner):
        self.t0 = self.backend.clock() - self.elapsed_before
        setup = time.time() - self.called if self.called is not None else None
        if setup is not None:
            self.state.setup_time = self.setup_before + setup
        if self.state.start_timestamp is None:
            self.state.start_timestamp = self.t0
        self.state.finished = False
        if self.show_progress:
            self.bar = progress_display(self.settings.name, self.settings.max_num_trials,
                                        self.settings.metric,
                                        self.settings.max_wallclock_time, clock=self.now,
                                        setup=setup, warm=self.state.warm_server,
                                        simulated=self.backend.simulates_time)
        self.save(force=True)

    def on_start_trial(self, trial):
        busy = set(self.lanes.values())
        lane = next((w for w in range(self.settings.n_workers) if w not in busy), 0)
        self.lanes[trial.trial_id] = lane
        self.statuses[RUNNING] += 1
        # when the backend began launching it: a warm trial can run (and end, having
        # stamped its own end time) in the millisecond before this callback
        launched = self.backend.launch_time(trial.trial_id)
        where = self.backend.trial_placement(trial.trial_id)
        self.trials[trial.trial_id] = {
            "trial_id": trial.trial_id, "status": RUNNING,
            "start": launched - self.t0 if launched is not None else self.now(),
            "end": math.nan, "worker": lane,
            **{config_column(k): trial.config.get(k) for k in self.settings.config_columns},
            "error": "", "pid": where.pid, "pid_started": process_start_time(where.pid),
            # a backend that places trials elsewhere says where once they run
            "node": "" if self.backend.places_trials else where.node,
        }
        self._dirty = True

    def on_fetch_status_results(self, trial_status_dict, new_results):
        self._update_placement()
        for trial_id, result in new_results:
            attempt = int(result.get(ATTEMPT, 1))
            if attempt < self.attempt.get(trial_id, 1):
                continue  # a report of an attempt whose node died
            if attempt > self.attempt.get(trial_id, 1):
                self._drop_reports(trial_id)
            self.attempt[trial_id] = attempt
            self.rows.append(report_row(trial_id, result, self.t0, default_time=self.backend.clock()))
            self._count_level(self.rows[-1])
            value = result.get(self.settings.metric)
            if improves(value, self.best, self.settings.mode):
                self.best = value
            self._dirty = True
        for trial_id, (_, status) in trial_status_dict.items():
            row = self.trials.get(trial_id)
            status = FROM_SYNE_TUNE.get(status, status)
            if row is None or status == RUNNING or row["status"] != RUNNING:
                continue
            self._finish(trial_id, status)

    def on_trial_result(self, trial, status, result, decision):
        # the scheduler stops a trial that reported NaN/inf (diverged) or, with early
        # stopping, one that is not among the best at a rung (pruned); the Tuner then
        # drops it from the trials it polls, so its end is recorded here
        if decision == SchedulerDecision.STOP:
            row = self.trials.get(trial.trial_id)
            if row is None or row["status"] != RUNNING:
                return
            pruned_at = self.scheduler.pruned_at(trial.trial_id) if self.scheduler else None
            if pruned_at is not None:
                self.pruned.add(trial.trial_id)
                row["stopped_at"] = pruned_at
                # as in Syne Tune, what it reported after the decision is not a result
                # (it may have finished another epoch before it was stopped)
                self._drop_reports(trial.trial_id, after=pruned_at)
                self._finish(trial.trial_id, STOPPED)
            else:
                self.diverged.add(trial.trial_id)
                self._finish(trial.trial_id, STOPPED)
                self.best = self._best()  # what it reported before diverging no longer counts

    def on_loop_end(self):
        self.save()
        if self.bar is not None:
            self._update_bar()

    def on_tuning_end(self):
        # still running now: the budget ran out, or the run is being interrupted;
        # the Tuner stops these trials right after this call
        self._update_placement()
        # Ctrl-C, SIGTERM or an error (a full disk, say) ends the run: its running
        # trials were interrupted and run again on resume; else the budget ran out
        interrupted = sys.exc_info()[1] is not None
        for trial_id in list(self.lanes):
            self._set_status(trial_id, INTERRUPTED if interrupted else STOPPED)
            self.trials[trial_id]["end"] = self.now()
        self.state.wallclock = self.now()
        self.state.finished = not interrupted
        try:
            self.save(force=True)
        except ResultsNotSavedError:
            if not interrupted:
                raise
            # the error that ends the run is raised already; the trials' logs keep
            # every report for load_experiment and resume
        if self.bar is not None:
            self._update_bar()
            self.bar.close()
            self.bar = None

    # --- helpers --------------------------------------------------------------------
    def _best(self) -> float:
        return best_value([r.get(self.settings.metric) for r in self.rows
                           if r["trial_id"] not in self.diverged], self.settings.mode)

    def _count_level(self, row: dict) -> None:
        level = row.get(self.settings.resource_attr)
        if isinstance(level, (int, float)) and not isinstance(level, bool) \
                and math.isfinite(level):
            trial_id = row["trial_id"]
            self.levels[trial_id] = max(self.levels.get(trial_id, 0), level)

    def _drop_reports(self, trial_id: int, after: float | None = None) -> None:
        """Forget the trial's reports (only those past level ``after``, if given)."""
        def dropped(r):
            if r["trial_id"] != trial_id:
                return False
            level = r.get(self.settings.resource_attr)
            return after is None or (isinstance(level, (int, float)) and level > after)
        self.rows = [r for r in self.rows if not dropped(r)]
        self.levels.pop(trial_id, None)
        for row in self.rows:
            if row["trial_id"] == trial_id:
                self._count_level(row)
        self.best = self._best()

    def _update_placement(self):
        if not self.backend.places_trials:
            return
        for trial_id, row in self.trials.items():
            if row["status"] != RUNNING and row["node"]:
                continue
            where = self.backend.trial_placement(trial_id)
            if where.node and (row["node"], row["pid"]) != (where.node, where.pid):
                row["node"], row["pid"] = where.node, where.pid
                row["pid_started"] = process_start_time(where.pid)
                if where.started is not None:
                    # it starts when its node begins to run it: a task waits in the
                    # backend's queue until a slot frees, and that wait is idle time
                    row["start"] = max(row["start"], where.started - self.t0)
                self._dirty = True
            if where.rerun_reason and where.attempt > self.attempt.get(trial_id, 1):
                # it runs again from the start (its node died): what the lost attempt
                # reported is dropped, so the table holds one complete run per trial
                self.attempt[trial_id] = where.attempt
                row["error"] = where.rerun_reason
                self._drop_reports(trial_id)
                self._say(f"trial {trial_id}: {where.rerun_reason}")
                self._dirty = True

    def _finish(self, trial_id, status):
        row = self.trials[trial_id]
        if trial_id in self.timed_out:
            status = TIMEOUT
        elif trial_id in self.diverged:
            status = DIVERGED
        elif trial_id in self.pruned:
            status = PRUNED
        self._set_status(trial_id, status)
        end = self.backend.end_time(trial_id)
        row["end"] = max(end - self.t0, row["start"]) if end is not None else self.now()
        if status == FAILED:
            row["error"] = self._stderr_tail(trial_id)
            last = row["error"].splitlines()[-1] if row["error"] else "(no error output)"
            self._say(f"trial {trial_id} failed: {last}")
        elif status == TIMEOUT:
            self._say(f"trial {trial_id} ran past max_trial_time="
                      f"{self.settings.max_trial_time:g} s and was killed")
        elif status == DIVERGED:
            self._say(f"trial {trial_id} diverged ({self.settings.metric} is NaN or "
                      "infinite) and was stopped")
        self._dirty = True

    def _set_status(self, trial_id: int, status: str) -> None:
        row = self.trials[trial_id]
        self.statuses[row["status"]] -= 1
        self.statuses[status] += 1
        row["status"] = status
        if status != RUNNING:
            self.lanes.pop(trial_id, None)

    def _stderr_tail(self, trial_id, lines: int = 5) -> str:
        try:
            text = self.trial_backend.stderr(trial_id=trial_id)
        except Exception:  # a backend without logs: nothing to show
            return ""
        text = [line.rstrip() for line in text if line.strip()]
        return "\n".join(text[-lines:])

    def _say(self, message: str):
        if self.bar is not None:
            self.bar.write(message)
        elif self.show_progress:
            print(message, file=sys.stderr)
        self.state.messages.append(message)

    def _update_bar(self):
        statuses = self.statuses
        self.bar.update(ProgressState(
            completed=statuses[COMPLETED], pruned=statuses[PRUNED],
            failed=sum(statuses[s] for s in UNSUCCESSFUL),
            stopped=sum(statuses[s] for s in CUT_SHORT),
            running=statuses[RUNNING], best=self.best,
            epochs=int(sum(self.levels.values())) if self.settings.early_stopping else None))

    def save(self, force: bool = False):
        now = time.time()
        if not force and (not self._dirty or now - self._last_save < self._save_every):
            return
        if not self.state.finished:
            self.state.wallclock = self.now()
        if self.strategy is not None:
            self.state.search = self.strategy.state()
            self.state.random_draws = len(self.strategy.drawn)
        try:
            write_tables(self.path, to_json(self.settings, self.state),
                         list(self.trials.values()), self.rows, self.settings.config_columns)
        except OSError as err:
            self.save_error = self.save_error or err
            raise ResultsNotSavedError(self.path, err) from None
        # the tables grow with the trials: writing them never takes more than about a
        # tenth of the run (10,000 replayed trials: a write of 10,000 rows each second)
        self._save_every = max(1.0, 10 * (time.time() - now))
        self._last_save, self._dirty = now, False
