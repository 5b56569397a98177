"""Shared bits of the benchmark scripts: machine description, tables, CSV, and the
Syne Tune set-up a learner would write from its documentation (the peer in B1, B2)."""
from __future__ import annotations

import contextlib
import csv
import io
import importlib.metadata as md
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

# where the CSVs and summaries go; the test of the quick suite points it elsewhere
RESULTS = Path(os.environ.get("D2L_HPO_BENCH_RESULTS")
               or Path(__file__).resolve().parent / "results")


def machine() -> dict:
    versions = {}
    for package in ("syne-tune", "torch", "torchvision", "d2l", "numpy", "ray", "optuna"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = "-"
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            **{f"v_{k}": v for k, v in versions.items()}}


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
        return str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(name: str, rows: list[dict]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.csv"
    info = machine()
    rows = [{**r, **info} for r in rows]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def median(values):
    return statistics.median(values)


def run_syne_tune_defaults(objective, space: dict, scheduler, stop_criterion, n_workers: int,
                           scheduling: str, path: Path, callbacks=()) -> None:
    """Syne Tune 0.16 as its documentation shows it: ``PythonBackend`` and a ``Tuner`` with
    every default kept (``sleep_time=5`` among them); its printing is swallowed."""
    from syne_tune import Tuner
    from syne_tune.backend import PythonBackend

    tuner = Tuner(trial_backend=PythonBackend(tune_function=objective, config_space=space),
                  scheduler=scheduler, stop_criterion=stop_criterion, n_workers=n_workers,
                  asynchronous_scheduling=scheduling == "async", tuner_name=Path(path).name,
                  suffix_tuner_name=False, trial_backend_path=str(path),
                  callbacks=list(callbacks) or None)  # None: its default StoreResultsCallback
    tuner.tuner_path = Path(path)  # the recorder of B2 reads the trials from here
    with contextlib.redirect_stdout(io.StringIO()):
        tuner.run()
