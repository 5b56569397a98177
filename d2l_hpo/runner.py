"""Run a random search with Syne Tune: ``run_random_search``.

The pieces are Syne Tune's: a ``TrialBackend`` (local subprocesses by default), a
seeded ``RandomSearch`` (or, with ``early_stopping="asha"``, Syne Tune's ASHA around
the same seeded searcher) and the ``Tuner``. This module puts them together for one
call, in the order the experiment needs them:

1. settings checked, before anything starts (``d2l_hpo.settings``, ``d2l_hpo.spaces``);
2. the experiment's folder claimed, or the earlier run read back (``d2l_hpo.storage``,
   ``d2l_hpo.resume``);
3. the backend bound to the objective and warmed up (``d2l_hpo.backends``);
4. the seeded searcher or ASHA (``d2l_hpo.searcher``), the recorder of the tables
   (``d2l_hpo.recorder``, with ``d2l_hpo.time_limit``) and the event-driven tuner
   (``d2l_hpo.tuner``), run until the budget is spent;
5. the ``Experiment`` read back from the folder (``d2l_hpo.results``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
import warnings
from datetime import datetime
from typing import Any, Callable

import numpy as np
from syne_tune import StoppingCriterion
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.results_callback import StoreResultsCallback

from d2l_hpo.backends._common import check_self_contained
from d2l_hpo.backends.base import RunnerBackend, as_runner_backend
from d2l_hpo.backends.local import SubprocessBackend
from d2l_hpo.recorder import ExperimentRecorder, ResultsNotSavedError
from d2l_hpo.results import Experiment, load_experiment
from d2l_hpo.resume import ResumePlan, plan_resume, points_to_evaluate
from d2l_hpo.searcher import SeededASHA, SeededRandomSearch, sample_configs
from d2l_hpo.settings import (POLL_INTERVAL, RunSettings, RunState, default_name,
                               objective_code, usable_cores)
from d2l_hpo.spaces import validate_config, validate_config_space
from d2l_hpo.status import CUT_SHORT, DIVERGED, FAILED, STOPPED, TIMEOUT
from d2l_hpo.storage import check_names, prepare_folder, release_folder
from d2l_hpo.time_limit import TrialTimeLimit
from d2l_hpo.tuner import EventDrivenTuner, QuietLogger, sigterm_as_interrupt

__all__ = ["run_random_search", "sample_configs", "usable_cores", "TooManyFailuresError",
           "MetricNotReportedError"]


_ONE_AT_A_TIME = threading.Lock()  # one search per process (see run_random_search)


class TooManyFailuresError(RuntimeError):
    """More trials failed than ``max_failures`` allows; the experiment stopped."""


class MetricNotReportedError(RuntimeError):
    """No trial reported the metric the search optimises."""


def run_random_search(objective: Callable, config_space: dict[str, Any], *, n_workers: int,
                      max_wallclock_time: float | None = None,
                      max_num_trials: int | None = None, scheduling: str = "async",
                      metric: str = "validation_error", mode: str = "min",
                      initial_config: dict | None = None, seed: int | None = None,
                      name: str | None = None, backend: TrialBackend | None = None,
                      results_dir: str | os.PathLike | None = None,
                      progress: bool = True, max_failures: int = 3,
                      max_trial_time: float | None = None,
                      resume: bool = False, early_stopping: str | None = None,
                      grace_period: int = 1, reduction_factor: float = 3,
                      resource_attr: str = "epoch") -> Experiment:
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
    :param early_stopping: ``"asha"`` stops poor trials early with asynchronous
        successive halving (the same seeded configurations, in the same order); such
        a trial is ``pruned``. Needs a constant ``max_epochs`` in the space and
        ``scheduling="async"``; default None (every trial runs all its epochs)
    :param grace_period: ASHA's first rung: epochs before a trial can be stopped; default 1
    :param reduction_factor: at each rung ASHA keeps the best ``1 / reduction_factor``;
        rungs are at ``grace_period * reduction_factor**k`` epochs; default 3
    :param resource_attr: the reported value that counts epochs; default ``"epoch"``
    :return: the ``Experiment`` with its tables
    :raises TooManyFailuresError: more than ``max_failures`` trials failed (results kept)
    :raises MetricNotReportedError: trials finished but none reported ``metric``
    """
    called = time.time()  # the set-up before the clock counts from here
    if not callable(objective) and backend is None:
        raise TypeError(f"objective must be a function, got {objective!r}")
    objective_name = getattr(objective, "__name__", "objective")
    settings = RunSettings(
        name=name if name is not None else default_name(
            objective_name, f"{datetime.now():%Y%m%d-%H%M%S-%f}"),
        n_workers=n_workers, scheduling=scheduling, metric=metric, mode=mode, seed=seed,
        max_num_trials=max_num_trials, max_wallclock_time=max_wallclock_time,
        max_trial_time=max_trial_time, max_failures=max_failures,
        objective=objective_name.replace("_", "-"),
        backend=type(backend).__name__ if backend is not None else "SubprocessBackend",
        early_stopping=early_stopping, grace_period=grace_period,
        reduction_factor=reduction_factor, resource_attr=resource_attr)
    _check_objective(objective, config_space, backend, settings.metric)
    for key, value in RunSettings.space_fields(config_space).items():
        setattr(settings, key, value)
    if settings.early_stopping:
        settings.check_early_stopping_space()
        _check_reports(objective, settings.resource_attr)
    if resume and name is None:
        raise ValueError("resume=True needs the name of the experiment to continue")
    if initial_config is not None:
        initial_config = validate_config(initial_config, config_space)
    settings.initial_config = initial_config
    if settings.n_workers > usable_cores() and backend is None:
        warnings.warn(
            f"{settings.n_workers} workers on {usable_cores()} CPU cores: trials will share "
            "cores, so each runs slower than alone (fine for trials that mostly wait, like "
            "synthetic_objective)", stacklevel=2)
    if not _ONE_AT_A_TIME.acquire(blocking=False):
        raise RuntimeError(
            "run_random_search is already running in this process (another thread): it "
            "redirects this process's output while it runs, so run one search at a time "
            "per process, or the second in another process")
    try:
        path = prepare_folder(results_dir, settings.name, resume)
        try:
            return _prepare_and_run(objective, config_space, settings, initial_config,
                                    backend, path, progress, resume, called)
        finally:
            release_folder(path)
    finally:
        _ONE_AT_A_TIME.release()


def _prepare_and_run(objective, config_space, settings, initial_config, backend, path,
                     progress, resume, called: float) -> Experiment:
    """Resume plan, seed, backend bound and warmed up; then the run."""
    settings.objective_code = objective_code(objective)
    plan = plan_resume(path, settings) if resume else None
    if plan is not None:
        settings, state = plan.settings, plan.state
        for message in state.messages:  # what the resume noticed (a changed objective)
            print(message, file=sys.stderr)
        if plan.nothing_left:
            print(f"'{settings.name}' has no budget left: nothing to resume", file=sys.stderr)
            return load_experiment(path)
    else:
        state = RunState()
    if settings.seed is None:
        settings.seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))

    first_trial_id = plan.next_trial_id if plan is not None else 0
    if backend is None:
        backend = SubprocessBackend(objective, config_space, first_trial_id=first_trial_id,
                                    threads_per_trial=max(1, usable_cores() // settings.n_workers))
    runner_backend = as_runner_backend(backend)
    runner_backend.bind_objective(objective, config_space, first_trial_id)
    try:
        runner_backend.warm_up()  # e.g. its processes import the objective's modules now
    except BaseException:  # Ctrl-C while it imports: leave no process behind
        with contextlib.suppress(Exception):
            backend.stop_all()
        raise
    capacity = runner_backend.capacity()
    if capacity is not None and capacity < settings.n_workers:
        warnings.warn(
            f"n_workers={settings.n_workers}, but {backend} has room for only {capacity} "
            "trials at once: the others wait for a free slot", stacklevel=2)
    state.warm_server = runner_backend.warm_state()
    return _run(settings, state, plan, backend, runner_backend, config_space,
                points_to_evaluate(plan, initial_config), path, progress, called)


def _check_objective(objective, config_space, backend, metric: str) -> None:
    if backend is not None and not isinstance(backend, TrialBackend):
        raise TypeError(f"backend must be a Syne Tune TrialBackend, got {type(backend).__name__}")
    if backend is None or isinstance(backend, RunnerBackend):  # we ship it to the trials
        check_self_contained(objective)
    validate_config_space(config_space, objective if callable(objective) else None)
    check_names(config_space, metric)


def _check_reports(objective, resource_attr: str) -> None:
    """Early stopping reads ``resource_attr`` in every report: refuse an objective whose
    code never names it (a report through ``**values`` is found at run time instead)."""
    code = getattr(objective, "__code__", None)
    if code is None:
        return
    names, codes = set(), [code]
    while codes:
        current = codes.pop()
        for const in current.co_consts:
            if isinstance(const, str):
                names.add(const)
            elif isinstance(const, tuple):
                names.update(c for c in const if isinstance(c, str))
            elif hasattr(const, "co_consts"):
                codes.append(const)
        names.update(current.co_names)
    if resource_attr not in names and not code.co_flags & 0x08:  # 0x08: it takes **kwargs
        raise ValueError(
            f"early stopping counts epochs by the reported value '{resource_attr}', but "
            f"{getattr(objective, '__name__', 'the objective')}() never names it: report it "
            f"after each epoch (Reporter()({resource_attr}=epoch, ...)), or pass "
            "resource_attr= the name it reports")


def make_scheduler(settings: RunSettings, config_space: dict, points: list,
                   max_num_trials: int | None):
    """The seeded random search, or ASHA around the same seeded searcher."""
    if settings.early_stopping == "asha":
        return SeededASHA(config_space, settings.metric, settings.mode, settings.seed,
                          max_t=settings.check_early_stopping_space(),
                          grace_period=settings.grace_period,
                          reduction_factor=settings.reduction_factor,
                          resource_attr=settings.resource_attr,
                          points_to_evaluate=points or None, max_num_trials=max_num_trials)
    return SeededRandomSearch(config_space, settings.metric, settings.mode, settings.seed,
                              points or None, max_num_trials)


def _run(settings: RunSettings, state: RunState, plan: ResumePlan | None,
         backend: TrialBackend, runner_backend: RunnerBackend, config_space: dict,
         points: list, path, progress: bool, called: float | None = None) -> Experiment:
    """Run the tuner on a prepared backend and folder; the experiment it recorded."""
    scheduler = make_scheduler(settings, config_space, points,
                               plan.trials_left if plan else settings.max_num_trials)
    scheduler.searcher.skip_draws(state.random_draws if plan else 0)
    if plan is not None and hasattr(scheduler, "replay"):  # the rungs as they were
        scheduler.replay(plan.kept_reports)
    recorder = ExperimentRecorder(
        path, settings, state, runner_backend, backend, progress,
        kept_trials=plan.kept_trials if plan else (),
        kept_reports=plan.kept_reports if plan else (), searcher=scheduler.searcher,
        scheduler=scheduler, called=called)
    time_limit = ([TrialTimeLimit(recorder, backend, settings.max_trial_time)]
                  if settings.max_trial_time is not None else [])
    tuner = EventDrivenTuner(
        trial_backend=backend,
        runner_backend=runner_backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(
            max_wallclock_time=plan.time_left if plan else settings.max_wallclock_time),
        n_workers=settings.n_workers,
        sleep_time=POLL_INTERVAL,
        max_failures=settings.max_failures,
        tuner_name=settings.name,
        suffix_tuner_name=False,
        asynchronous_scheduling=(settings.scheduling == "async"),
        # the recorder first: its last save comes before any other callback's, even
        # when one of those fails (a full disk)
        callbacks=[recorder, StoreResultsCallback(), *time_limit],
        trial_backend_path=str(path),
        output_logger=QuietLogger(),
    )
    tuner.tuner_path = path
    syne_logger = logging.getLogger("syne_tune")
    old_level = syne_logger.level
    syne_logger.setLevel(logging.CRITICAL)
    log = io.StringIO()
    try:
        with sigterm_as_interrupt(), contextlib.redirect_stdout(log):
            tuner.run()  # Syne Tune's summary goes to tuner.log
    except KeyboardInterrupt:
        print(f"\nInterrupted: every trial process was stopped and the results so far are "
              f"in {path}.\nTo continue: run_random_search(..., name={settings.name!r}, "
              f"resume=True) or python -m d2l_hpo run --resume {settings.name}",
              file=sys.stderr)
        raise
    except ValueError as err:
        silent = recorder.silent_trials()
        if silent and "no metrics" in str(err):  # a trial completed without any report
            raise MetricNotReportedError(
                f"trial {silent[0]} ended without reporting anything: the objective "
                f"returned without reporting '{settings.metric}'. Call "
                f"Reporter()({settings.metric}=...) in it (once per epoch). Results are in "
                f"{path}") from None
        if tuner.tuning_status.num_trials_failed > settings.max_failures:
            failed = load_experiment(path).trials.query(f"status == '{FAILED}'")
            last = failed["error"].iloc[-1] if len(failed) else ""
            raise TooManyFailuresError(
                f"{len(failed)} trials failed, more than max_failures={settings.max_failures}, "
                f"so the experiment stopped; results so far are in {path}. Last error:\n{last}"
                f"{_hint_for(last)}") from err
        raise
    except OSError:
        if recorder.save_error is not None:  # the cause; what failed after it is noise
            raise ResultsNotSavedError(path, recorder.save_error) from None
        raise
    finally:
        syne_logger.setLevel(old_level)
        with contextlib.suppress(OSError):  # a full disk is said by the error above
            (path / "tuner.log").write_text(log.getvalue())
    exp = load_experiment(path)
    _check_metric_reported(exp)
    return exp


def _check_metric_reported(exp: Experiment) -> None:
    """Raise ``MetricNotReportedError`` with the cause when no trial reported the metric."""
    column = exp.results[exp.metric] if exp.metric in exp.results else None
    if column is not None and column.notna().any():
        return
    raise MetricNotReportedError(
        _why_nothing_was_reported(exp, column)
        + f" Results are in {exp.path}")


def _hint_for(error: str) -> str:
    """What to do about a trial's error, when it is a usual mistake."""
    if "NameError" in error or "ModuleNotFoundError" in error:
        return ("\nEach trial runs the objective on its own, without the notebook's or "
                "script's other names: put imports and helper functions inside the "
                "objective, or into a package the trials can import.")
    return ""


def _why_nothing_was_reported(exp: Experiment, column) -> str:
    statuses = exp.trials["status"].tolist()
    ids = exp.trials["trial_id"].tolist()
    if statuses and all(s == FAILED for s in statuses):
        last = exp.trials["error"].iloc[-1] or "(no error output)"
        return f"every trial failed ({len(ids)}), so none reported '{exp.metric}'. The " \
               f"last error:\n{last}{_hint_for(last)}\n"
    if statuses and all(s == TIMEOUT for s in statuses):
        return (f"every trial ran past max_trial_time={exp.settings.get('max_trial_time')} s "
                f"before reporting '{exp.metric}'; allow more time per trial.")
    if statuses and all(s in CUT_SHORT for s in statuses):
        return (f"the budget ran out before any trial reported '{exp.metric}' (wall-clock "
                f"{exp.wallclock:.1f} s); give a larger max_wallclock_time.")
    if statuses and all(s == DIVERGED for s in statuses):
        return (f"every trial diverged: '{exp.metric}' was NaN or infinite from its first "
                "report; try smaller learning rates.")
    if column is not None:  # reported, but never as a number
        return (f"the trials reported '{exp.metric}', but never as a number (it was "
                f"written as null): report a Python float, e.g. {exp.metric}=float(value) "
                "for a tensor or numpy value.")
    done = [i for i, s in zip(ids, statuses) if s != STOPPED]
    other = sorted(c for c in exp.results.columns
                   if c not in ("trial_id", "time", "worker_time", exp.metric))
    return (f"no trial reported '{exp.metric}' (trials {done}); "
            + (f"they reported only {other}. " if other else "they reported nothing. ")
            + f"Call Reporter()({exp.metric}=...) in the objective, or pass metric= the name "
            "it reports.")
