"""What the tables of experiments show: worker lanes, busy time, the schedule without
overhead, time to reach a value, gaps between trials, and one row per experiment.

Every function here takes timings or ``Experiment`` tables and computes; nothing
reads files or runs trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from syne_tune.config_space import is_log_space

from d2l_hpo.common.status import FINISHED
from d2l_hpo.experiment.measures import finite
from d2l_hpo.experiment.results import Experiment
from d2l_hpo.experiment.storage import config_column


def time_to_reach(exp: Experiment, target: float) -> float:
    """Seconds until some trial first reported ``target`` or better (NaN if never).
    Only results that count for ``exp.best_value`` count here (``valid_results``): a
    trial that later diverged never reached anything."""
    valid = exp.valid_results()
    values = finite(valid.get(exp.metric, pd.Series(dtype=float)))
    hits = values <= target if exp.mode == "min" else values >= target
    times = valid.loc[hits[hits].index, "time"]
    return float(times.min()) if len(times) else float("nan")


def launch_gaps(exp: Experiment) -> pd.Series:
    """Per lane, seconds from one trial's end to the next trial's start on that lane:
    what a freed worker waits (polling) plus what starting a trial costs."""
    gaps = []
    for _, lane in exp.trials.sort_values("start").groupby("worker"):
        gaps.extend(lane["start"].to_numpy()[1:] - lane["end"].to_numpy()[:-1])
    return pd.Series(gaps, dtype=float, name="gap")


def gaps_after_last_report(exp: Experiment) -> pd.Series:
    """Per lane, seconds from a trial's last report to the next trial's start on that
    lane: how long a worker went without a useful trial once its trial had said all it
    would (the trial's exit, the tuner noticing, the next launch). Unlike
    ``launch_gaps`` this does not depend on when the trial's end was stamped (plain
    Syne Tune stamps it when the tuner next looks, so its end-to-start gap is zero). A
    trial that reported nothing counts from its end."""
    last = exp.results.groupby("trial_id")["time"].max() if len(exp.results) else {}
    gaps = []
    for _, lane in exp.trials.sort_values("start").groupby("worker"):
        ids, starts, ends = (lane[c].to_numpy() for c in ("trial_id", "start", "end"))
        for before, end, start in zip(ids[:-1], ends[:-1], starts[1:]):
            gaps.append(start - float(last.get(before, end)))
    return pd.Series(gaps, dtype=float, name="gap")


def epoch_seconds(exp: Experiment) -> pd.Series:
    """Per trial, the median time between consecutive reports (one epoch each)."""
    rows = exp.results.sort_values(["trial_id", "worker_time"])
    steps = rows.groupby("trial_id")["worker_time"].diff().dropna()
    return steps.groupby(rows.loc[steps.index, "trial_id"]).median().rename("epoch_seconds")


def compare(experiments, labels=None) -> pd.DataFrame:
    """One row per experiment: workers, trials finished, wall-clock, utilisation,
    idle worker-seconds and best value."""
    experiments = list(experiments)
    if not experiments:
        raise ValueError("compare() needs at least one experiment, got none")
    labels = labels or [e.scheduling for e in experiments]
    if len(labels) != len(experiments):
        raise ValueError(f"compare() got {len(experiments)} experiments but {len(labels)} "
                         "labels; give one label per experiment")
    rows = []
    for label, exp in zip(labels, experiments):
        done = exp.trials["status"].isin(FINISHED).sum()
        rows.append({"experiment": label, "workers": exp.n_workers,
                     "trials finished": int(done), "wall-clock (s)": round(exp.wallclock, 1),
                     "utilisation": round(exp.utilization, 3),
                     "idle worker-seconds": round(exp.idle_worker_seconds, 1),
                     f"best {exp.metric}": round(exp.best_value, 4)})
    return pd.DataFrame(rows).set_index("experiment")


def _scaled(values: pd.Series, domain) -> pd.Series | None:
    """A hyperparameter's values on [0, 1] (its domain's range, logarithmic where the
    domain samples on a log scale, else the range seen); None: compare by equality."""
    lower, upper = getattr(domain, "lower", None), getattr(domain, "upper", None)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any():
        return None
    if lower is None or upper is None:
        if domain is not None:  # a choice: equal or not
            return None
        lower, upper = numeric.min(), numeric.max()
    if domain is not None and is_log_space(domain) and lower > 0:
        numeric, lower, upper = np.log(numeric), np.log(lower), np.log(upper)
    span = upper - lower
    return (numeric - lower) / span if span > 0 else numeric * 0.0


def pending_overlap(exp: Experiment, space: dict | None = None,
                    tolerance: float = 0.05) -> pd.DataFrame:
    """Per trial, how close its configuration came to one still running when it started.

    A trial's *pending* trials are those that had started before it and had not ended
    yet. Each hyperparameter is put on [0, 1] (by its domain in ``space``, on a log
    scale where the domain samples that way; without ``space``, by the range the
    experiment saw); a choice counts 0 when equal and 1 otherwise. The distance between
    two configurations is the largest difference over their hyperparameters, so a trial
    is a *near-duplicate* when every hyperparameter lies within ``tolerance`` of a
    pending trial's. Columns: ``trial_id``, ``start``, ``pending`` (how many),
    ``nearest`` (the closest pending trial), ``distance`` and ``near_duplicate``
    (NaN, NaN and False when nothing was pending)."""
    if not 0 <= tolerance <= 1:
        raise ValueError(f"tolerance is a share of each hyperparameter's range, in [0, 1]; "
                         f"got {tolerance!r}")
    trials = exp.trials.sort_values(["start", "trial_id"]).reset_index(drop=True)
    configs = pd.DataFrame({c: trials[config_column(c)] for c in exp.config_columns})
    space = space or {}
    columns = []
    for key in configs.columns:
        scaled = _scaled(configs[key], space.get(key))
        if scaled is None:  # compare by equality: 0 or 1
            values = configs[key].astype(str).to_numpy()
            columns.append((values[:, None] != values[None, :]).astype(float))
        else:
            values = scaled.to_numpy(dtype=float)
            columns.append(np.abs(values[:, None] - values[None, :]))
    distance = np.max(columns, axis=0) if columns else np.zeros((len(trials), len(trials)))
    starts, ends = trials["start"].to_numpy(), trials["end"].to_numpy()
    rows = []
    for i in range(len(trials)):
        pending = [j for j in range(i) if ends[j] > starts[i]]
        nearest = min(pending, key=lambda j: distance[i, j]) if pending else None
        gap = float(distance[i, nearest]) if pending else float("nan")
        rows.append({"trial_id": int(trials.loc[i, "trial_id"]), "start": float(starts[i]),
                     "pending": len(pending),
                     "nearest": (int(trials.loc[nearest, "trial_id"]) if pending
                                 else float("nan")),
                     "distance": gap, "near_duplicate": bool(pending) and gap <= tolerance})
    return pd.DataFrame(rows)
