"""One experiment, one table: what the runner wrote, read back as an ``Experiment``.

Files in an experiment folder (written by ``d2l_hpo.runner``; each is replaced
atomically, so a crash never leaves half a file):

- ``experiment.json``: settings (workers, scheduling, metric, seed, ...) and timing
- ``trials.csv``: one row per trial: id, status, start, end, worker lane, config
- ``results.csv``: one row per report: trial id, time, the reported values
"""

from __future__ import annotations

import heapq
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXPERIMENT_FILE = "experiment.json"
TRIALS_FILE = "trials.csv"
RESULTS_FILE = "results.csv"
DEFAULT_RESULTS_DIR = "runs"


def default_results_dir() -> Path:
    """``$SYNETUNE_FOLDER`` when set, else ``runs/`` in the current directory."""
    return Path(os.environ.get("SYNETUNE_FOLDER") or DEFAULT_RESULTS_DIR)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that readers see either the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def assign_lanes(starts, ends, n_workers: int) -> list[int]:
    """Reconstruct which worker lane (0..n_workers-1) ran each trial from its times.

    Trials are placed in start order on the lowest-numbered lane that is free at
    their start; when none is (clock noise), on the lane that frees up first.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    lane_free_at = [-math.inf] * n_workers
    lanes = [0] * len(starts)
    order = sorted(range(len(starts)), key=lambda i: (starts[i], i))
    for i in order:
        free = [lane for lane in range(n_workers) if lane_free_at[lane] <= starts[i] + 1e-6]
        lane = free[0] if free else min(range(n_workers), key=lane_free_at.__getitem__)
        lanes[i] = lane
        end = ends[i] if ends[i] is not None and not pd.isna(ends[i]) else math.inf
        lane_free_at[lane] = end
    return lanes


def busy_fraction(starts, ends, n_workers: int, wallclock: float) -> float:
    """Busy worker-time divided by ``n_workers × wallclock`` (each trial clipped
    to the experiment's ``[0, wallclock]``)."""
    if wallclock <= 0:
        return float("nan")
    busy = sum(max(0.0, min(e, wallclock) - max(s, 0.0)) for s, e in zip(starts, ends))
    return busy / (n_workers * wallclock)


def _finite(values: pd.Series) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce")
    return values[np.isfinite(values)]


@dataclass
class Experiment:
    """A random search that ran (or is running): its settings and its tables.

    ``results`` has one row per report (``trial_id``, ``time`` in seconds since the
    start, and every reported value); ``trials`` one row per trial (``trial_id``,
    ``status``, ``start``, ``end``, ``duration``, ``worker``, the configuration, and
    the trial's final and best metric). Reported values that are NaN or infinite
    never count as best, and neither does anything a trial reported before it
    diverged (status ``diverged``): a configuration that blows up is not a good
    configuration, whatever its first epochs looked like.
    """

    name: str
    path: Path
    n_workers: int
    scheduling: str
    metric: str
    mode: str
    wallclock: float
    results: pd.DataFrame
    trials: pd.DataFrame
    config_columns: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def utilization(self) -> float:
        """Busy worker-time divided by n_workers × wall-clock time."""
        t = self.trials
        return busy_fraction(t["start"], t["end"].fillna(self.wallclock),
                             self.n_workers, self.wallclock)

    @property
    def idle_worker_seconds(self) -> float:
        """Worker-seconds during which a worker had no trial."""
        return self.n_workers * self.wallclock * (1 - self.utilization)

    def valid_results(self) -> pd.DataFrame:
        """Reports that count for "best": finite, and not from a trial that diverged."""
        rows = self.results
        if self.metric not in rows:
            return rows.iloc[0:0]
        diverged = set(self.trials.loc[self.trials["status"] == "diverged", "trial_id"])
        values = pd.to_numeric(rows[self.metric], errors="coerce")
        return rows[np.isfinite(values) & ~rows["trial_id"].isin(diverged)]

    def _best_row(self):
        values = self.valid_results().get(self.metric, pd.Series(dtype=float)).astype(float)
        if values.empty:
            return None
        index = values.idxmin() if self.mode == "min" else values.idxmax()
        return self.results.loc[index]

    @property
    def best_value(self) -> float:
        """The best finite value of the metric reported by any trial (NaN if none)."""
        row = self._best_row()
        return float("nan") if row is None else float(row[self.metric])

    @property
    def best_trial_id(self) -> int | None:
        row = self._best_row()
        return None if row is None else int(row["trial_id"])

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The configuration of the trial that reported ``best_value``."""
        trial_id = self.best_trial_id
        if trial_id is None:
            return None
        row = self.trials.set_index("trial_id").loc[trial_id]
        return {c: _plain(row[c]) for c in self.config_columns}

    def summary(self) -> dict[str, Any]:
        """The headline numbers of the experiment, as plain Python values."""
        counts = self.trials["status"].value_counts()
        errors = {}
        if "error" in self.trials:
            failed = self.trials[self.trials["status"] == "failed"]
            errors = {int(t): e for t, e in zip(failed["trial_id"], failed["error"])}
        return {
            "name": self.name, "scheduling": self.scheduling, "n_workers": self.n_workers,
            "trials": len(self.trials),
            **{s: int(counts.get(s, 0)) for s in ("completed", "failed", "diverged",
                                                  "timeout", "stopped", "interrupted")},
            "errors": errors,
            "wallclock": round(self.wallclock, 2), "utilization": round(self.utilization, 3),
            f"best_{self.metric}": self.best_value, "best_config": self.best_config,
        }

    def __repr__(self):
        return (f"Experiment(name={self.name!r}, scheduling={self.scheduling!r}, "
                f"n_workers={self.n_workers}, trials={len(self.trials)}, "
                f"best_value={self.best_value:.4g}, utilization={self.utilization:.2f})")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def resolve_experiment_path(name_or_path, results_dir=None, syne_tune: bool = False) -> Path:
    """The folder of an experiment given by folder or by name.

    :param syne_tune: also accept a folder that plain Syne Tune wrote, and look for a
        name where Syne Tune puts it (``$SYNETUNE_FOLDER``, else ``~/syne-tune``)
    """
    from d2l_hpo.syne_tune_folder import is_syne_tune_folder

    path = Path(name_or_path)
    candidates = [path, Path(results_dir or default_results_dir()) / str(name_or_path)]
    if syne_tune and results_dir is None and not path.is_absolute():
        from syne_tune.util import experiment_path
        candidates.append(experiment_path(str(name_or_path)))
    for candidate in candidates:
        if (candidate / EXPERIMENT_FILE).is_file() or (
                syne_tune and is_syne_tune_folder(candidate)):
            return candidate
    raise FileNotFoundError(
        f"no experiment '{name_or_path}': "
        + " nor ".join(str(c.resolve()) for c in dict.fromkeys(candidates))
        + f" holds an {EXPERIMENT_FILE}"
        + (" or a Syne Tune experiment (metadata.json and results.csv.zip)" if syne_tune else ""))


def load_experiment(name_or_path, results_dir=None) -> Experiment:
    """Load a past (or running, or killed) experiment by its folder or by its name.

    Experiments of plain Syne Tune (``Tuner.run()``) load too, with the same tables;
    ``d2l_hpo.syne_tune_folder`` says what is reconstructed for them.

    :param name_or_path: an experiment folder, or a name under ``results_dir``
        (for Syne Tune's experiments also ``tuner.name``)
    :param results_dir: where named experiments live; default ``runs/`` (or ``$SYNETUNE_FOLDER``)
    """
    path = resolve_experiment_path(name_or_path, results_dir, syne_tune=True)
    if not (path / EXPERIMENT_FILE).is_file():
        from d2l_hpo.syne_tune_folder import read_syne_tune_folder
        return build_experiment(path, *read_syne_tune_folder(path))
    return build_experiment(path, *read_tables(path))


def read_tables(path: Path):
    """Settings, trials and reports of an experiment folder.

    When the run did not finish (its process was killed, say), the tables on disk
    can be up to a second behind; the trials' own logs (``N/std.out``, where each
    report is a line) are then read as well, so nothing a trial reported is lost.
    """
    path = Path(path)
    settings = json.loads((path / EXPERIMENT_FILE).read_text())
    trials = _read_csv(path / TRIALS_FILE)
    results = _read_csv(path / RESULTS_FILE)
    if not settings.get("finished"):
        trials, results = _recover_from_trial_logs(path, settings, trials, results)
    return settings, trials, results


def _recover_from_trial_logs(path, settings, trials, results):
    from syne_tune.report import retrieve

    t0 = settings.get("start_timestamp")
    if t0 is None:
        return trials, results
    known = set(trials["trial_id"]) if len(trials) else set()
    abandoned = set(settings.get("abandoned", []))  # redone under new ids by a resume
    new_trials, new_rows = [], []
    for folder in sorted(path.iterdir(), key=lambda p: p.name):
        if not (folder.name.isdigit() and (folder / "std.out").exists()):
            continue
        trial_id = int(folder.name)
        if trial_id in abandoned:
            continue
        reports = retrieve(log_lines=(folder / "std.out").read_text().splitlines())
        have = int((results["trial_id"] == trial_id).sum()) if len(results) else 0
        for report in reports[have:]:
            row = {"trial_id": trial_id, "time": report.get("st_worker_timestamp", t0) - t0}
            row.update({k: v for k, v in report.items() if not k.startswith("st_")})
            row["worker_time"] = report.get("st_worker_time", math.nan)
            new_rows.append(row)
        if trial_id not in known and (folder / "config.json").exists():
            config = json.loads((folder / "config.json").read_text())
            end = folder / "end"
            new_trials.append({
                "trial_id": trial_id, "status": "interrupted",
                "start": (folder / "config.json").stat().st_mtime - t0,
                "end": (float(end.read_text()) - t0) if end.exists() else math.nan,
                **{c: config.get(c) for c in settings.get("config_columns", [])},
                "error": "", "pid": math.nan})
    if new_rows:
        results = pd.concat([results, pd.DataFrame(new_rows)], ignore_index=True)
    if new_trials:
        trials = pd.concat([trials, pd.DataFrame(new_trials)], ignore_index=True)
    if len(trials):  # whatever was running when the process died was interrupted
        trials.loc[trials["status"] == "running", "status"] = "interrupted"
    return trials, results


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # only empty cells are missing: a choice(["nan", "none"]) value stays a string
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def build_experiment(path, settings, trials: pd.DataFrame, results: pd.DataFrame) -> Experiment:
    """Derive the per-trial columns (duration, lanes, final/best metric) from raw rows."""
    metric, mode = settings["metric"], settings["mode"]
    n_workers = int(settings["n_workers"])
    config_columns = list(settings.get("config_columns", []))
    if trials.empty:
        trials = pd.DataFrame(columns=["trial_id", "status", "start", "end", "worker",
                                       *config_columns])
    if results.empty:
        results = pd.DataFrame(columns=["trial_id", "time", metric])
    trials = trials.sort_values("trial_id").reset_index(drop=True)
    if "node" not in trials:  # runs recorded before trials had a node
        trials["node"] = ""
    trials["node"] = trials["node"].fillna("").astype(str)
    if "error" in trials:
        trials["error"] = trials["error"].fillna("").astype(str)
    last_time = results["time"].max() if len(results) else math.nan
    if trials["end"].isna().any():  # killed before they ended: up to their last report
        last = results.groupby("trial_id")["time"].max() if len(results) else {}
        trials["end"] = [e if not pd.isna(e) else float(last.get(t, s) if len(results) else s)
                         for t, s, e in zip(trials["trial_id"], trials["start"], trials["end"])]
    results = results.sort_values(["time", "trial_id"], kind="stable").reset_index(drop=True)
    wallclock = float(settings.get("wallclock") or 0.0)
    if len(trials):
        wallclock = max(wallclock, float(pd.concat([trials["end"], trials["start"]]).max()))
    if not pd.isna(last_time):
        wallclock = max(wallclock, float(last_time))
    trials["duration"] = trials["end"] - trials["start"]
    if "worker" not in trials or trials["worker"].isna().any():
        ends = trials["end"].fillna(wallclock).tolist()
        trials["worker"] = assign_lanes(trials["start"].tolist(), ends, n_workers)
    trials["worker"] = trials["worker"].astype(int)
    final, best = [], []
    for trial_id, status in zip(trials["trial_id"], trials["status"]):
        values = results.loc[results["trial_id"] == trial_id, metric] if metric in results else []
        values = pd.to_numeric(pd.Series(values), errors="coerce")
        finite = _finite(values) if status != "diverged" else values.iloc[0:0]
        final.append(float(values.iloc[-1]) if len(values) else float("nan"))
        best.append(float("nan") if finite.empty else
                    float(finite.min() if mode == "min" else finite.max()))
    trials[f"final_{metric}"] = final
    trials[f"best_{metric}"] = best
    return Experiment(
        name=settings["name"], path=Path(path), n_workers=n_workers,
        scheduling=settings["scheduling"], metric=metric, mode=mode,
        wallclock=wallclock, results=results, trials=trials,
        config_columns=config_columns, settings=settings,
    )


def ideal_starts(durations, n_workers: int, scheduling: str = "async") -> list[float]:
    """Start times of the zero-overhead schedule of ``durations`` in this order: async
    starts each trial the instant a worker frees up; sync starts batches of
    ``n_workers`` trials together, each batch when the longest trial of the last ends."""
    durations = list(durations)
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    if scheduling == "sync":
        starts, t = [], 0.0
        for i in range(0, len(durations), n_workers):
            batch = durations[i:i + n_workers]
            starts += [t] * len(batch)
            t += max(batch)
        return starts
    free, starts = [0.0] * n_workers, []
    for d in durations:
        start = heapq.heappop(free)
        starts.append(start)
        heapq.heappush(free, start + d)
    return starts


def ideal_makespan(durations, n_workers: int, scheduling: str = "async") -> float:
    """Makespan of the zero-overhead schedule of ``durations`` in this order (see
    ``ideal_starts``)."""
    durations = list(durations)
    starts = ideal_starts(durations, n_workers, scheduling)
    return float(max((s + d for s, d in zip(starts, durations)), default=0.0))


# --- summaries across experiments -------------------------------------------------------
def time_to_reach(exp: Experiment, target: float) -> float:
    """Seconds until some trial first reported ``target`` or better (NaN if never)."""
    values = _finite(exp.results.get(exp.metric, pd.Series(dtype=float)))
    hits = values <= target if exp.mode == "min" else values >= target
    times = exp.results.loc[hits[hits].index, "time"]
    return float(times.min()) if len(times) else float("nan")


def launch_gaps(exp: Experiment) -> pd.Series:
    """Per lane, seconds from one trial's end to the next trial's start on that lane:
    what a freed worker waits (polling) plus what starting a trial costs."""
    gaps = []
    for _, lane in exp.trials.sort_values("start").groupby("worker"):
        gaps.extend(lane["start"].to_numpy()[1:] - lane["end"].to_numpy()[:-1])
    return pd.Series(gaps, dtype=float, name="gap")


def epoch_seconds(exp: Experiment) -> pd.Series:
    """Per trial, the median time between consecutive reports (one epoch each)."""
    rows = exp.results.sort_values(["trial_id", "worker_time"])
    steps = rows.groupby("trial_id")["worker_time"].diff().dropna()
    return steps.groupby(rows.loc[steps.index, "trial_id"]).median().rename("epoch_seconds")


def compare(experiments, labels=None) -> pd.DataFrame:
    """One row per experiment: workers, trials finished, wall-clock, utilisation,
    idle worker-seconds and best value."""
    labels = labels or [e.scheduling for e in experiments]
    rows = []
    for label, exp in zip(labels, experiments):
        done = exp.trials["status"].isin(["completed", "failed", "diverged", "timeout"]).sum()
        rows.append({"experiment": label, "workers": exp.n_workers,
                     "trials finished": int(done), "wall-clock (s)": round(exp.wallclock, 1),
                     "utilisation": round(exp.utilization, 3),
                     "idle worker-seconds": round(exp.idle_worker_seconds, 1),
                     f"best {exp.metric}": round(exp.best_value, 4)})
    return pd.DataFrame(rows).set_index("experiment")
