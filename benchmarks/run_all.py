"""The benchmark suite, B1-B6, B8 and B9 (B7 needs a GPU: benchmarks/gpu.py): runs each script, prints its table, and writes every
table with the machine's description to ``benchmarks/results/summary.md``.

    python benchmarks/run_all.py [--quick] [--only B1 B3]

``make bench`` runs it; ``make bench QUICK=1`` runs the small versions (under
3 minutes), which ``make test`` also runs once (tests/test_benchmarks.py) so that
no script rots. Timings are printed, never asserted.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS, machine  # noqa: E402

# id -> (title, script, its arguments for the full run)
SUITE = {
    "B1": ("Scheduling efficiency", "scheduling_efficiency.py", ["--repeats", "3"]),
    "B2": ("Launch overhead", "launch_overhead.py", []),
    "B3": ("LeNet throughput", "lenet_epoch.py", ["--repeats", "3"]),
    "B4": ("Speed-up with workers", "speedup.py", []),
    "B5": ("Early stopping", "early_stopping.py", []),
    "B6": ("A trial that prints a lot", "trial_output.py", []),
    "B8": ("Replays at scale", "simulated_scale.py", ["--repeats", "3"]),
    "B9": ("Searchers that learn, with more workers", "learning_searchers.py", []),
}


def run(script: str, args: list[str]) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(HERE / script), *args], cwd=HERE.parent,
                          capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small version of each")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), default=sorted(SUITE),
                        metavar="B", help=f"a subset of {', '.join(SUITE)}")
    args = parser.parse_args()

    info = machine()
    mode = "quick" if args.quick else "full"
    sections, failed = [], []
    total = time.perf_counter()
    for key in args.only:
        title, script, full_args = SUITE[key]
        argv = ["--quick"] if args.quick else full_args
        command = " ".join(["python", f"benchmarks/{script}", *argv])
        print(f"== {key} {title}: {command}", flush=True)
        code, out, err, seconds = run(script, argv)
        if code != 0:
            failed.append(key)
            print(f"{key} FAILED (exit {code}) after {seconds:.0f} s; its last output:\n"
                  + "\n".join(err.strip().splitlines()[-25:]), flush=True)
            continue
        print(out.rstrip() + f"\n({seconds:.0f} s)\n", flush=True)
        sections.append(f"## {key} {title}\n\n`{command}` ({seconds:.0f} s)\n\n{out.strip()}\n")
    elapsed = time.perf_counter() - total

    header = (f"# Benchmark results ({mode})\n\n{info['date']}; {info['cores']} cores "
              f"({info['cpu']}), Python {info['python']}; "
              + ", ".join(f"{k[2:]} {v}" for k, v in info.items() if k.startswith("v_"))
              + f"; {elapsed:.0f} s in all.\n")
    RESULTS.mkdir(exist_ok=True)
    summary = RESULTS / ("summary-quick.md" if args.quick else "summary.md")
    summary.write_text("\n".join([header, *sections]))
    print(f"All tables: {summary} ({elapsed:.0f} s)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
