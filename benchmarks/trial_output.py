"""B6, a trial that prints a lot: what it costs the tuner.

One trial, 4 s long, reporting once a second, that prints nothing else (quiet) or
about 110 MB of text lines (noisy). The tuner polls the trial's ``std.out`` for new
reports many times a second; here it is timed by the CPU time of the process that
calls ``run_random_search`` (the tuner: trials and the fork server are processes of
their own), for:

- ``SubprocessBackend`` as it is: each poll reads only the bytes added since the last;
- the same backend reading the whole ``std.out`` at each poll, as Syne Tune's
  ``LocalBackend`` does (and ours did before).

Side by side in one run, each case ``--repeats`` times; medians.

    python benchmarks/trial_output.py [--megabytes 110] [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402

from syne_tune.report import retrieve  # noqa: E402

from d2l_hpo import run_random_search  # noqa: E402
from d2l_hpo.backends import SubprocessBackend  # noqa: E402
from d2l_hpo.backends.local import _read_lines  # noqa: E402
from d2l_hpo.search.spaces import uniform  # noqa: E402


def printing_objective(x: float, megabytes: float = 0.0, seconds: int = 4):
    """Prints ``megabytes`` of 1 KiB lines spread over ``seconds`` s; reports each second."""
    import sys
    import time

    from syne_tune import Reporter

    report = Reporter()
    line = "." * 1023 + "\n"
    lines_per_second = int(megabytes * 1024 / seconds)
    for second in range(1, seconds + 1):
        started = time.time()
        for _ in range(lines_per_second):
            sys.stdout.write(line)
        sys.stdout.flush()
        time.sleep(max(0.0, 1.0 - (time.time() - started)))
        report(epoch=second, validation_error=x)


class RereadingBackend(SubprocessBackend):
    """Reads a trial's whole ``std.out`` at every poll, as ``LocalBackend`` does."""

    def reports(self, trial_id: int) -> list[dict]:
        return retrieve(_read_lines(self.trial_path(trial_id) / "std.out"))


def one_run(backend_class, megabytes: float, folder: str) -> dict:
    space = {"x": uniform(0, 1), "megabytes": megabytes, "seconds": 4}
    backend = backend_class(printing_objective, space)
    cpu, wall = time.process_time(), time.perf_counter()
    exp = run_random_search(printing_objective, space, n_workers=1, max_num_trials=1,
                            seed=0, backend=backend, results_dir=folder,
                            name=f"out-{time.time_ns()}", progress=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    printed = (exp.path / "0" / "std.out").stat().st_size / 2**20
    assert exp.trials["status"].tolist() == ["completed"] and len(exp.results) == 4
    return {"cpu": cpu, "wall": wall, "printed": printed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=110.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20 MB, once")
    args = parser.parse_args()
    if args.quick:
        args.megabytes, args.repeats = 20.0, 1

    cases = [("quiet", SubprocessBackend, 0.0),
             ("noisy", SubprocessBackend, args.megabytes),
             ("noisy", RereadingBackend, args.megabytes)]
    runs = {i: [] for i in range(len(cases))}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):  # the cases interleaved, so load hits them alike
            for i, (_, backend_class, megabytes) in enumerate(cases):
                runs[i].append(one_run(backend_class, megabytes, folder))
    rows = []
    for i, (output, backend_class, _) in enumerate(cases):
        reading = "whole file each poll" if backend_class is RereadingBackend else "new bytes only"
        rows.append({
            "trial output": output, "tuner reads": reading,
            "MB printed": median([r["printed"] for r in runs[i]]),
            "tuner CPU (s)": median([r["cpu"] for r in runs[i]]),
            "call (s)": median([r["wall"] for r in runs[i]]),
            "runs": len(runs[i]),
        })
    print(markdown_table(rows, list(rows[0])))
    print(f"\nCSV: {write_csv('trial_output', rows)}")


if __name__ == "__main__":
    main()
