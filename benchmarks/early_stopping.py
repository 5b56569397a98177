"""B5, early stopping: how soon ASHA reaches the best error random search finds.

For each seed, the same N configurations (same seed, same order) on the same K
workers, twice: plain random search (every trial runs all its epochs) and
``early_stopping="asha"`` (grace period 1, reduction factor 3). The target is the
best validation error random search reached; the table gives, per workload, the
median over seeds of:

- the time each took to reach that target (experiment clock, from the tuner's start;
  ASHA may never reach it, when it pruned the configuration that did: counted in
  "ASHA reached");
- ASHA's time / random search's time, per seed, then the median (inf for a seed
  where ASHA never reached it);
- the epochs each spent, and the whole call's time (what a user waits for).

Workloads: ``synthetic_objective`` (sleeps by its cost model) and LeNet on a seeded
fraction of Fashion-MNIST, one thread per worker.

    python benchmarks/early_stopping.py [--seeds 0 1 2] [--quick] [--no-lenet]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402

from d2l_hpo import (  # noqa: E402
    lenet_objective, lenet_space, run_random_search, synthetic_objective, synthetic_space,
)
from d2l_hpo.experiment.analysis import time_to_reach  # noqa: E402
from d2l_hpo.backends.local import SubprocessBackend  # noqa: E402


def one_search(objective, space, workers, trials, seed, folder, **early):
    backend = SubprocessBackend(objective, space, threads_per_trial=1)
    started = time.perf_counter()
    exp = run_random_search(objective, space, n_workers=workers, max_num_trials=trials,
                            seed=seed, results_dir=folder, progress=False,
                            backend=backend, **early)
    call = time.perf_counter() - started
    assert set(exp.trials["status"]) <= {"completed", "pruned"}, exp.trials["status"]
    return exp, call


def compare(label, objective, space, workers, trials, seeds, folder):
    per_seed = []
    for seed in seeds:
        plain, plain_call = one_search(objective, space, workers, trials, seed, folder)
        asha, asha_call = one_search(objective, space, workers, trials, seed, folder,
                                     early_stopping="asha", grace_period=1,
                                     reduction_factor=3)
        target = plain.best_value
        t_plain, t_asha = time_to_reach(plain, target), time_to_reach(asha, target)
        # never reached: infinitely slow (it pruned every configuration that got there)
        ratio = t_asha / t_plain if not math.isnan(t_asha) else math.inf
        per_seed.append({
            "t_plain": t_plain, "t_asha": t_asha, "ratio": ratio,
            "epochs_plain": plain.epochs_spent, "epochs_asha": asha.epochs_spent,
            "call_plain": plain_call, "call_asha": asha_call,
            "pruned": int((asha.trials["status"] == "pruned").sum()),
            "best_asha": asha.best_value, "target": target})
        print(f"{label} seed {seed}: target {target:.4f}; random search {t_plain:.1f} s, "
              f"ASHA {t_asha:.1f} s; epochs {plain.epochs_spent} / {asha.epochs_spent}",
              file=sys.stderr)

    def mid(key):
        values = [r[key] for r in per_seed if not math.isnan(r[key])]
        return median(values) if values else math.nan

    return {
        "workload": label, "K": workers, "trials": trials, "seeds": len(seeds),
        "target (RS best)": mid("target"),
        "RS time to target (s)": mid("t_plain"), "ASHA time to target (s)": mid("t_asha"),
        "ASHA / RS": median([r["ratio"] for r in per_seed]),
        "ASHA reached": f"{sum(not math.isnan(r['t_asha']) for r in per_seed)}/{len(seeds)}",
        "RS epochs": mid("epochs_plain"), "ASHA epochs": mid("epochs_asha"),
        "ASHA pruned": mid("pruned"),
        "RS call (s)": mid("call_plain"), "ASHA call (s)": mid("call_asha"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="1 seed, small workloads")
    parser.add_argument("--no-lenet", action="store_true", help="the synthetic part only")
    args = parser.parse_args()
    seeds = args.seeds
    synthetic = {"trials": 27, "workers": 4, "epochs": 9, "epoch_seconds": 0.1}
    lenet = {"trials": 12, "workers": 2, "epochs": 6, "fraction": 0.1}
    if args.quick:
        seeds = seeds[:1]
        synthetic = {"trials": 9, "workers": 3, "epochs": 9, "epoch_seconds": 0.03}
        lenet = {"trials": 3, "workers": 2, "epochs": 3, "fraction": 0.02}
    warnings.filterwarnings("ignore", message=".*CPU cores")  # sleepers on 2 cores

    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        space = synthetic_space(max_epochs=synthetic["epochs"],
                                epoch_seconds=synthetic["epoch_seconds"])
        rows.append(compare("synthetic_objective", synthetic_objective, space,
                            synthetic["workers"], synthetic["trials"], seeds, folder))
        if not args.no_lenet:
            space = lenet_space(max_epochs=lenet["epochs"])
            space["data_fraction"] = lenet["fraction"]
            rows.append(compare(f"LeNet, {lenet['fraction']:.0%} of the data",
                                lenet_objective, space, lenet["workers"], lenet["trials"],
                                seeds, folder))
    print(f"\nASHA against random search (RS), same configurations and workers (medians "
          f"over seeds {seeds}; synthetic: {synthetic['epochs']} epochs, epoch_seconds="
          f"{synthetic['epoch_seconds']}; LeNet: {lenet['epochs']} epochs; "
          f"{time.perf_counter() - start:.0f} s)\n")
    print(markdown_table(rows, list(rows[0])))
    print(f"\nCSV: {write_csv('early_stopping', rows)}")


if __name__ == "__main__":
    main()
