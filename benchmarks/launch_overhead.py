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
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402
from ray_vs_local import launch_gaps, p95  # noqa: E402
from utilization import syne_tune_defaults  # noqa: E402

from syne_tune.config_space import uniform  # noqa: E402

from d2l_hpo import run_random_search  # noqa: E402
from d2l_hpo.backends import SubprocessBackend  # noqa: E402


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="6 trials, no Syne Tune defaults")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray backend")
    parser.add_argument("--no-syne-tune", action="store_true",
                        help="leave out Syne Tune's defaults (the slowest row)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*CPU cores")
    n_workers, n_trials = 2, (6 if args.quick else args.trials)
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
                                         objective=torch_objective)
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
