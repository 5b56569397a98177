"""B8: replaying a tabulated benchmark at scale: real seconds per simulated trial, memory.

    python benchmarks/simulated_scale.py [--repeats 3] [--quick]

For 100, 1,000 and 10,000 trials of random search on 64 simulated workers over FCNet
(protein), each size in a fresh process: the whole ``run_random_search`` call as a user
waits for it, the first (which loads the table) and the median of the next ones; real
seconds per simulated trial (expected about constant: cost linear in the trials); the
process's peak resident memory and how much the replays added to it. Then two checks
the lesson relies on: the same seed twice gives identical tables, and the replayed
makespan equals the zero-overhead schedule of the same durations (sync and async).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import markdown_table, median, write_csv  # noqa: E402

TABLE, WORKERS = "fcnet-protein", 64


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one_size(trials: int, repeats: int) -> dict:
    """In this (fresh) process: the calls' times and the memory."""
    import d2l_hpo

    before = _rss_mb()
    calls, exp = [], None
    with tempfile.TemporaryDirectory() as folder:
        for i in range(1 + repeats):
            start = time.perf_counter()
            bench = d2l_hpo.benchmarks.tabular(TABLE)  # loaded by the first call only
            exp = d2l_hpo.run_random_search(bench, bench.config_space, n_workers=WORKERS,
                                            max_num_trials=trials, seed=i, results_dir=folder,
                                            progress=False)
            calls.append(time.perf_counter() - start)
            assert len(exp.trials) == trials and (exp.trials["status"] == "completed").all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    later = median(calls[1:]) if repeats else calls[0]
    return {"trials": trials, "workers": WORKERS, "first_call_s": calls[0],
            "call_s": later, "ms_per_trial": 1000 * later / trials,
            "simulated_h": exp.wallclock / 3600, "busy": exp.utilization,
            "peak_rss_mb": peak, "added_mb": peak - before}


def checks(trials: int = 1000) -> list[dict]:
    """Two runs with one seed, compared exactly; the makespan against the ideal's."""
    import d2l_hpo

    bench = d2l_hpo.benchmarks.tabular(TABLE)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for scheduling in ("async", "sync"):
            runs = [d2l_hpo.run_random_search(bench, bench.config_space, n_workers=WORKERS,
                                              max_num_trials=trials, seed=7,
                                              scheduling=scheduling, results_dir=folder,
                                              progress=False) for _ in range(2)]
            a, b = runs
            same = (a.trials.drop(columns=["pid_started"], errors="ignore")
                    .equals(b.trials.drop(columns=["pid_started"], errors="ignore"))
                    and a.results.equals(b.results) and a.wallclock == b.wallclock)
            durations = a.trials.sort_values("trial_id").eval("end - start").to_numpy()
            ideal = d2l_hpo.ideal_makespan(durations, WORKERS, scheduling)
            rows.append({"scheduling": scheduling, "trials": trials, "workers": WORKERS,
                         "identical_twice": same, "makespan_s": a.wallclock,
                         "ideal_makespan_s": ideal,
                         "difference_pct": 100 * abs(a.wallclock - ideal) / ideal})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="calls after the first")
    parser.add_argument("--quick", action="store_true",
                        help="100 and 500 trials, 1 repeat, checks on 300 trials")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.repeats)))
        return
    sizes = [100, 500] if args.quick else [100, 1000, 10000]
    repeats = 1 if args.quick else args.repeats
    rows = []
    for trials in sizes:
        done = subprocess.run([sys.executable, __file__, "--one", str(trials), "--repeats",
                               str(repeats)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr, flush=True)
    write_csv("simulated_scale", rows)
    print(f"Random search replayed over {TABLE} on {WORKERS} simulated workers, each size "
          f"in a fresh process; call = the whole run_random_search call (median of "
          f"{repeats} after the first, which also loads the table)\n")
    print(markdown_table(rows, ["trials", "workers", "first_call_s", "call_s",
                                "ms_per_trial", "simulated_h", "busy", "peak_rss_mb",
                                "added_mb"]))
    found = checks(300 if args.quick else 1000)
    write_csv("simulated_checks", found)
    print("\nThe same seed twice, and the makespan against the ideal schedule of the same "
          "trial durations:\n")
    print(markdown_table(found, ["scheduling", "trials", "workers", "identical_twice",
                                 "makespan_s", "ideal_makespan_s", "difference_pct"]))


if __name__ == "__main__":
    main()
