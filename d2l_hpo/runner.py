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
import re
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
from syne_tune.optimizer.schedulers.searchers.random_searcher import RandomSearcher
from syne_tune.results_callback import StoreResultsCallback
from syne_tune.tuner_callback import TunerCallback
from syne_tune.tuner_logger import TunerLogger

from d2l_hpo.backends.local import SubprocessBackend, check_self_contained
from d2l_hpo.results import (
    EXPERIMENT_FILE, RESULTS_FILE, TRIALS_FILE, Experiment, default_results_dir,
    load_experiment, write_atomically,
)
from d2l_hpo.spaces import validate_config, validate_config_space

# Seconds the tuner waits between looks at its busy workers. Syne Tune's default
# is 5 s, which leaves a freed worker idle for up to 5 s; a look costs well under
# a millisecond per running trial (benchmarks/polling.py measures both).
POLL_INTERVAL = 0.05
STATUS = {"InProgress": "running", "Completed": "completed", "Failed": "failed",
          "Stopped": "stopped", "Stopping": "stopped", "Paused": "stopped"}
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

    def suggest(self) -> dict | None:
        if self.max_suggestions is not None and self.num_suggested >= self.max_suggestions:
            return None  # the Tuner then waits for the running trials and stops
        config = self._next_points_to_evaluate()
        if config is None:
            config = {k: v.sample(random_state=self.rng) if isinstance(v, Domain) else v
                      for k, v in self.config_space.items()}
        self.num_suggested += 1
        return config


def seeded_random_search(config_space, metric, mode, seed, initial_config=None,
                         max_num_trials=None) -> RandomSearch:
    """Syne Tune's ``RandomSearch`` with a ``SeededRandomSearcher`` inside."""
    scheduler = RandomSearch(config_space, metrics=[metric], do_minimize=(mode == "min"),
                             random_seed=seed)
    scheduler.searcher = SeededRandomSearcher(
        config_space, points_to_evaluate=[initial_config] if initial_config else None,
        random_seed=seed, max_suggestions=max_num_trials)
    return scheduler


def sample_configs(config_space, n: int, seed: int, initial_config=None) -> list[dict]:
    """The first ``n`` configurations ``run_random_search`` evaluates for ``seed``."""
    searcher = SeededRandomSearcher(
        config_space, points_to_evaluate=[initial_config] if initial_config else None,
        random_seed=seed)
    from syne_tune.config_space import cast_config_values, postprocess_config
    return [postprocess_config(cast_config_values(searcher.suggest(), config_space),
                               config_space) for _ in range(n)]


class _QuietLogger(TunerLogger):
    """Syne Tune's banner and per-trial lines give way to our progress bar."""


for _name in dir(TunerLogger):
    if _name.startswith("print_"):
        setattr(_QuietLogger, _name, lambda self, *args, **kwargs: None)


class ExperimentRecorder(TunerCallback):
    """Keeps the experiment's tables up to date on disk while the Tuner runs,
    assigns each trial a worker lane, and drives the progress bar."""

    def __init__(self, path: Path, settings: dict, progress: bool,
                 max_num_trials: int | None, max_wallclock_time: float | None):
        self.path, self.settings = path, settings
        self.n_workers = settings["n_workers"]
        self.metric, self.mode = settings["metric"], settings["mode"]
        self.trials: dict[int, dict] = {}
        self.rows: list[dict] = []
        self.lane_of: dict[int, int] = {}
        self.show_progress = progress
        self.max_num_trials, self.max_wallclock_time = max_num_trials, max_wallclock_time
        self.bar = None
        self._bar_state, self._bar_drawn = None, 0.0
        self.best = math.nan
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
        self.t0 = time.time()
        self.settings["start_timestamp"] = self.t0
        if self.show_progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.max_num_trials, unit="trial",
                            desc=f"{self.settings['name']}", dynamic_ncols=True)
        self.save(force=True)

    def on_start_trial(self, trial):
        busy = {self.lane_of[t] for t, row in self.trials.items() if row["status"] == "running"}
        lane = min(set(range(self.n_workers)) - busy, default=0)
        self.lane_of[trial.trial_id] = lane
        self.trials[trial.trial_id] = {
            "trial_id": trial.trial_id, "status": "running",
            "start": time.time() - self.t0, "end": math.nan, "worker": lane,
            **{k: trial.config.get(k) for k in self.settings["config_columns"]},
        }
        self._dirty = True

    def on_fetch_status_results(self, trial_status_dict, new_results):
        for trial_id, result in new_results:
            row = {"trial_id": trial_id,
                   "time": result.get("st_worker_timestamp", time.time()) - self.t0}
            row.update({k: v for k, v in result.items() if not k.startswith("st_")})
            row["worker_time"] = result.get("st_worker_time", math.nan)
            self.rows.append(row)
            value = result.get(self.metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                if math.isnan(self.best) or (value < self.best if self.mode == "min"
                                             else value > self.best):
                    self.best = value
            self._dirty = True
        for trial_id, (_, status) in trial_status_dict.items():
            row = self.trials.get(trial_id)
            status = STATUS.get(status, status)
            if row is None or status == "running" or row["status"] != "running":
                continue
            row["status"] = status
            row["end"] = self._end_time(trial_id)
            self._dirty = True

    def on_loop_end(self):
        self.save()
        if self.bar is not None:
            self._update_bar()

    def on_tuning_end(self):
        # still running now means the budget ran out: the Tuner stops them next
        for trial_id, row in self.trials.items():
            if row["status"] == "running":
                row["status"], row["end"] = "stopped", time.time() - self.t0
        self.settings["wallclock"] = time.time() - self.t0
        self.settings["finished"] = True
        self.save(force=True)
        if self.bar is not None:
            self._update_bar()
            self.bar.close()

    # --- helpers --------------------------------------------------------------------
    def _end_time(self, trial_id) -> float:
        trial = getattr(self.tuner.trial_backend, "_trial_dict", {}).get(trial_id)
        end = getattr(trial, "training_end_time", None)
        if isinstance(end, datetime):
            return max(end.timestamp() - self.t0, self.trials[trial_id]["start"])
        return time.time() - self.t0

    def _update_bar(self):
        statuses = [row["status"] for row in self.trials.values()]
        state = (sum(s != "running" for s in statuses), statuses.count("running"),
                 statuses.count("failed"), self.best)
        now = time.time()
        # redraw when something changed, and once a second for the time budget
        if state == self._bar_state and now - self._bar_drawn < 1.0:
            return
        self._bar_state, self._bar_drawn = state, now
        self.bar.n = state[0]
        postfix = {"running": state[1], "failed": state[2],
                   f"best {self.metric}": "-" if math.isnan(self.best) else f"{self.best:.4g}"}
        if self.max_wallclock_time:
            postfix["budget"] = f"{now - self.t0:.0f}/{self.max_wallclock_time:.0f}s"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def save(self, force: bool = False):
        now = time.time()
        if not force and (not self._dirty or now - self._last_save < 1.0):
            return
        self.settings.setdefault("wallclock", None)
        if not self.settings.get("finished"):
            self.settings["wallclock"] = now - self.t0
        write_atomically(self.path / EXPERIMENT_FILE, json.dumps(self.settings, indent=1))
        columns = ["trial_id", "status", "start", "end", "worker",
                   *self.settings["config_columns"]]
        trials = pd.DataFrame(list(self.trials.values()), columns=columns)
        write_atomically(self.path / TRIALS_FILE, trials.to_csv(index=False))
        write_atomically(self.path / RESULTS_FILE, pd.DataFrame(self.rows).to_csv(index=False))
        self._last_save, self._dirty = now, False


def _check_inputs(objective, config_space, n_workers, max_wallclock_time, max_num_trials,
                  scheduling, metric, mode, name, backend):
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
    if max_wallclock_time is not None and not max_wallclock_time > 0:
        raise ValueError(f"max_wallclock_time must be > 0 seconds, got {max_wallclock_time!r}")
    if max_num_trials is not None and (not isinstance(max_num_trials, int)
                                       or max_num_trials < 1):
        raise ValueError(f"max_num_trials must be an integer >= 1, got {max_num_trials!r}")
    if name is not None and not _NAME.match(str(name)):
        raise ValueError(f"name {name!r} may hold only letters, digits, '.', '_' and '-'")
    if backend is not None and not isinstance(backend, TrialBackend):
        raise TypeError(f"backend must be a Syne Tune TrialBackend, got {type(backend).__name__}")
    validate_config_space(config_space, objective if callable(objective) else None)
    if backend is None or hasattr(backend, "bind_objective"):
        check_self_contained(objective)


def _prepare_folder(results_dir, name) -> Path:
    root = Path(results_dir) if results_dir is not None else default_results_dir()
    path = root / name
    if (path / EXPERIMENT_FILE).exists():
        raise FileExistsError(
            f"an experiment named '{name}' already exists in {root.resolve()}; "
            "choose another name (or leave name=None for a fresh one)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write results to {path.resolve()}: {err.strerror}; "
            "pass results_dir= a folder you can write to") from err
    return path


def run_random_search(objective: Callable, config_space: dict[str, Any], *, n_workers: int,
                      max_wallclock_time: float | None = None,
                      max_num_trials: int | None = None, scheduling: str = "async",
                      metric: str = "validation_error", mode: str = "min",
                      initial_config: dict | None = None, seed: int | None = None,
                      name: str | None = None, backend: TrialBackend | None = None,
                      results_dir: str | os.PathLike | None = None,
                      progress: bool = True, max_failures: int = 3) -> Experiment:
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
    :param max_failures: abort after more than this many failed trials; default 3
    :return: the ``Experiment`` with its tables
    """
    _check_inputs(objective, config_space, n_workers, max_wallclock_time, max_num_trials,
                  scheduling, metric, mode, name, backend)
    if initial_config is not None:
        initial_config = validate_config(initial_config, config_space)
    if n_workers > usable_cores() and backend is None:
        warnings.warn(
            f"{n_workers} workers on {usable_cores()} CPU cores: trials will share cores, so "
            "each runs slower than alone (fine for trials that mostly wait, like "
            "synthetic_objective)", stacklevel=2)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
    objective_name = getattr(objective, "__name__", "objective").replace("_", "-")
    if name is None:
        name = f"{objective_name}-{datetime.now():%Y%m%d-%H%M%S-%f}"
    path = _prepare_folder(results_dir, name)

    if backend is None:
        backend = SubprocessBackend(objective, config_space,
                                    threads_per_trial=max(1, usable_cores() // n_workers))
    elif hasattr(backend, "bind_objective"):
        backend.bind_objective(objective, config_space)

    settings = {
        "name": name, "n_workers": n_workers, "scheduling": scheduling, "metric": metric,
        "mode": mode, "seed": seed, "max_num_trials": max_num_trials,
        "max_wallclock_time": max_wallclock_time, "objective": objective_name,
        "backend": type(backend).__name__, "poll_interval": POLL_INTERVAL,
        "config_columns": [k for k, v in config_space.items() if isinstance(v, Domain)],
        "constants": {k: v for k, v in config_space.items() if not isinstance(v, Domain)},
        "initial_config": initial_config,
    }
    recorder = ExperimentRecorder(path, settings, progress, max_num_trials, max_wallclock_time)
    tuner = Tuner(
        trial_backend=backend,
        scheduler=seeded_random_search(config_space, metric, mode, seed, initial_config,
                                       max_num_trials),
        stop_criterion=StoppingCriterion(max_wallclock_time=max_wallclock_time),
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
    syne_logger.setLevel(logging.ERROR)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):  # Syne Tune's summary goes to tuner.log
            tuner.run()
    finally:
        syne_logger.setLevel(old_level)
        (path / "tuner.log").write_text(log.getvalue())
    return load_experiment(path)
