"""B1, scheduling efficiency: 4 workers, 20 trials that each sleep a duration drawn
once from U(1, 8) s (fixed seed) and report once; the same durations, in the same
order, for every system.

makespan ratio = the ideal zero-overhead makespan of those durations in that order
(async: each trial starts the instant a worker frees up; sync: each batch lasts as
long as its longest trial) / the wall-clock of the whole call. 1.0 is the limit.
busy fraction = the trials' total sleeping time / (4 x that wall-clock).

Systems: Syne Tune 0.16 with its defaults (PythonBackend, sleep_time=5);
run_random_search with its defaults, as the first call of a process (the fork server
starts and imports inside the call: every repeat closes the warm one first) and as a
later call (the warm server kept from the call before); run_random_search with
RayBackend; Ray Tune
(``tune.Tuner``, max_concurrent_trials=4); Optuna with n_jobs=4 threads, and with 4
processes sharing a JournalStorage file. Ray and its first worker processes are
started before any clock runs. Ray Tune and Optuna come from the ``bench`` extra.

    python benchmarks/scheduling_efficiency.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import multiprocessing
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, run_syne_tune_defaults, write_csv  # noqa: E402

from syne_tune.config_space import uniform  # noqa: E402

from d2l_hpo import ideal_makespan, run_random_search, sample_configs  # noqa: E402

N_WORKERS, N_TRIALS, SEED = 4, 20, 0
SPACE = {"seconds": uniform(1.0, 8.0)}


def sleep_trial(seconds: float):
    """Sleeps that many seconds, reports once (Syne Tune objective). (Not `duration`:
    run_random_search's trials table has a column of that name.)"""
    import time

    from syne_tune import Reporter
    time.sleep(seconds)
    Reporter()(validation_error=seconds)


# --- the systems: each runs the given durations in order and returns the call time ----
def syne_tune_defaults(durations, scheduling, folder):
    from syne_tune import StoppingCriterion
    from syne_tune.optimizer.baselines import RandomSearch

    scheduler = RandomSearch(SPACE, metrics=["validation_error"], do_minimize=True,
                             points_to_evaluate=[{"seconds": d} for d in durations])
    start = time.perf_counter()
    run_syne_tune_defaults(sleep_trial, SPACE, scheduler,
                           StoppingCriterion(max_num_trials_completed=len(durations)),
                           N_WORKERS, scheduling, Path(folder) / f"st-{time.time_ns()}")
    return time.perf_counter() - start


def with_run_random_search(durations, scheduling, folder, backend=None):
    start = time.perf_counter()
    exp = run_random_search(sleep_trial, SPACE, n_workers=N_WORKERS,
                            max_num_trials=len(durations), scheduling=scheduling,
                            seed=SEED, results_dir=folder, progress=False, backend=backend)
    elapsed = time.perf_counter() - start
    assert set(exp.trials["status"]) == {"completed"} and len(exp.trials) == len(durations)
    return elapsed


def first_call(durations, scheduling, folder):
    import d2l_hpo

    d2l_hpo.shutdown()  # no warm fork server: as in a fresh kernel
    return with_run_random_search(durations, scheduling, folder)


def with_run_random_search_on_ray(durations, scheduling, folder):
    from d2l_hpo.backends import RayBackend
    return with_run_random_search(durations, scheduling, folder, backend=RayBackend())


def ray_tune(durations, scheduling, folder):
    from ray import tune

    def trainable(config):
        time.sleep(config["seconds"])
        tune.report({"validation_error": config["seconds"]})

    tuner = tune.Tuner(trainable,
                       param_space={"seconds": tune.grid_search(list(durations))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=N_WORKERS),
                       run_config=tune.RunConfig(storage_path=folder, verbose=0))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its banner, not our table
        results = tuner.fit()
    elapsed = time.perf_counter() - start
    assert len(results) == len(durations) and not results.errors
    return elapsed


def _optuna_study(storage=None, name="b1"):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True)


def _optuna_objective(trial):
    import optuna
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    if "fixed_params" not in frozen.system_attrs:
        # one trial past the enqueued ones: MaxTrialsCallback counts the trials between
        # two processes' checks, so two can start the last trial's successor at once
        # (fresh-clone run Q: 7 trials of 6). Ending it at once keeps it out of the makespan.
        raise optuna.TrialPruned()
    duration = trial.suggest_float("seconds", 0.0, 10.0)  # the enqueued values
    time.sleep(duration)
    return duration


def optuna_threads(durations, scheduling, folder):
    study = _optuna_study()
    for d in durations:
        study.enqueue_trial({"seconds": d})
    start = time.perf_counter()
    study.optimize(_optuna_objective, n_trials=len(durations), n_jobs=N_WORKERS)
    return time.perf_counter() - start


def _optuna_worker(path, n_trials):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.study import MaxTrialsCallback
    study = _optuna_study(JournalStorage(JournalFileBackend(path)))
    study.optimize(_optuna_objective, callbacks=[MaxTrialsCallback(
        n_trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING))])


def optuna_processes(durations, scheduling, folder):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    path = f"{folder}/optuna-{time.time_ns()}.log"
    study = _optuna_study(JournalStorage(JournalFileBackend(path)))
    for d in durations:
        study.enqueue_trial({"seconds": d})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_optuna_worker, args=(path, len(durations)))
               for _ in range(N_WORKERS)]
    start = time.perf_counter()
    for worker in workers:  # the processes start inside the clock: they are the workers
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    from optuna.trial import TrialState
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(completed) == len(durations), (len(completed), len(study.trials))
    return elapsed


SYSTEMS = [
    ("Syne Tune defaults (PythonBackend, sleep_time=5)", syne_tune_defaults, ("async", "sync")),
    ("run_random_search (default), first call", first_call, ("async", "sync")),
    ("run_random_search (default), next call", with_run_random_search, ("async", "sync")),
    ("run_random_search + RayBackend", with_run_random_search_on_ray, ("async", "sync")),
    ("Ray Tune 2.60 Tuner.fit", ray_tune, ("async",)),
    ("Optuna, n_jobs=4 threads", optuna_threads, ("async",)),
    ("Optuna, 4 processes + JournalStorage", optuna_processes, ("async",)),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="6 trials of U(0.1, 0.5) s, 1 repeat, without Syne Tune's defaults")
    args = parser.parse_args()
    global SPACE
    warnings.filterwarnings("ignore")
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    durations = [c["seconds"] for c in sample_configs(SPACE, N_TRIALS, SEED)]
    systems, repeats = SYSTEMS, args.repeats
    if args.quick:
        durations, repeats = [0.1 + (d - 1.0) / 17.5 for d in durations[:6]], 1
        systems = SYSTEMS[1:]
        SPACE = {"seconds": uniform(0.1, 0.5)}
    import ray

    from d2l_hpo.backends._ray_cluster import start_local
    start_local(num_cpus=N_WORKERS, log_to_driver=False, logging_level="error")
    from d2l_hpo.backends import RayBackend
    RayBackend().connect()  # Ray's first worker processes, before any clock runs
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, run, schedulings in systems:
            for scheduling in schedulings:
                ideal = ideal_makespan(durations, N_WORKERS, scheduling)
                calls = [run(durations, scheduling, folder) for _ in range(repeats)]
                rows.append({"system": label, "scheduling": scheduling,
                             "wallclock_s": median(calls), "ideal_makespan_s": ideal,
                             "makespan_ratio": ideal / median(calls),
                             # the trials' sleeping over the workers' time: idle workers
                             # at the tail (async) or behind stragglers (sync) show here
                             "busy_fraction": sum(durations) / (N_WORKERS * median(calls)),
                             "repeats": repeats})
                print(rows[-1], file=sys.stderr, flush=True)
    ray.shutdown()
    print(f"\n{N_WORKERS} workers x {len(durations)} sleeping trials, the same durations for "
          f"every system; medians of {repeats}; ratio = ideal makespan / wall-clock of the call\n")
    print(markdown_table(rows, ["system", "scheduling", "wallclock_s", "ideal_makespan_s",
                                "makespan_ratio", "busy_fraction"]))
    print(f"\nCSV: {write_csv('scheduling_efficiency', rows)}")


if __name__ == "__main__":
    main()
