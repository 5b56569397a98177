"""Run a random search with Syne Tune: ``run_random_search``.

The pieces are Syne Tune's: a ``TrialBackend`` (local subprocesses by default),
``RandomSearch`` and ``Tuner``. This module adds what a lesson needs around them:
input checks before anything starts, a seeded sequence of configurations that is
the same in sync and async mode, exactly ``max_num_trials`` trials, prompt
polling, a progress bar, and one results table per experiment.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import platform
import re
import signal
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.config_space import Domain
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.optimizer.schedulers.searchers.random_searcher import RandomSearcher
from syne_tune.results_callback import StoreResultsCallback
from syne_tune.tuner_callback import TunerCallback
from syne_tune.tuner_logger import TunerLogger

from d2l_hpo.backends.local import SubprocessBackend, check_self_contained
from d2l_hpo.progress import ProgressState, progress_display
from d2l_hpo.results import (
    EXPERIMENT_FILE, RESULTS_FILE, TRIALS_FILE, Experiment, default_results_dir,
    load_experiment, write_atomically,
)
from d2l_hpo.spaces import validate_config, validate_config_space

# Seconds the tuner waits between looks at its busy workers when nothing wakes it
# earlier. Syne Tune's default is 5 s, which leaves a freed worker idle for up to
# 5 s. Our backends wake the tuner the moment a trial ends (wait_for_change), so
# this only bounds how stale the progress bar and the tables can get.
POLL_INTERVAL = 0.05
LOCAL_NODE = platform.node() or "local"  # the trials table's node for local trials
STATUS = {"InProgress": "running", "Completed": "completed", "Failed": "failed",
          "Stopped": "stopped", "Stopping": "stopped", "Paused": "stopped"}
FINISHED = ("completed", "failed", "diverged", "timeout")  # not run again on resume
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SeededRandomSearcher(RandomSearcher):
    """Random search whose configurations depend only on ``random_seed``.

    Syne Tune 0.16's ``RandomSearcher`` samples from numpy's global generator, so
    its ``random_seed`` does not fix the sequence. This one draws from its own
    generator, and suggests nothing after ``max_suggestions`` configurations.
    """

    def __init__(self, config_space, points_to_evaluate=None, random_seed=None,
                 max_suggestions=None):
        super().__init__(config_space, points_to_evaluate=points_to_evaluate,
                         random_seed=random_seed)
        self.rng = np.random.RandomState(self.random_seed)
        self.max_suggestions = max_suggestions
        self.num_suggested = 0
        self.num_random = 0  # configurations drawn from rng so far

    def _draw(self) -> dict:
        self.num_random += 1
        return {k: v.sample(random_state=self.rng) if isinstance(v, Domain) else v
                for k, v in self.config_space.items()}

    def skip_draws(self, n: int) -> None:
        """Advance the sequence past ``n`` draws (those of an earlier, resumed run)."""
        for _ in range(n):
            for v in self.config_space.values():
                if isinstance(v, Domain):
                    v.sample(random_state=self.rng)

    def suggest(self) -> dict | None:
        if self.max_suggestions is not None and self.num_suggested >= self.max_suggestions:
            return None  # the Tuner then waits for the running trials and stops
        config = self._next_points_to_evaluate()
        if config is None:
            config = self._draw()
        self.num_suggested += 1
        return config


class SeededRandomSearch(RandomSearch):
    """Syne Tune's ``RandomSearch`` with a ``SeededRandomSearcher`` inside, which also

    - stops a trial as soon as it reports a NaN or infinite metric (it diverged:
      more epochs will not bring it back), and
    - lets a report without the metric pass (the runner says so at the end)
      instead of failing the whole experiment with a ``KeyError``.
    """

    def __init__(self, config_space, metric, mode, seed, points_to_evaluate=None,
                 max_num_trials=None):
        super().__init__(config_space, metrics=[metric], do_minimize=(mode == "min"),
                         random_seed=seed)
        self.searcher = SeededRandomSearcher(config_space, points_to_evaluate=points_to_evaluate,
                                             random_seed=seed, max_suggestions=max_num_trials)

    def _value(self, result):
        value = result.get(self.metrics[0])
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def on_trial_result(self, trial, result):
        value = self._value(result)
        if value is None:
            return SchedulerDecision.CONTINUE
        if not math.isfinite(value):
            return SchedulerDecision.STOP
        return super().on_trial_result(trial, result)

    def on_trial_complete(self, trial, result):
        value = self._value(result)
        if value is not None and math.isfinite(value):
            super().on_trial_complete(trial, result)


def seeded_random_search(config_space, metric, mode, seed, initial_config=None,
                         max_num_trials=None) -> SeededRandomSearch:
    """Syne Tune's ``RandomSearch``, seeded for real (see ``SeededRandomSearch``)."""
    return SeededRandomSearch(config_space, metric, mode, seed,
                              [initial_config] if initial_config else None, max_num_trials)


def sample_configs(config_space, n: int, seed: int, initial_config=None) -> list[dict]:
    """The first ``n`` configurations ``run_random_search`` evaluates for ``seed``."""
    searcher = SeededRandomSearcher(
        config_space, points_to_evaluate=[initial_config] if initial_config else None,
        random_seed=seed)
    from syne_tune.config_space import cast_config_values, postprocess_config
    return [postprocess_config(cast_config_values(searcher.suggest(), config_space),
                               config_space) for _ in range(n)]


class _Tuner(Tuner):
    """Syne Tune's Tuner, sleeping event-driven: between polls it waits on the
    backend's ``wait_for_change(seconds)`` when there is one (it returns early when a
    trial ends), else it sleeps ``sleep_time`` as Syne Tune does."""

    def _sleep(self):
        wait = getattr(self.trial_backend, "wait_for_change", None)
        if wait is None:
            time.sleep(self.sleep_time)
        else:
            wait(self.sleep_time)
        for callback in self.callbacks:
            callback.on_tuning_sleep(self.sleep_time)


class _QuietLogger(TunerLogger):
    """Syne Tune's banner and per-trial lines give way to our progress bar."""


for _name in dir(TunerLogger):
    if _name.startswith("print_"):
        setattr(_QuietLogger, _name, lambda self, *args, **kwargs: None)


class ExperimentRecorder(TunerCallback):
    """Keeps the experiment's tables up to date on disk while the Tuner runs,
    assigns each trial a worker lane, enforces ``max_trial_time``, and drives the
    progress bar.

    A trial's status is one of: ``running``, ``completed``, ``failed`` (it raised or
    exited with an error; ``error`` holds the last lines of its stderr),
    ``diverged`` (it reported a NaN or infinite metric and was stopped),
    ``timeout`` (it ran past ``max_trial_time`` and was killed), ``stopped`` (the
    wall-clock budget ran out) or ``interrupted`` (Ctrl-C or a signal).
    """

    def __init__(self, path: Path, settings: dict, progress: bool,
                 max_num_trials: int | None, max_wallclock_time: float | None,
                 max_trial_time: float | None = None, previous=None, searcher=None):
        self.path, self.settings = path, settings
        self.n_workers = settings["n_workers"]
        self.metric, self.mode = settings["metric"], settings["mode"]
        self.trials: dict[int, dict] = {}
        self.rows: list[dict] = []
        self.elapsed_before = 0.0
        if previous is not None:  # a resumed experiment: keep what it had
            self.trials = {int(r["trial_id"]): r for r in previous[0]}
            self.rows = list(previous[1])
            self.elapsed_before = float(settings.get("wallclock") or 0.0)
        self.searcher = searcher
        self.random_draws_before = int(settings.get("random_draws", 0))
        self.diverged: set[int] = set()
        self.timed_out: set[int] = set()
        self.rerun: set[int] = set()
        self.show_progress = progress
        self.max_num_trials, self.max_wallclock_time = max_num_trials, max_wallclock_time
        self.max_trial_time = max_trial_time
        self.bar = None  # a d2l_hpo.progress display while the tuner runs
        finite = [r.get(self.metric) for r in self.rows]
        finite = [v for v in finite if isinstance(v, (int, float)) and math.isfinite(v)]
        self.best = (min(finite) if self.mode == "min" else max(finite)) if finite else math.nan
        self._last_save = 0.0
        self._dirty = True
        self.tuner = None

    def __getstate__(self):
        # the Tuner pickles itself with dill; a progress bar or widget cannot be
        state = dict(self.__dict__)
        state["bar"] = state["tuner"] = None
        return state

    # --- Syne Tune callback hooks -------------------------------------------------
    def on_tuning_start(self, tuner):
        self.tuner = tuner
        # a resumed experiment continues its clock where it stopped
        self.t0 = time.time() - self.elapsed_before
        self.settings.setdefault("start_timestamp", self.t0)
        self.settings["finished"] = False
        if self.show_progress:
            self.bar = progress_display(self.settings["name"], self.max_num_trials,
                                        self.metric, self.max_wallclock_time, clock=self.now)
        self.save(force=True)

    def now(self) -> float:
        return time.time() - self.t0

    def on_start_trial(self, trial):
        busy = {row["worker"] for row in self.trials.values() if row["status"] == "running"}
        lane = min(set(range(self.n_workers)) - busy, default=0)
        process = getattr(self.tuner.trial_backend, "trial_subprocess", {}).get(trial.trial_id)
        # when the backend began launching it: a warm trial can run (and end, having
        # stamped its own end time) in the millisecond before this callback
        launched = getattr(self.tuner.trial_backend, "launch_time", lambda _: None)(
            trial.trial_id)
        start = launched - self.t0 if launched is not None else self.now()
        self.trials[trial.trial_id] = {
            "trial_id": trial.trial_id, "status": "running",
            "start": start, "end": math.nan, "worker": lane,
            **{k: trial.config.get(k) for k in self.settings["config_columns"]},
            "error": "", "pid": getattr(process, "pid", None),
            # a backend that places trials elsewhere tells us where once they start
            "node": "" if hasattr(self.tuner.trial_backend, "placement") else LOCAL_NODE,
        }
        self._dirty = True

    def _update_placement(self):
        placement = getattr(self.tuner.trial_backend, "placement", None)
        if placement is None:
            return
        for trial_id, row in self.trials.items():
            if row["status"] != "running" and row["node"]:
                continue
            where = placement(trial_id)
            if where.get("node") and (row["node"], row["pid"]) != (where["node"][:8],
                                                                    where["pid"]):
                row["node"], row["pid"] = where["node"][:8], where["pid"]
                if where.get("time"):
                    # it starts when its node begins to run it: a task waits in the
                    # backend's queue until a slot frees, and that wait is idle time
                    row["start"] = max(row["start"], where["time"] - self.t0)
                self._dirty = True
            if where.get("note") and trial_id not in self.rerun:
                # it runs again from the start (its node died): what the lost attempt
                # reported is dropped, so the table holds one complete run per trial
                self.rerun.add(trial_id)
                row["error"] = where["note"]
                self.rows = [r for r in self.rows if r["trial_id"] != trial_id]
                self._recompute_best()
                self._say(f"trial {trial_id}: {where['note']}")
                self._dirty = True

    def on_fetch_status_results(self, trial_status_dict, new_results):
        self._update_placement()
        for trial_id, result in new_results:
            row = {"trial_id": trial_id,
                   "time": result.get("st_worker_timestamp", time.time()) - self.t0}
            row.update({k: v for k, v in result.items() if not k.startswith("st_")})
            row["worker_time"] = result.get("st_worker_time", math.nan)
            self.rows.append(row)
            value = result.get(self.metric)
            if (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value)
                    and (math.isnan(self.best) or (value < self.best if self.mode == "min"
                                                   else value > self.best))):
                self.best = value
            self._dirty = True
        for trial_id, (_, status) in trial_status_dict.items():
            row = self.trials.get(trial_id)
            status = STATUS.get(status, status)
            if row is None or status == "running" or row["status"] != "running":
                continue
            self._finish(trial_id, status)

    def on_trial_result(self, trial, status, result, decision):
        # a NaN/inf report makes the scheduler stop the trial; the Tuner then drops it
        # from the trials it polls, so its end is recorded here
        if decision == SchedulerDecision.STOP:
            row = self.trials.get(trial.trial_id)
            if row is not None and row["status"] == "running":
                self.diverged.add(trial.trial_id)
                self._finish(trial.trial_id, "stopped")
                self._recompute_best()  # what it reported before diverging no longer counts

    def _recompute_best(self):
        values = [r.get(self.metric) for r in self.rows if r["trial_id"] not in self.diverged]
        values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        self.best = (min(values) if self.mode == "min" else max(values)) if values else math.nan

    def _finish(self, trial_id, status):
        row = self.trials[trial_id]
        if trial_id in self.timed_out:
            status = "timeout"
        elif trial_id in self.diverged:
            status = "diverged"
        row["status"] = status
        row["end"] = self._end_time(trial_id)
        if status == "failed":
            row["error"] = self._stderr_tail(trial_id)
            self._say(f"trial {trial_id} failed: {row['error'].splitlines()[-1] if row['error'] else '(no error output)'}")
        elif status == "timeout":
            self._say(f"trial {trial_id} ran past max_trial_time={self.max_trial_time:g} s "
                      "and was killed")
        elif status == "diverged":
            self._say(f"trial {trial_id} diverged ({self.metric} is NaN or infinite) and "
                      "was stopped")
        self._dirty = True

    def on_loop_end(self):
        if self.max_trial_time is not None:
            self._enforce_time_limit()
        self.save()
        if self.bar is not None:
            self._update_bar()

    def on_tuning_end(self):
        # still running now: the budget ran out, or the run is being interrupted;
        # the Tuner stops these trials right after this call
        self._update_placement()
        interrupted = isinstance(sys.exc_info()[1], (KeyboardInterrupt, SystemExit))
        for trial_id, row in self.trials.items():
            if row["status"] == "running":
                row["status"] = "interrupted" if interrupted else "stopped"
                row["end"] = self.now()
        self.settings["wallclock"] = self.now()
        self.settings["finished"] = not interrupted
        self.save(force=True)
        if self.bar is not None:
            self._update_bar()
            self.bar.close()
            self.bar = None

    # --- helpers --------------------------------------------------------------------
    def _enforce_time_limit(self):
        now = self.now()
        for trial_id, row in self.trials.items():
            if (row["status"] == "running" and trial_id not in self.timed_out
                    and now - row["start"] > self.max_trial_time):
                self.timed_out.add(trial_id)
                # kills the trial's process and all its children (LocalBackend uses psutil)
                self.tuner.trial_backend.stop_trial(trial_id=trial_id)

    def _stderr_tail(self, trial_id, lines: int = 5) -> str:
        try:
            text = self.tuner.trial_backend.stderr(trial_id=trial_id)
        except Exception:  # a backend without logs: nothing to show
            return ""
        text = [line.rstrip() for line in text if line.strip()]
        return "\n".join(text[-lines:])

    def _say(self, message: str):
        if self.bar is not None:
            self.bar.write(message)
        elif self.show_progress:
            print(message, file=sys.stderr)
        self.settings.setdefault("messages", []).append(message)

    def _end_time(self, trial_id) -> float:
        trial = getattr(self.tuner.trial_backend, "_trial_dict", {}).get(trial_id)
        end = getattr(trial, "training_end_time", None)
        if isinstance(end, datetime):
            return max(end.timestamp() - self.t0, self.trials[trial_id]["start"])
        return self.now()

    def _update_bar(self):
        statuses = [row["status"] for row in self.trials.values()]
        failed = sum(statuses.count(s) for s in ("failed", "diverged", "timeout"))
        self.bar.update(ProgressState(
            completed=statuses.count("completed"), failed=failed,
            stopped=statuses.count("stopped") + statuses.count("interrupted"),
            running=statuses.count("running"), best=self.best))

    def save(self, force: bool = False):
        now = time.time()
        if not force and (not self._dirty or now - self._last_save < 1.0):
            return
        if not self.settings.get("finished"):
            self.settings["wallclock"] = now - self.t0
        if self.searcher is not None:
            self.settings["random_draws"] = self.random_draws_before + self.searcher.num_random
        write_atomically(self.path / EXPERIMENT_FILE, json.dumps(self.settings, indent=1))
        columns = ["trial_id", "status", "start", "end", "worker",
                   *self.settings["config_columns"], "error", "pid", "node"]
        trials = pd.DataFrame(list(self.trials.values()), columns=columns)
        write_atomically(self.path / TRIALS_FILE, trials.to_csv(index=False))
        write_atomically(self.path / RESULTS_FILE, pd.DataFrame(self.rows).to_csv(index=False))
        self._last_save, self._dirty = now, False


class TooManyFailuresError(RuntimeError):
    """More trials failed than ``max_failures`` allows; the experiment stopped."""


class MetricNotReportedError(RuntimeError):
    """No trial reported the metric the search optimises."""


def _check_inputs(objective, config_space, n_workers, max_wallclock_time, max_num_trials,
                  scheduling, metric, mode, name, backend, max_failures, max_trial_time):
    if not callable(objective) and backend is None:
        raise TypeError(f"objective must be a function, got {objective!r}")
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise ValueError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    if scheduling not in ("async", "sync"):
        raise ValueError(f"scheduling must be 'async' or 'sync', got {scheduling!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(metric, str) or not metric or metric.startswith("st_"):
        raise ValueError(f"metric must be the name the objective reports, got {metric!r}")
    if max_wallclock_time is None and max_num_trials is None:
        raise ValueError("give a budget: max_wallclock_time (seconds), max_num_trials, or both")
    for label, value in (("max_wallclock_time", max_wallclock_time),
                         ("max_trial_time", max_trial_time)):
        if value is not None and (not isinstance(value, (int, float)) or not value > 0):
            raise ValueError(f"{label} must be a number of seconds > 0, got {value!r}")
    if max_num_trials is not None and (not isinstance(max_num_trials, int)
                                       or max_num_trials < 1):
        raise ValueError(f"max_num_trials must be an integer >= 1, got {max_num_trials!r}")
    if not isinstance(max_failures, int) or max_failures < 0:
        raise ValueError(f"max_failures must be an integer >= 0, got {max_failures!r}")
    if name is not None and not _NAME.match(str(name)):
        raise ValueError(f"name {name!r} may hold only letters, digits, '.', '_' and '-'")
    if backend is not None and not isinstance(backend, TrialBackend):
        raise TypeError(f"backend must be a Syne Tune TrialBackend, got {type(backend).__name__}")
    validate_config_space(config_space, objective if callable(objective) else None)
    if backend is None or hasattr(backend, "bind_objective"):
        check_self_contained(objective)


def _prepare_folder(results_dir, name, resume) -> Path:
    root = Path(results_dir) if results_dir is not None else default_results_dir()
    path = root / name
    exists = (path / EXPERIMENT_FILE).exists()
    if exists and not resume:
        raise FileExistsError(
            f"an experiment named '{name}' already exists in {root}; pass resume=True to "
            "continue it, or choose another name (name=None picks a fresh one)")
    if resume and not exists:
        raise FileNotFoundError(
            f"resume=True, but there is no experiment '{name}' in {root} to continue")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write results to {path}: {err.strerror}; "
            "pass results_dir= a folder you can write to") from err
    return path


def _previous_run(path: Path, settings: dict) -> dict:
    """What a resumed run keeps and what it redoes, from the files of the earlier run."""
    from d2l_hpo.results import _plain, build_experiment, read_tables
    old, trials, results = read_tables(path)
    # the clock goes on from the last thing that happened, even after a kill -9
    old["wallclock"] = build_experiment(path, dict(old), trials.copy(), results.copy()).wallclock
    for key in ("n_workers", "scheduling", "metric", "mode", "config_columns", "constants"):
        if old.get(key) != settings[key]:
            raise ValueError(
                f"cannot resume '{settings['name']}': its {key} was {old.get(key)!r}, "
                f"now {settings[key]!r}; resume with the same settings, or start a new name")
    _kill_leftovers(trials)
    finished = trials[trials["status"].isin(FINISHED)] if len(trials) else trials
    redo = trials[~trials["status"].isin(FINISHED)] if len(trials) else trials
    keep_ids = set(finished["trial_id"]) if len(finished) else set()
    rows = results[results["trial_id"].isin(keep_ids)] if len(results) else results
    config_columns = settings["config_columns"]
    return {
        "settings": old,
        "trials": finished.to_dict("records") if len(finished) else [],
        "rows": rows.to_dict("records") if len(rows) else [],
        "redo": [{**settings["constants"], **{c: _plain(r[c]) for c in config_columns}}
                 for r in redo.to_dict("records")] if len(redo) else [],
        "next_trial_id": max([int(trials["trial_id"].max()) + 1 if len(trials) else 0,
                              *[i + 1 for i in old.get("abandoned", [])]]),
        # their folders stay on disk, but they are not part of the experiment any more
        "abandoned": sorted({*old.get("abandoned", []),
                             *(int(i) for i in redo["trial_id"])} if len(redo) else
                            set(old.get("abandoned", []))),
    }


def _kill_leftovers(trials: pd.DataFrame) -> None:
    """Trial processes of an earlier run that outlived it (kill -9 of the tuner)."""
    import psutil
    if not len(trials) or "pid" not in trials:
        return
    for pid in trials.loc[~trials["status"].isin(FINISHED), "pid"].dropna():
        try:
            process = psutil.Process(int(pid))
            command = " ".join(process.cmdline())
            if "_trial_main" in command or "_forkserver" in command:
                for child in process.children(recursive=True):
                    child.kill()
                process.kill()
        except (psutil.Error, ValueError):
            pass


@contextlib.contextmanager
def _sigterm_as_interrupt():
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


def run_random_search(objective: Callable, config_space: dict[str, Any], *, n_workers: int,
                      max_wallclock_time: float | None = None,
                      max_num_trials: int | None = None, scheduling: str = "async",
                      metric: str = "validation_error", mode: str = "min",
                      initial_config: dict | None = None, seed: int | None = None,
                      name: str | None = None, backend: TrialBackend | None = None,
                      results_dir: str | os.PathLike | None = None,
                      progress: bool = True, max_failures: int = 3,
                      max_trial_time: float | None = None,
                      resume: bool = False) -> Experiment:
    """Random search over ``config_space`` for ``objective`` on ``n_workers`` workers.

    :param objective: function whose arguments are the space's keys; it reports
        ``metric`` through Syne Tune's ``Reporter``; imports go inside it
    :param config_space: dict of Syne Tune domains (``loguniform``, ``randint``, ...) and constants
    :param n_workers: trials that run at the same time
    :param max_wallclock_time: stop after this many seconds; default None (no limit)
    :param max_num_trials: run exactly this many trials to completion; default None (no limit)
    :param scheduling: ``"async"`` starts a trial whenever a worker frees up; ``"sync"``
        starts ``n_workers`` trials together and waits for the slowest; default ``"async"``
    :param metric: the reported value to optimise; default ``"validation_error"``
    :param mode: ``"min"`` or ``"max"``; default ``"min"``
    :param initial_config: evaluated first, before random configurations; default None
    :param seed: fixes the sequence of configurations (same in sync and async); default: random
    :param name: the experiment's folder name; default: objective name and a time stamp
    :param backend: a Syne Tune ``TrialBackend`` running the trials elsewhere; default None:
        local subprocesses, each with ``cores // n_workers`` threads
    :param results_dir: where the experiment folder goes; default ``runs/`` or ``$SYNETUNE_FOLDER``
    :param progress: show a progress bar; default True
    :param max_failures: stop the experiment when more trials than this fail; default 3
    :param max_trial_time: kill a trial (and its child processes) that runs longer than
        this many seconds and record it as ``timeout``; default None (no limit)
    :param resume: continue the interrupted experiment ``name``: finished trials are
        kept, interrupted ones run again, the seeded sequence goes on, and the budget
        counts what was spent; default False
    :return: the ``Experiment`` with its tables
    :raises TooManyFailuresError: more than ``max_failures`` trials failed (results kept)
    :raises MetricNotReportedError: trials finished but none reported ``metric``
    """
    _check_inputs(objective, config_space, n_workers, max_wallclock_time, max_num_trials,
                  scheduling, metric, mode, name, backend, max_failures, max_trial_time)
    if resume and name is None:
        raise ValueError("resume=True needs the name of the experiment to continue")
    if initial_config is not None:
        initial_config = validate_config(initial_config, config_space)
    if n_workers > usable_cores() and backend is None:
        warnings.warn(
            f"{n_workers} workers on {usable_cores()} CPU cores: trials will share cores, so "
            "each runs slower than alone (fine for trials that mostly wait, like "
            "synthetic_objective)", stacklevel=2)
    objective_name = getattr(objective, "__name__", "objective").replace("_", "-")
    if name is None:
        name = f"{objective_name}-{datetime.now():%Y%m%d-%H%M%S-%f}"
    path = _prepare_folder(results_dir, name, resume)

    settings = {
        "name": name, "n_workers": n_workers, "scheduling": scheduling, "metric": metric,
        "mode": mode, "seed": seed, "max_num_trials": max_num_trials,
        "max_wallclock_time": max_wallclock_time, "max_trial_time": max_trial_time,
        "max_failures": max_failures, "objective": objective_name,
        "backend": type(backend).__name__ if backend is not None else "SubprocessBackend",
        "poll_interval": POLL_INTERVAL,
        "config_columns": [k for k, v in config_space.items() if isinstance(v, Domain)],
        "constants": {k: v for k, v in config_space.items() if not isinstance(v, Domain)},
        "initial_config": initial_config,
    }
    previous, points, first_id = None, [initial_config] if initial_config else [], 0
    trials_left, time_left = max_num_trials, max_wallclock_time
    if resume:
        before = _previous_run(path, settings)
        if seed is not None and seed != before["settings"].get("seed"):
            raise ValueError(f"cannot resume '{name}' with seed={seed}: it ran with "
                             f"seed={before['settings'].get('seed')}")
        seed = before["settings"]["seed"]
        settings.update({k: before["settings"][k] for k in
                         ("seed", "wallclock", "start_timestamp", "random_draws",
                          "initial_config") if k in before["settings"]})
        settings["resumed"] = before["settings"].get("resumed", 0) + 1
        settings["abandoned"] = before["abandoned"]
        previous = (before["trials"], before["rows"])
        first_id = before["next_trial_id"]
        # what the earlier run started but did not finish runs first; the initial
        # configuration only if the earlier run never got to start it
        points = before["redo"] + ([initial_config] if initial_config and first_id == 0 else [])
        if max_num_trials is not None:
            trials_left = max_num_trials - len(before["trials"])
        if max_wallclock_time is not None:
            time_left = max_wallclock_time - float(settings.get("wallclock") or 0)
        if (trials_left is not None and trials_left <= 0) or (
                time_left is not None and time_left <= 0):
            print(f"'{name}' has no budget left: nothing to resume", file=sys.stderr)
            return load_experiment(path)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
    settings["seed"] = seed

    if backend is None:
        backend = SubprocessBackend(objective, config_space,
                                    threads_per_trial=max(1, usable_cores() // n_workers))
    elif hasattr(backend, "bind_objective"):
        backend.bind_objective(objective, config_space)
    if hasattr(backend, "warm_up"):  # its processes import the objective's modules now
        backend.warm_up()
    if hasattr(backend, "capacity") and backend.capacity() < n_workers:
        warnings.warn(
            f"n_workers={n_workers}, but {backend} has room for only {backend.capacity()} "
            "trials at once: the others wait for a free slot", stacklevel=2)
    if first_id:
        if not hasattr(backend, "first_trial_id"):
            raise TypeError(f"{type(backend).__name__} cannot resume an experiment")
        backend.first_trial_id = first_id

    scheduler = SeededRandomSearch(config_space, metric, mode, seed, points or None,
                                   trials_left)
    scheduler.searcher.skip_draws(int(settings.get("random_draws", 0)) if resume else 0)
    recorder = ExperimentRecorder(path, settings, progress, max_num_trials, max_wallclock_time,
                                  max_trial_time, previous=previous, searcher=scheduler.searcher)
    tuner = _Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(max_wallclock_time=time_left),
        n_workers=n_workers,
        sleep_time=POLL_INTERVAL,
        max_failures=max_failures,
        tuner_name=name,
        suffix_tuner_name=False,
        asynchronous_scheduling=(scheduling == "async"),
        callbacks=[StoreResultsCallback(), recorder],
        trial_backend_path=str(path),
        output_logger=_QuietLogger(),
    )
    tuner.tuner_path = path
    syne_logger = logging.getLogger("syne_tune")
    old_level = syne_logger.level
    syne_logger.setLevel(logging.CRITICAL)
    log = io.StringIO()
    try:
        with _sigterm_as_interrupt(), contextlib.redirect_stdout(log):
            tuner.run()  # Syne Tune's summary goes to tuner.log
    except KeyboardInterrupt:
        print(f"\nInterrupted: every trial process was stopped and the results so far are "
              f"in {path}.\nTo continue: run_random_search(..., name={name!r}, resume=True)"
              f" or python -m d2l_hpo run --resume {name}", file=sys.stderr)
        raise
    except ValueError as err:
        if "no metrics got observed" in str(err):  # Syne Tune gives up on such a trial
            raise MetricNotReportedError(
                f"{err}: the objective returned without reporting '{metric}'. Call "
                f"Reporter()({metric}=...) in it (once per epoch). Results are in {path}"
            ) from None
        if tuner.tuning_status.num_trials_failed > max_failures:
            failed = load_experiment(path).trials.query("status == 'failed'")
            last = failed["error"].iloc[-1] if len(failed) else ""
            raise TooManyFailuresError(
                f"{len(failed)} trials failed, more than max_failures={max_failures}, so the "
                f"experiment stopped; results so far are in {path}. Last error:\n{last}"
            ) from None
        raise
    finally:
        syne_logger.setLevel(old_level)
        (path / "tuner.log").write_text(log.getvalue())
    exp = load_experiment(path)
    _check_metric_reported(exp)
    return exp


def _check_metric_reported(exp: Experiment) -> None:
    reported = exp.results[exp.metric].notna() if exp.metric in exp.results else None
    if reported is not None and reported.any():
        return
    done = exp.trials[exp.trials["status"] != "stopped"]["trial_id"].tolist()
    other = sorted(c for c in exp.results.columns
                   if c not in ("trial_id", "time", "worker_time", exp.metric))
    raise MetricNotReportedError(
        f"no trial reported '{exp.metric}' (trials {done}); "
        + (f"they reported only {other}. " if other else "they reported nothing. ")
        + f"Call Reporter()({exp.metric}=...) in the objective, or pass metric= the name it "
        f"reports. Results are in {exp.path}")
