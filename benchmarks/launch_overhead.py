"""B2, launch overhead: how long a freed worker waits before the next trial runs user
code, with an objective that imports torch and d2l (as every LeNet trial does).

Per backend, N trials that each sleep 1 s on 2 workers (async, the same seeded
configurations). For every trial that followed another on the same worker:
- first line: its first line of user code - the previous trial's last report;
- ready: the line after its `import torch` / `from d2l import torch as d2l`.

    python benchmarks/launch_overhead.py [--trials 12] [--quick]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, run_syne_tune_defaults, write_csv  # noqa: E402

from syne_tune import StoppingCriterion  # noqa: E402
from syne_tune.config_space import uniform  # noqa: E402
from syne_tune.results_callback import StoreResultsCallback  # noqa: E402

from d2l_hpo import load_experiment, run_random_search  # noqa: E402
from d2l_hpo.backends import SubprocessBackend  # noqa: E402
from d2l_hpo.experiment.measures import assign_lanes  # noqa: E402
from d2l_hpo.backends.base import RunnerBackend  # noqa: E402
from d2l_hpo.run.recorder import ExperimentRecorder  # noqa: E402
from d2l_hpo.search.base import GuardedScheduler, Problem  # noqa: E402
from d2l_hpo.search.random import RandomSearch  # noqa: E402
from d2l_hpo.run.settings import RunSettings, RunState  # noqa: E402


def torch_objective(x: float, seconds: float = 1.0):
    """Stamps its first line, imports torch and d2l, stamps again, sleeps, reports."""
    import time
    print(f"first-line {time.time()!r}", flush=True)
    import torch
    from d2l import torch as d2l
    from syne_tune import Reporter
    print(f"ready-line {time.time()!r}", flush=True)
    time.sleep(seconds)
    Reporter()(validation_error=x, torch=torch.__version__, d2l=d2l.__name__)


def syne_tune_defaults(space, n_workers, n_trials, scheduling, seed, folder,
                       objective):
    """Syne Tune as the book would use it, timed by our recorder (which only watches)."""
    name = f"st-defaults-{scheduling}-{time.time_ns()}"
    path = Path(folder) / name
    path.mkdir(parents=True)
    settings = RunSettings(name=name, n_workers=n_workers, scheduling=scheduling,
                           max_num_trials=n_trials, **RunSettings.space_fields(space))
    # a backend that tells nothing beyond Syne Tune's seam, as PythonBackend
    recorder = ExperimentRecorder(path, settings, RunState(), RunnerBackend(), progress=False)
    run_syne_tune_defaults(objective, space,
                           GuardedScheduler(RandomSearch(space, seed, max_suggestions=n_trials),
                                            Problem(space, seed=seed)),
                           StoppingCriterion(max_wallclock_time=3600), n_workers, scheduling,
                           path, callbacks=[StoreResultsCallback(), recorder])
    return load_experiment(path)


def launch_gaps(exp, tag: str = "first-line") -> list[float]:
    """How long freed workers waited for their next trial's first line of user code.

    Async: per worker, the next trial's first line minus the previous trial's last
    report. Sync: a batch's workers are free once its last trial ends, so each trial
    of the next batch counts from the end of the previous batch.
    """
    t0 = exp.settings.get("start_timestamp")
    first, last = {}, exp.results.groupby("trial_id")["time"].max().to_dict()
    for trial_id in exp.trials["trial_id"]:
        text = (exp.path / str(trial_id) / "std.out").read_text()
        first[trial_id] = float(re.search(tag + r" (\S+)", text).group(1)) - t0
    ids = sorted(first, key=first.get)
    if exp.scheduling == "sync":
        batches = [ids[i:i + exp.n_workers] for i in range(0, len(ids), exp.n_workers)]
        return [first[b] - max(last[a] for a in before)
                for before, batch in zip(batches, batches[1:]) for b in batch]
    lanes = assign_lanes([first[i] for i in ids], [last[i] for i in ids], exp.n_workers)
    gaps = []
    for lane in set(lanes):
        on_lane = [i for i, w in zip(ids, lanes) if w == lane]
        gaps += [first[b] - last[a] for a, b in zip(on_lane, on_lane[1:])]
    return gaps


def p95(values):
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="4 trials, no Syne Tune defaults")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray backend")
    parser.add_argument("--no-syne-tune", action="store_true",
                        help="leave out Syne Tune's defaults (the slowest row)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*CPU cores")
    n_workers, n_trials = 2, (4 if args.quick else args.trials)
    space = {"x": uniform(0, 1), "seconds": 1.0}
    systems = ["local, new interpreter per trial (warm_start=False)",
               "local, warm (default)"]
    if not (args.quick or args.no_syne_tune):
        systems.insert(0, "Syne Tune defaults (PythonBackend, sleep_time=5)")
    if not args.no_ray:
        systems.append("RayBackend")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for system in systems:
            if system.startswith("Syne Tune"):
                exp = syne_tune_defaults(space, n_workers, n_trials, "async", 0, folder,
                                         torch_objective)
            else:
                if system == "RayBackend":
                    from d2l_hpo.backends import RayBackend
                    backend = RayBackend(num_cpus=n_workers)
                    backend.connect()  # Ray and its workers start before the clock
                else:
                    backend = SubprocessBackend(torch_objective, space,
                                                warm_start=system == "local, warm (default)")
                exp = run_random_search(torch_objective, space, n_workers=n_workers,
                                        max_num_trials=n_trials, seed=0, backend=backend,
                                        results_dir=folder, progress=False)
            assert set(exp.trials["status"]) == {"completed"}, exp.trials
            first, ready = launch_gaps(exp, "first-line"), launch_gaps(exp, "ready-line")
            rows.append({"backend": system, "first_line_median_s": median(first),
                         "first_line_p95_s": p95(first), "ready_median_s": median(ready),
                         "ready_p95_s": p95(ready), "gaps": len(first),
                         "wallclock_s": exp.wallclock})
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"\n{n_workers} workers x {n_trials} trials of 1 s importing torch and d2l; "
          "gap = worker free -> next trial's first line / its line after the imports\n")
    print(markdown_table(rows, ["backend", "first_line_median_s", "first_line_p95_s",
                                "ready_median_s", "ready_p95_s", "gaps", "wallclock_s"]))
    print(f"\nCSV: {write_csv('launch_overhead', rows)}")


if __name__ == "__main__":
    main()
