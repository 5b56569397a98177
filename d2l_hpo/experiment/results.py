"""One experiment, one table: an ``Experiment`` and how it is built from what the
runner (or plain Syne Tune) wrote into its folder.

``d2l_hpo.experiment.storage`` reads and writes the folder; ``d2l_hpo.experiment.analysis`` computes
what the tables show across experiments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from d2l_hpo.common.status import DIVERGED, ENDED, FAILED
from d2l_hpo.experiment.measures import assign_lanes, best_value, busy_fraction
from d2l_hpo.experiment.storage import (
    EXPERIMENT_FILE, CorruptExperimentError, check_settings, config_column,
    default_results_dir, plain, read_tables,
)
from d2l_hpo.experiment.syne_tune_folder import is_syne_tune_folder, read_syne_tune_folder


@dataclass
class Experiment:
    """A search that ran (or is running): its settings and its tables.

    ``results`` has one row per report (``trial_id``, ``time`` in seconds since the
    start, and every reported value); ``trials`` one row per trial (``trial_id``,
    ``status``, ``start``, ``end``, ``duration``, ``worker``, the configuration as
    ``config_<key>`` columns (Syne Tune's names; ``configs`` has them under their own
    names), and the trial's final and best metric). Reported values that are NaN or infinite
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
    def configs(self) -> pd.DataFrame:
        """One row per trial (in the order of ``trials``), one column per searched key,
        under the key's own name."""
        return pd.DataFrame({c: self.trials[config_column(c)] for c in self.config_columns},
                            index=self.trials.index)

    @property
    def utilization(self) -> float:
        """Busy worker-time divided by n_workers × wall-clock time."""
        t = self.trials
        return busy_fraction(t["start"], t["end"].fillna(self.wallclock),
                             self.n_workers, self.wallclock)

    @property
    def setup_time(self) -> float:
        """Seconds the call(s) spent before the clock started (the backend's warm-up:
        importing the objective's modules); not in ``wallclock``."""
        return float(self.settings.get("setup_time") or 0.0)

    @property
    def call_time(self) -> float:
        """What the user waited for: the set-up plus the wall-clock."""
        return self.setup_time + self.wallclock

    @property
    def idle_worker_seconds(self) -> float:
        """Worker-seconds during which a worker had no trial."""
        return self.n_workers * self.wallclock * (1 - self.utilization)

    def valid_results(self) -> pd.DataFrame:
        """Reports that count for "best": finite, and not from a trial that diverged."""
        rows = self.results
        if self.metric not in rows:
            return rows.iloc[0:0]
        diverged = set(self.trials.loc[self.trials["status"] == DIVERGED, "trial_id"])
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
        return {c: plain(row[config_column(c)]) for c in self.config_columns}

    @property
    def resource_attr(self) -> str:
        """The reported value that counts a trial's progress (``"epoch"``)."""
        return self.settings.get("resource_attr") or "epoch"

    @property
    def rungs(self) -> list[float]:
        """The epochs at which early stopping could stop a trial (none without it), as the
        run wrote them into ``experiment.json``."""
        return [float(r) for r in self.settings.get("rungs") or []]

    @property
    def epochs_spent(self) -> int:
        """Epochs (levels of ``resource_attr``) the trials ran: each trial's last
        reported level, summed (0 when the trials report none)."""
        if self.resource_attr not in self.results or self.results.empty:
            return 0
        levels = pd.to_numeric(self.results[self.resource_attr], errors="coerce")
        last = levels.groupby(self.results["trial_id"]).max()
        return int(last.fillna(0).sum())

    def summary(self) -> dict[str, Any]:
        """The headline numbers of the experiment, as plain Python values."""
        counts = self.trials["status"].value_counts()
        errors = {}
        if "error" in self.trials:
            failed = self.trials[self.trials["status"] == FAILED]
            errors = {int(t): e for t, e in zip(failed["trial_id"], failed["error"])}
        return {
            "name": self.name, "scheduling": self.scheduling, "n_workers": self.n_workers,
            "trials": len(self.trials),
            **{s: int(counts.get(s, 0)) for s in ENDED},
            "errors": errors, "epochs_spent": self.epochs_spent,
            "wallclock": round(self.wallclock, 2), "setup_time": round(self.setup_time, 2),
            "utilization": round(self.utilization, 3),
            f"best_{self.metric}": self.best_value, "best_config": self.best_config,
        }

    def __repr__(self):
        return (f"Experiment(name={self.name!r}, scheduling={self.scheduling!r}, "
                f"n_workers={self.n_workers}, trials={len(self.trials)}, "
                f"best_value={self.best_value:.4g}, utilization={self.utilization:.2f})")


def resolve_experiment_path(name_or_path, results_dir=None, syne_tune: bool = False) -> Path:
    """The folder of an experiment given by folder or by name.

    :param syne_tune: also accept a folder that plain Syne Tune wrote, and look for a
        name where Syne Tune puts it (``$SYNETUNE_FOLDER``, else ``~/syne-tune``)
    """
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


def load_experiment(name_or_path, results_dir=None, *, trust_pickle: bool = False) -> Experiment:
    """Load a past (or running, or killed) experiment by its folder or by its name.

    Experiments of plain Syne Tune (``Tuner.run()``) load too, with the same tables;
    ``d2l_hpo.experiment.syne_tune_folder`` says what is reconstructed for them.

    :param name_or_path: an experiment folder, or a name under ``results_dir``
        (for Syne Tune's experiments also ``tuner.name``)
    :param results_dir: where named experiments live; default ``runs/`` (or ``$SYNETUNE_FOLDER``)
    :param trust_pickle: for a plain Syne Tune folder only: also unpickle its
        ``tuner.dill`` for the number of workers, the scheduling and each trial's final
        status. Unpickling runs whatever code the file holds, so pass True only for a
        folder you wrote yourself, never for one you downloaded; default False (those
        three are then read from the other files, see ``d2l_hpo.experiment.syne_tune_folder``)
    :raises CorruptExperimentError: a file of the folder is damaged or not what this
        version reads; the message names it
    """
    path = resolve_experiment_path(name_or_path, results_dir, syne_tune=True)
    try:
        if (path / EXPERIMENT_FILE).is_file():
            return build_experiment(path, *read_tables(path))
        return build_experiment(path, *read_syne_tune_folder(path, trust_pickle=trust_pickle))
    except CorruptExperimentError:
        raise
    except (KeyError, ValueError, TypeError, ZeroDivisionError, AttributeError,
            IndexError) as err:
        # what the checks of each file did not foresee: still the folder's fault, said so
        raise CorruptExperimentError(
            f"the experiment in {path} cannot be read: {type(err).__name__}: {err}. Its "
            "files were edited by hand or written by another version") from err


def _text(column: pd.Series) -> pd.Series:
    """A column of text, missing cells empty (a column read as all-missing is float)."""
    return column.astype(object).where(column.notna(), "").astype(str)


def build_experiment(path, settings, trials: pd.DataFrame, results: pd.DataFrame) -> Experiment:
    """Derive the per-trial columns (duration, lanes, final/best metric) from raw rows."""
    check_settings(settings, Path(path) / EXPERIMENT_FILE)
    metric, mode = settings["metric"], settings["mode"]
    n_workers = int(settings["n_workers"])
    config_columns = list(settings.get("config_columns", []))
    if trials.empty:
        trials = pd.DataFrame(columns=["trial_id", "status", "start", "end", "worker",
                                       *map(config_column, config_columns)])
    if results.empty:
        results = pd.DataFrame(columns=["trial_id", "time", metric])
    trials = trials.sort_values("trial_id").reset_index(drop=True)
    if "node" not in trials:  # runs recorded before trials had a node
        trials["node"] = ""
    if "stopped_at" not in trials:  # runs recorded before early stopping
        trials["stopped_at"] = math.nan
    trials["node"] = _text(trials["node"])
    if "error" in trials:
        trials["error"] = _text(trials["error"])
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
        final.append(float(values.iloc[-1]) if len(values) else float("nan"))
        # what a trial reported before it diverged does not count
        best.append(best_value(values if status != DIVERGED else [], mode))
    trials[f"final_{metric}"] = final
    trials[f"best_{metric}"] = best
    return Experiment(
        name=settings["name"], path=Path(path), n_workers=n_workers,
        scheduling=settings["scheduling"], metric=metric, mode=mode,
        wallclock=wallclock, results=results, trials=trials,
        config_columns=config_columns, settings=settings,
    )
