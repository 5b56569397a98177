"""The Ray backend against the local default: 4 workers x 20 synthetic_objective
trials, async and sync, the same 20 seeded configurations for both.

Reports, per backend and scheduling (medians of --repeats runs):
- utilisation: busy worker-time (each trial from its launch to its last report) /
  (workers x wall-clock), and the wall-clock of the experiment;
- makespan ratio: the ideal zero-overhead makespan of the same durations / wall-clock;
- launch gap: the time from a worker freeing up (the previous trial's last line of
  user code) to the next trial's first line of user code, on the same worker
  (median and 95th percentile over all such gaps).

The Ray backend runs on a Ray instance on this machine (127.0.0.1, 4 declared
CPUs, one per trial), started before the clock runs, as a cluster would be.

    python benchmarks/ray_vs_local.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402

from d2l_hpo import ideal_makespan, run_random_search, sample_configs, synthetic_space  # noqa: E402
from d2l_hpo.results import assign_lanes  # noqa: E402
from utilization import busy_until_last_report, nominal_duration  # noqa: E402


def stamped_synthetic(learning_rate: float, batch_size: int, max_epochs: int,
                      num_layers: int = 2, epoch_seconds: float = 0.25):
    """synthetic_objective, after printing the time of its first line."""
    import time
    print(f"first-line {time.time()!r}", flush=True)
    from d2l_hpo.objectives import synthetic_objective
    synthetic_objective(learning_rate, batch_size, max_epochs, num_layers, epoch_seconds)


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8 trials, 1 repeat")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*CPU cores")  # the trials only sleep
    n_workers, n_trials, seed, repeats = 4, 20, 0, args.repeats
    if args.quick:
        n_trials, repeats = 8, 1
    import ray

    from d2l_hpo.backends import RayBackend
    space = synthetic_space(max_epochs=4, epoch_seconds=0.25)
    durations = [nominal_duration(c) for c in sample_configs(space, n_trials, seed)]
    rows = []
    RayBackend(num_cpus=n_workers).connect()  # the Ray instance, before any clock runs
    with tempfile.TemporaryDirectory() as folder:
        for scheduling in ("async", "sync"):
            ideal = ideal_makespan(durations, n_workers, scheduling)
            for system in ("local (default)", "RayBackend"):
                runs = []
                for _ in range(repeats):
                    backend = None
                    if system == "RayBackend":
                        backend = RayBackend()
                        backend.connect()  # its worker processes, started and warm
                    exp = run_random_search(stamped_synthetic, space, n_workers=n_workers,
                                            max_num_trials=n_trials, scheduling=scheduling,
                                            seed=seed, results_dir=folder, progress=False,
                                            backend=backend)
                    assert set(exp.trials["status"]) == {"completed"}, exp.trials
                    runs.append((busy_until_last_report(exp), exp.wallclock, launch_gaps(exp)))
                gaps = sorted(g for r in runs for g in r[2])
                rows.append({
                    "backend": system, "scheduling": scheduling,
                    "utilization": median([r[0] for r in runs]),
                    "wallclock_s": median([r[1] for r in runs]),
                    "ideal_makespan_s": ideal,
                    "makespan_ratio": ideal / median([r[1] for r in runs]),
                    "launch_gap_median_s": median(gaps), "launch_gap_p95_s": p95(gaps),
                    "gaps": len(gaps), "repeats": repeats,
                })
                print(rows[-1], file=sys.stderr, flush=True)
    ray.shutdown()
    print(f"\n{n_workers} workers x {n_trials} synthetic_objective trials (medians of "
          f"{repeats}); launch gap = worker free -> next trial's first line of user code\n")
    print(markdown_table(rows, ["backend", "scheduling", "utilization", "wallclock_s",
                                "ideal_makespan_s", "makespan_ratio", "launch_gap_median_s",
                                "launch_gap_p95_s", "gaps"]))
    print(f"\nCSV: {write_csv('ray_vs_local', rows)}")


if __name__ == "__main__":
    main()
