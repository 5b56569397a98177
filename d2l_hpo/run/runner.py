"""One search call: ``run_search`` (any strategy of ``d2l_hpo.search``) and its
lesson-01 form ``run_random_search``.

The pieces are Syne Tune's: a ``TrialBackend`` (local subprocesses by default), a
scheduler with a seeded search strategy inside (``d2l_hpo.search``) and the ``Tuner``.
This module puts them together for one call, in the order the experiment needs them:

1. settings checked, before anything starts (``run.settings``, ``search.spaces``,
   ``run.checks``);
2. the experiment's folder claimed, or the earlier run read back (``experiment.storage``,
   ``run.resume``);
3. the backend bound to the objective and warmed up (``backends``);
4. the strategy and its scheduler (``search``), the recorder of the tables
   (``run.recorder``, with ``run.time_limit``) and the event-driven tuner (``run.tuner``),
   run until the budget is spent;
5. the ``Experiment`` read back from the folder (``experiment.results``).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.results_callback import StoreResultsCallback

from d2l_hpo.backends.base import RunnerBackend, as_runner_backend
from d2l_hpo.backends.local import SubprocessBackend
from d2l_hpo.benchmarks import TabularBenchmark, is_tabular
from d2l_hpo.common.signals import sigterm_as_interrupt
from d2l_hpo.common.status import FAILED
from d2l_hpo.common.system import usable_cores
from d2l_hpo.experiment.results import Experiment, load_experiment
from d2l_hpo.experiment.storage import prepare_folder, release_folder
from d2l_hpo.run.checks import (MetricNotReportedError, TooManyFailuresError,
                                check_metric_reported, check_objective, check_reports, hint_for)
from d2l_hpo.run.recorder import ExperimentRecorder, ResultsNotSavedError
from d2l_hpo.run.resume import ResumePlan, plan_resume, points_to_evaluate
from d2l_hpo.run.settings import (POLL_INTERVAL, RunSettings, RunState, default_name,
                                  objective_code)
from d2l_hpo.run.time_limit import TrialTimeLimit
from d2l_hpo.run.tuner import EventDrivenTuner, QuietLogger
from d2l_hpo.search.base import EarlyStopping, GuardedScheduler
from d2l_hpo.search.registry import searcher_class
from d2l_hpo.search.spaces import validate_config

__all__ = ["run_search", "run_random_search", "TooManyFailuresError",
           "MetricNotReportedError"]


_ONE_AT_A_TIME = threading.Lock()  # one search per process (see run_random_search)


def run_search(objective: Callable, config_space: dict[str, Any], *, n_workers: int,
               searcher: str = "random", early_stopping: str | EarlyStopping | None = None,
               max_wallclock_time: float | None = None, max_num_trials: int | None = None,
               scheduling: str = "async", metric: str = "validation_error",
               mode: str = "min", seed: int | None = None,
               initial_config: dict | None = None, name: str | None = None,
               backend: TrialBackend | None = None,
               results_dir: str | os.PathLike | None = None, progress: bool = True,
               max_failures: int = 3, max_trial_time: float | None = None,
               resume: bool = False, resource_attr: str = "epoch") -> Experiment:
    """Search ``config_space`` for ``objective`` with ``searcher`` on ``n_workers`` workers.

    :param objective: function whose arguments are the space's keys; it reports
        ``metric`` through Syne Tune's ``Reporter``; imports go inside it. Or a
        tabulated benchmark (``d2l_hpo.benchmarks.tabular(name)``): its measured
        training runs are replayed in simulated time (``wallclock``, ``start``, ``end``
        and ``max_wallclock_time`` are then simulated seconds)
    :param config_space: dict of Syne Tune domains (``loguniform``, ``randint``, ...) and constants
    :param n_workers: trials that run at the same time
    :param searcher: what to try next, a name in ``d2l_hpo.SEARCHERS``: ``"random"``
        (default), ``"tpe"``, ``"rea"``, ``"bore"``, ``"optuna_tpe"`` (Optuna's TPE, which
        counts the trials still running as bad results: its constant liar) and
        ``"optuna_tpe_no_liar"``; the same ``seed`` gives the same suggestions (in a
        synchronous run, in a replay of a tabulated benchmark, or with one worker; a
        real asynchronous run's learning searcher sees whatever had finished, which
        depends on timing)
    :param early_stopping: None (every trial runs all its epochs), ``"asha"`` or
        ``d2l_hpo.ASHA(grace_period=..., reduction_factor=...)``: stops poor trials at
        rungs (``pruned``); needs a constant ``max_epochs`` in the space, async
        scheduling and ``searcher="random"``
    :param max_wallclock_time: stop after this many seconds; default None (no limit)
    :param max_num_trials: run exactly this many trials to completion; default None (no limit)
    :param scheduling: ``"async"`` starts a trial whenever a worker frees up; ``"sync"``
        starts ``n_workers`` trials together and waits for the slowest; default ``"async"``
    :param metric: the reported value to optimise; default ``"validation_error"``
    :param mode: ``"min"`` or ``"max"``; default ``"min"``
    :param seed: fixes the suggestions; default: random
    :param initial_config: evaluated first, before the searcher's; default None
    :param name: the experiment's folder name; default: objective name and a time stamp
    :param backend: a Syne Tune ``TrialBackend`` running the trials elsewhere; default None:
        local subprocesses, each with ``cores // n_workers`` threads
    :param results_dir: where the experiment folder goes; default ``runs/`` or ``$SYNETUNE_FOLDER``
    :param progress: show a progress bar; default True
    :param max_failures: stop the experiment when more trials than this fail; default 3
    :param max_trial_time: kill a trial (and its child processes) that runs longer than
        this many seconds and record it as ``timeout``; default None (no limit)
    :param resume: continue the interrupted experiment ``name``: finished trials are
        kept, interrupted ones run again, the searcher goes on as the uninterrupted run
        would have (it is told again what it had been told), and the budget counts
        what was spent; default False
    :param resource_attr: the reported value that counts epochs; default ``"epoch"``
    :return: the ``Experiment`` with its tables
    :raises TooManyFailuresError: more than ``max_failures`` trials failed (results kept)
    :raises MetricNotReportedError: trials finished but none reported ``metric``
    """
    called = time.time()  # the set-up before the clock counts from here
    if is_tabular(objective):
        _check_replay(objective, config_space, backend, early_stopping, max_trial_time,
                      resume)
    elif not callable(objective) and backend is None:
        raise TypeError(f"objective must be a function, got {objective!r}")
    rule_options = {}
    if isinstance(early_stopping, EarlyStopping):  # its options are settings of the run
        rule_options = dataclasses.asdict(early_stopping)
        early_stopping = early_stopping.name
    objective_name = getattr(objective, "__name__", "objective")
    if is_tabular(objective):
        _check_replay_space(objective, config_space, metric)
    else:
        check_objective(objective, config_space, backend, metric)
    if initial_config is not None:
        initial_config = validate_config(initial_config, config_space)
    settings = RunSettings(
        name=name if name is not None else default_name(
            objective_name, f"{datetime.now():%Y%m%d-%H%M%S-%f}"),
        n_workers=n_workers, scheduling=scheduling, metric=metric, mode=mode, seed=seed,
        max_num_trials=max_num_trials, max_wallclock_time=max_wallclock_time,
        max_trial_time=max_trial_time, max_failures=max_failures,
        objective=objective_name.replace("_", "-"),
        backend=(type(backend).__name__ if backend is not None else
                 "SimulatedBackend" if is_tabular(objective) else "SubprocessBackend"),
        searcher=searcher, early_stopping=early_stopping, resource_attr=resource_attr,
        initial_config=initial_config, objective_code=objective_code(objective),
        **rule_options, **RunSettings.space_fields(config_space))
    rungs = settings.check_search(config_space)
    if settings.early_stopping:
        check_reports(objective, settings.resource_attr)
    if resume and name is None:
        raise ValueError("resume=True needs the name of the experiment to continue")
    if settings.n_workers > usable_cores() and backend is None and not is_tabular(objective):
        warnings.warn(
            f"{settings.n_workers} workers on {usable_cores()} CPU cores: trials will share "
            "cores, so each runs slower than alone (fine for trials that mostly wait, like "
            "synthetic_objective)", stacklevel=2)
    if not _ONE_AT_A_TIME.acquire(blocking=False):
        raise RuntimeError(
            "a search is already running in this process (another thread): it redirects "
            "this process's output while it runs, so run one search at a time per "
            "process, or the second in another process")
    try:
        path = prepare_folder(results_dir, settings.name, resume)
        try:
            return _prepare_and_run(objective, config_space, settings, rungs, backend, path,
                                    progress, resume, called)
        finally:
            release_folder(path)
    finally:
        _ONE_AT_A_TIME.release()


def run_random_search(objective: Callable, config_space: dict[str, Any], *, n_workers: int,
                      early_stopping: str | None = None, grace_period: int = 1,
                      reduction_factor: float = 3, **options) -> Experiment:
    """Random search over ``config_space`` for ``objective`` on ``n_workers`` workers:
    ``run_search(..., searcher="random")``, the book's helper of lesson 01.

    :param early_stopping: ``"asha"`` stops poor trials early with asynchronous
        successive halving (the same seeded configurations, in the same order); such
        a trial is ``pruned``. Needs a constant ``max_epochs`` in the space and
        ``scheduling="async"``; default None (every trial runs all its epochs)
    :param grace_period: ASHA's first rung: epochs before a trial can be stopped; default 1
    :param reduction_factor: at each rung ASHA keeps the best ``1 / reduction_factor``;
        rungs are at ``grace_period * reduction_factor**k`` epochs; default 3
    :param options: the other keywords of ``run_search`` (``max_num_trials``,
        ``max_wallclock_time``, ``scheduling``, ``seed``, ``name``, ``resume``, ...)
    """
    if "searcher" in options:
        raise TypeError("run_random_search always searches at random; call "
                        f"run_search(..., searcher={options['searcher']!r}) for another searcher")
    rule = _rule(early_stopping, grace_period, reduction_factor)
    return run_search(objective, config_space, n_workers=n_workers, searcher="random",
                      early_stopping=rule, **options)


def _rule(early_stopping, grace_period, reduction_factor):
    """``early_stopping`` with the flat options of ``run_random_search`` put into it."""
    if early_stopping == "asha":
        from d2l_hpo.search.asha import ASHA

        return ASHA(grace_period=grace_period, reduction_factor=reduction_factor)
    return early_stopping


def _prepare_and_run(objective, config_space, settings, rungs, backend, path, progress,
                     resume, called: float) -> Experiment:
    """Resume plan, seed, backend bound and warmed up; then the run."""
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
    seed = settings.seed if settings.seed is not None else int(
        np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
    settings = dataclasses.replace(settings, seed=seed, rungs=rungs)

    first_trial_id = plan.next_trial_id if plan is not None else 0
    if is_tabular(objective):
        from d2l_hpo.backends.simulated import SimulatedBackend

        backend = SimulatedBackend(objective, seed)
    elif backend is None:
        backend = SubprocessBackend(objective, config_space, first_trial_id=first_trial_id,
                                    threads_per_trial=max(1, usable_cores() // settings.n_workers))
    runner_backend = as_runner_backend(backend)
    runner_backend.bind_objective(objective, config_space, first_trial_id)
    if plan is not None:  # trial processes a killed earlier run left behind
        runner_backend.end_leftovers(plan.leftovers)
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
                points_to_evaluate(plan, settings.initial_config), path, progress, called)


def _check_replay(benchmark: TabularBenchmark, config_space, backend, early_stopping,
                  max_trial_time, resume) -> None:
    """What a replay of a table cannot do, said before anything starts."""
    name = benchmark.name
    if backend is not None:
        raise TypeError(f"the tabulated benchmark {name!r} is replayed in simulated time by "
                        "its own backend: leave backend= out")
    if early_stopping is not None:
        raise ValueError(f"the table {name!r} holds only each training run's final result, "
                         "so there is nothing to stop early: leave early_stopping= out")
    if max_trial_time is not None:
        raise ValueError(f"max_trial_time does not apply to {name!r}: its trials replay "
                         "measured runs, none of which hangs")
    if resume:
        raise ValueError(f"a replay of {name!r} is not resumed: it takes seconds, run it again")


def _check_replay_space(benchmark: TabularBenchmark, config_space, metric: str) -> None:
    """Only configurations the table holds can be replayed: the table's own space, or a
    ``choice`` over some of its values for some of its keys."""
    from syne_tune.config_space import Categorical

    from d2l_hpo.search.spaces import ConfigSpaceError

    table = benchmark.config_space
    if not isinstance(config_space, dict):
        raise ConfigSpaceError(f"config_space must be a dict; for {benchmark.name!r} pass "
                               "its own: bench.config_space")
    if set(config_space) != set(table):
        missing, extra = sorted(set(table) - set(config_space)), sorted(set(config_space) - set(table))
        raise ConfigSpaceError(
            f"{benchmark.name!r} replays only configurations of its table, whose keys are "
            f"{sorted(table)}" + (f"; missing: {missing}" if missing else "")
            + (f"; not in the table: {extra}" if extra else "")
            + ". Pass bench.config_space, or a choice over some of its values")
    for key, domain in config_space.items():
        values = domain.categories if isinstance(domain, Categorical) else [domain]
        unknown = [v for v in values if v not in table[key].categories]
        if unknown:
            raise ConfigSpaceError(
                f"{key}={unknown[0]!r} is not in the table {benchmark.name!r}, whose values "
                f"of {key} are {table[key].categories}: a replay can only look up measured "
                "runs (use choice() over those values, or one of them)")
    if metric != "validation_error":
        raise ValueError(f"{benchmark.name!r} reports 'validation_error' (and 'train_time'); "
                         f"got metric={metric!r}")


def make_scheduler(settings: RunSettings, config_space: dict, points: list,
                   plan: ResumePlan | None = None):
    """The strategy ``settings.searcher`` inside the scheduler of its stopping rule
    (``GuardedScheduler`` without one); on a resume, both as the earlier run left them."""
    strategy = searcher_class(settings.searcher)(
        config_space, settings.seed, points,
        max_suggestions=plan.trials_left if plan else settings.max_num_trials)
    if plan is not None:  # told again what it had been told, its draws made again
        state = plan.state
        strategy.restore(state.search or {"drawn": [0] * state.random_draws})
    rule, problem = settings.stopping_rule(), settings.problem(config_space)
    if rule is None:
        return strategy, GuardedScheduler(strategy, problem)
    scheduler = rule.scheduler(strategy, problem)
    if plan is not None:  # e.g. ASHA's rungs as they were
        rule.restore(scheduler, plan.kept_reports)
    return strategy, scheduler


def _run(settings: RunSettings, state: RunState, plan: ResumePlan | None,
         backend: TrialBackend, runner_backend: RunnerBackend, config_space: dict,
         points: list, path, progress: bool, called: float | None = None) -> Experiment:
    """Run the tuner on a prepared backend and folder; the experiment it recorded."""
    strategy, scheduler = make_scheduler(settings, config_space, points, plan)
    recorder = ExperimentRecorder(
        path, settings, state, runner_backend, backend, progress,
        kept_trials=plan.kept_trials if plan else (),
        kept_reports=plan.kept_reports if plan else (), strategy=strategy,
        scheduler=scheduler, called=called)
    time_limit = ([TrialTimeLimit(recorder, backend, settings.max_trial_time)]
                  if settings.max_trial_time is not None else [])
    # a replay: Syne Tune's simulator callback (results stamped with simulated time, a
    # max_wallclock_time in simulated seconds), no real sleeps, nothing pickled
    simulated = as_runner_backend(backend).simulates_time
    store = SimulatorCallback() if simulated else StoreResultsCallback()
    tuner = EventDrivenTuner(
        trial_backend=backend,
        runner_backend=runner_backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(
            max_wallclock_time=plan.time_left if plan else settings.max_wallclock_time),
        n_workers=settings.n_workers,
        sleep_time=0 if simulated else POLL_INTERVAL,
        max_failures=settings.max_failures,
        tuner_name=settings.name,
        suffix_tuner_name=False,
        asynchronous_scheduling=(settings.scheduling == "async"),
        # the recorder first: its last save comes before any other callback's, even
        # when one of those fails (a full disk)
        callbacks=[recorder, store, *time_limit],
        save_tuner=not simulated,
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
              f"in {path}.\nTo continue: the same call with name={settings.name!r}, "
              f"resume=True, or python -m d2l_hpo run --resume {settings.name}",
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
                f"{hint_for(last)}") from err
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
    check_metric_reported(exp)
    return exp


