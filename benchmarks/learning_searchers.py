"""B9: searchers that learn, with more and more workers (replayed tables, simulated time).

    python benchmarks/learning_searchers.py [--seeds 10] [--trials 256] [--quick]

Random search, Syne Tune's TPE and REA, and Optuna's TPE with and without its constant
liar (which counts the trials still running as bad results), each on K = 1, 4, 16 and 64
workers and several seeds, replaying the measured training runs of FCNet (protein) and
HPOBench (car) in simulated time. Per searcher and K: the median simulated time to a
target error (one that 5% of the table's runs reach) with its middle half over the
seeds, the speed-up over the same searcher on one worker, the advantage over random
search with as many workers, and the share of trials that started as an exact
duplicate of one still running (the tables' hyperparameters are all choices).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_csv  # noqa: E402

import d2l_hpo  # noqa: E402

SEARCHERS = ["random", "tpe", "rea", "optuna_tpe", "optuna_tpe_no_liar"]
WORKERS = [1, 4, 16, 64]
TABLES = ["fcnet-protein", "hpobench-car"]
TARGET_SHARE = 0.05


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--quick", action="store_true",
                        help="FCNet only, 2 seeds, 32 trials, K = 1 and 4")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tables, workers, seeds, trials = TABLES, WORKERS, range(args.seeds), args.trials
    if args.quick:
        tables, workers, seeds, trials = TABLES[:1], [1, 4], range(2), 32
    rows, started = [], time.perf_counter()
    for name in tables:
        bench = d2l_hpo.benchmarks.tabular(name)
        target = bench.quantile(TARGET_SHARE)
        runs = d2l_hpo.searcher_sweep(bench, bench.config_space, SEARCHERS, workers, seeds,
                                      target, max_num_trials=trials, progress=False)
        for row in d2l_hpo.sweep_summary(runs).to_dict("records"):
            rows.append({"table": name, "target": target, "seeds": len(seeds),
                         "trials": trials, **row})
        print(f"{name}: {len(runs)} replays done after {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    columns = ["table", "searcher", "workers", "median to target (s)", "25th pct (s)",
               "75th pct (s)", "reached", "speed-up", "vs random", "near-duplicate"]
    print(f"\n{trials} trials per replay, seeds 0-{len(seeds) - 1}; target: the error that "
          f"{TARGET_SHARE:.0%} of the table's runs reach; times in simulated seconds "
          "(a run that never reached it counts as infinite)\n")
    print(markdown_table(rows, columns))
    print("\nThe claim it supports: where a searcher that learns gains over random search "
          "with one worker, that gain shrinks as workers are added ('vs random'); counting "
          "the running trials (the constant liar) keeps parallel suggestions apart "
          "('near-duplicate').")
    print(f"\nCSV: {write_csv('learning_searchers', rows)}")


if __name__ == "__main__":
    main()
