"""Utilisation and wall-clock of 4 workers x 20 synthetic_objective trials, sync and
async: run_random_search against Syne Tune 0.16's defaults (PythonBackend, Tuner with
sleep_time=5). Both run the same 20 seeded configurations (so the same trial
durations) and are timed by the same recorder; only the execution differs.

    python benchmarks/utilization.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402

from syne_tune import StoppingCriterion, Tuner  # noqa: E402
from syne_tune.backend import PythonBackend  # noqa: E402
from syne_tune.results_callback import StoreResultsCallback  # noqa: E402

from d2l_hpo import ideal_makespan, load_experiment, run_random_search, sample_configs  # noqa: E402
from d2l_hpo import synthetic_objective, synthetic_space  # noqa: E402
from d2l_hpo.runner import ExperimentRecorder, seeded_random_search  # noqa: E402


def nominal_duration(c) -> float:
    """synthetic_objective's sleeping time for config c (its cost model)."""
    per_epoch = c["epoch_seconds"] * (0.5 + c["batch_size"] / 128) * c["num_layers"] / 2
    return per_epoch * (3 if c["batch_size"] > 224 else 1) * c["max_epochs"]


def busy_until_last_report(exp) -> float:
    """Busy fraction with each trial counted from its launch to its last report.

    Syne Tune's PythonBackend only learns that a trial ended when the tuner next
    polls (up to sleep_time later), so its end times would count that wait as
    busy; the last report is where the work ends for both systems alike.
    """
    last = exp.results.groupby("trial_id")["time"].max()
    start = exp.trials.set_index("trial_id")["start"]
    return float((last - start).clip(lower=0).sum()) / (exp.n_workers * exp.wallclock)


def syne_tune_defaults(space, n_workers, n_trials, scheduling, seed, folder,
                       objective=synthetic_objective):
    """Syne Tune as the book would use it, timed by our recorder (which only watches)."""
    name = f"st-defaults-{scheduling}-{time.time_ns()}"
    path = Path(folder) / name
    path.mkdir(parents=True)
    settings = {"name": name, "n_workers": n_workers, "scheduling": scheduling,
                "metric": "validation_error", "mode": "min",
                "config_columns": [k for k in space if hasattr(space[k], "sample")]}
    recorder = ExperimentRecorder(path, settings, False, n_trials, None)
    tuner = Tuner(
        trial_backend=PythonBackend(tune_function=objective, config_space=space),
        scheduler=seeded_random_search(space, "validation_error", "min", seed, None, n_trials),
        stop_criterion=StoppingCriterion(max_wallclock_time=3600),
        n_workers=n_workers, asynchronous_scheduling=(scheduling == "async"),
        tuner_name=name, suffix_tuner_name=False, trial_backend_path=str(path),
        callbacks=[StoreResultsCallback(), recorder])
    tuner.tuner_path = path
    with contextlib.redirect_stdout(io.StringIO()):
        tuner.run()
    return load_experiment(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8 trials, 1 repeat")
    args = parser.parse_args()
    n_workers, n_trials, seed = 4, 20, 0
    repeats = args.repeats
    if args.quick:
        n_trials, repeats = 8, 1
    space = synthetic_space(max_epochs=4, epoch_seconds=0.25)
    durations = [nominal_duration(c) for c in sample_configs(space, n_trials, seed)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for scheduling in ("async", "sync"):
            ideal = ideal_makespan(durations, n_workers, scheduling)
            for system in ("syne-tune defaults", "run_random_search"):
                runs = []
                for _ in range(repeats):
                    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                    start = time.perf_counter()
                    if system == "run_random_search":
                        exp = run_random_search(synthetic_objective, space, n_workers=n_workers,
                                                max_num_trials=n_trials, scheduling=scheduling,
                                                seed=seed, results_dir=folder, progress=False)
                    else:
                        exp = syne_tune_defaults(space, n_workers, n_trials, scheduling, seed,
                                                 folder)
                    call = time.perf_counter() - start
                    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                    tuner_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
                    assert len(exp.trials) == n_trials and set(exp.trials["status"]) == {"completed"}
                    runs.append((busy_until_last_report(exp), exp.wallclock, call,
                                 tuner_cpu / call))
                rows.append({
                    "system": system, "scheduling": scheduling,
                    "utilization": median([r[0] for r in runs]),
                    "wallclock_s": median([r[1] for r in runs]),
                    "ideal_makespan_s": ideal,
                    "makespan_ratio": ideal / median([r[2] for r in runs]),
                    "tuner_cpu_share": median([r[3] for r in runs]),
                    "repeats": repeats,
                })
                print(rows[-1], file=sys.stderr, flush=True)
    print(f"\n{n_workers} workers x {n_trials} synthetic_objective trials "
          f"(medians of {repeats}); makespan ratio = ideal / measured call time\n")
    print(markdown_table(rows, ["system", "scheduling", "utilization", "wallclock_s",
                                "ideal_makespan_s", "makespan_ratio", "tuner_cpu_share"]))
    print(f"\nCSV: {write_csv('utilization', rows)}")


if __name__ == "__main__":
    main()
