"""Numbers from timings and values alone: worker lanes, busy time, the best value so
far, the schedule without overhead. Nothing here knows an ``Experiment``; the recorder,
the tables and the analysis all use these."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pandas as pd


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
