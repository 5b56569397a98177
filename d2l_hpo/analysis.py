"""What the tables of experiments show: worker lanes, busy time, the schedule without
overhead, time to reach a value, gaps between trials, and one row per experiment.

Every function here takes timings or ``Experiment`` tables and computes; nothing
reads files or runs trials.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from d2l_hpo.status import FINISHED

if TYPE_CHECKING:
    from d2l_hpo.results import Experiment


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


def _number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
        and math.isfinite(value)


def best_value(values, mode: str) -> float:
    """The best finite number among ``values`` (the lowest for ``mode="min"``), NaN if none."""
    numbers = [v for v in values if _number(v)]
    if not numbers:
        return math.nan
    return float(min(numbers) if mode == "min" else max(numbers))


def improves(value, best: float, mode: str) -> bool:
    """Whether ``value`` is a finite number better than ``best`` (NaN: nothing yet)."""
    return _number(value) and (math.isnan(best) or (value < best if mode == "min"
                                                     else value > best))


def finite(values: pd.Series) -> pd.Series:
    """The finite numbers of a column: NaN, infinities and non-numbers dropped."""
    values = pd.to_numeric(values, errors="coerce")
    return values[np.isfinite(values)]


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
