"""B4, speed-up with workers: the time to finish the same N trials with K workers.

- LeNet (``lenet_objective``) on a seeded 20 % subset of Fashion-MNIST, K = 1 and 2
  on this 2-core machine, two ways: one thread per worker (K workers = K cores), and
  ``run_random_search``'s default, which gives each trial ``cores // K`` threads (so
  K = 1 trains with both cores).
- ``synthetic_objective`` (sleeps by its cost model; batch sizes 32-224, 2 layers, as
  in notebook 03), K = 1, 2, 4, 8.

Same seed, so the same configurations in the same order, for every K. speed-up =
time to finish with K = 1 / time to finish with K, two ways: by the experiment's
recorded wall-clock (from the tuner's start to the last trial's end), and by the time
of the whole ``run_random_search`` call, set-up included (what a user waits for).
Before each workload one unmeasured call starts the warm fork server, so every
measured call finds it warm, as the second search of a notebook does; ``setup_s``
is what each call still spent before its clock. tail-limited = the best speed-up any
scheduler could reach with these trial durations in this order: for synthetic trials
their cost model, for LeNet each trial's duration in the K = 1 run. Medians over
seeds. The check column says whether the recorded speed-up stays within 1.15x of
the tail limit (more means the K = 1 run was slowed, e.g. by another busy process).

    python benchmarks/speedup.py [--seeds 0 1 2] [--quick] [--no-lenet]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402

from d2l_hpo import (  # noqa: E402
    ideal_makespan, lenet_objective, lenet_space, run_random_search, sample_configs,
    synthetic_objective, synthetic_space,
)
from d2l_hpo.backends.local import SubprocessBackend  # noqa: E402
from d2l_hpo.lesson.objectives import synthetic_seconds  # noqa: E402
from d2l_hpo.search.spaces import randint  # noqa: E402


def synthetic_workload(epoch_seconds):
    space = synthetic_space(max_epochs=4, epoch_seconds=epoch_seconds)
    space.update(batch_size=randint(32, 224), num_layers=2)  # no 3x stragglers
    return space


def lenet_workload(fraction, epochs):
    space = lenet_space(max_epochs=epochs)
    space.update(data_fraction=fraction)
    return space


def time_to_finish(objective, space, k, n, seed, folder, threads=None):
    """Run n trials on k workers; the experiment (all trials must complete)."""
    start = time.perf_counter()
    backend = None
    if threads is not None:
        backend = SubprocessBackend(objective, space, threads_per_trial=threads)
    exp = run_random_search(objective, space, n_workers=k, max_num_trials=n, seed=seed,
                            results_dir=folder, progress=False, backend=backend)
    call = time.perf_counter() - start
    assert (exp.trials["status"] == "completed").all() and len(exp.trials) == n, \
        exp.trials[["trial_id", "status"]]
    return exp, call


def speedups(label, objective, space, workers, n, seeds, folder, threads=None,
             durations=None):
    """One row per K: median wall-clock, speed-up against K = 1, tail-limited speed-up."""
    per_seed = {k: [] for k in workers}
    warm, _ = time_to_finish(objective, space, 1, 1, 0, folder, threads=threads)  # warm server
    for seed in seeds:
        runs, calls = {}, {}
        for k in workers:
            runs[k], calls[k] = time_to_finish(objective, space, k, n, seed, folder,
                                               threads=threads)
            print(f"{label} seed {seed} K={k}: {runs[k].wallclock:.1f} s recorded, "
                  f"{calls[k]:.1f} s call", file=sys.stderr)
        work = (durations(space, n, seed) if durations is not None
                else list(runs[1].trials.sort_values("trial_id")["duration"]))
        for k in workers:
            per_seed[k].append({
                "wallclock_s": runs[k].wallclock,
                "speedup": runs[1].wallclock / runs[k].wallclock,
                "call_s": calls[k], "setup_s": runs[k].setup_time,
                "speedup_by_call": calls[1] / calls[k],
                "tail_limited": ideal_makespan(work, 1) / ideal_makespan(work, k),
                "utilization": runs[k].utilization})
    rows = []
    for k in workers:
        row = {"workload": label, "K": k, "trials": n, "seeds": len(seeds)}
        for column in ("wallclock_s", "speedup", "call_s", "setup_s", "speedup_by_call",
                       "tail_limited", "utilization"):
            row[column] = median([r[column] for r in per_seed[k]])
        row["speedup_per_worker"] = row["speedup"] / k
        # the unmeasured first call: "started" when it had to import (else "reused")
        row["first_call_setup_s"] = warm.setup_time
        row["first_call_server"] = warm.settings["warm_server"]
        row["check"] = "✓" if row["speedup"] <= row["tail_limited"] * 1.15 else "✗"
        rows.append(row)
    return rows


def synthetic_durations(space, n, seed):
    return [synthetic_seconds(**c) for c in sample_configs(space, n, seed)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, fewer and shorter trials")
    parser.add_argument("--no-lenet", action="store_true", help="the synthetic part only")
    args = parser.parse_args()
    seeds = args.seeds
    # synthetic: 64 trials leave a tail-limited K=8 speed-up of 7.3-7.7 (40 leave 6.8-7.1)
    synthetic = {"n": 64, "epoch_seconds": 0.2}
    lenet = {"n": 8, "fraction": 0.2, "epochs": 3}
    if args.quick:
        seeds = seeds[:1]
        synthetic = {"n": 16, "epoch_seconds": 0.05}
        lenet = {"n": 2, "fraction": 0.05, "epochs": 1}  # K = 1 and 2: two trials suffice
    warnings.filterwarnings("ignore", message=".*CPU cores")  # 8 sleepers on 2 cores

    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_lenet:
            space = lenet_workload(lenet["fraction"], lenet["epochs"])
            rows += speedups("LeNet, 1 thread per worker", lenet_objective, space, [1, 2],
                             lenet["n"], seeds, folder, threads=1)
            rows += speedups("LeNet, default threads (cores // K)", lenet_objective, space,
                             [1, 2], lenet["n"], seeds, folder)
        space = synthetic_workload(synthetic["epoch_seconds"])
        rows += speedups("synthetic_objective", synthetic_objective, space, [1, 2, 4, 8],
                         synthetic["n"], seeds, folder, durations=synthetic_durations)
    print(f"\nTime to finish the same trials with K workers (medians over seeds {seeds}; "
          f"LeNet: {lenet['n']} trials, {lenet['epochs']} epoch(s) on "
          f"{lenet['fraction']:.0%} of the data; synthetic: {synthetic['n']} trials, "
          f"epoch_seconds={synthetic['epoch_seconds']}; {time.perf_counter() - start:.0f} s)\n")
    print(markdown_table(rows, ["workload", "K", "trials", "wallclock_s", "speedup", "call_s",
                                "setup_s", "speedup_by_call", "speedup_per_worker",
                                "tail_limited", "utilization", "check"]))
    print("\nSet-up before the clock, by workload: the first call (unmeasured above) and "
          "the median of the measured calls")
    for label in dict.fromkeys(r["workload"] for r in rows):
        first = next(r for r in rows if r["workload"] == label)
        print(f"- {label}: first call {first['first_call_setup_s']:.2f} s (server "
              f"{first['first_call_server'] or 'none'}), then "
              f"{median([r['setup_s'] for r in rows if r['workload'] == label]):.3f} s")
    beyond = [r for r in rows if r["check"] != "✓"]
    print("\n✓ every recorded speed-up is within 1.15x of its tail limit" if not beyond else
          f"\n✗ {len(beyond)} speed-up(s) beyond 1.15x of the tail limit (the K = 1 run "
          "was slowed, e.g. by another busy process): " + ", ".join(
              f"{r['workload']} K={r['K']}: {r['speedup']:.2f} > {r['tail_limited']:.2f}"
              for r in beyond))
    print(f"\nCSV: {write_csv('speedup', rows)}")


if __name__ == "__main__":
    main()
