"""Several searchers, numbers of workers and seeds on one problem: the runs of a
comparison (lesson 07, benchmark B9) and its summary table.

Each run is one ``run_search`` call; on a tabulated benchmark it is a replay in
simulated time, so a sweep of hundreds of runs takes minutes, not days. Per run the
table keeps when the target was first reached, how far the search got, and how often a
trial started as a near-duplicate of one still running (``pending_overlap``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from d2l_hpo.experiment.analysis import pending_overlap, time_to_reach
from d2l_hpo.run.runner import run_search
from d2l_hpo.search.registry import searcher_class

__all__ = ["searcher_sweep", "sweep_summary"]


def searcher_sweep(objective: Callable | Any, config_space: dict[str, Any],
                   searchers: Sequence[str], workers: Sequence[int], seeds: Sequence[int],
                   target: float, *, max_num_trials: int, scheduling: str = "async",
                   tolerance: float = 0.05, progress: bool = True,
                   keep: bool = False, **options) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """Run every searcher with every number of workers and every seed.

    :param objective: as for ``run_search`` (a tabulated benchmark replays in
        simulated time)
    :param target: the metric value whose first report times a run ("to target")
    :param max_num_trials: trials per run
    :param tolerance: what ``pending_overlap`` counts as a near-duplicate
    :param progress: a progress bar over the runs
    :param keep: also return the experiments, by (searcher, workers, seed)
    :param options: passed on to ``run_search`` (``metric``, ``mode``, ...)
    :return: one row per run: ``searcher``, ``workers``, ``seed``, ``scheduling``,
        ``to target (s)`` (NaN: never reached), ``finish (s)``, ``best``, ``trials``,
        ``near-duplicate`` (the share of trials started within ``tolerance`` of a
        running one) and ``pending`` (trials running, on average, when one started)
    """
    searchers, workers, seeds = list(searchers), list(workers), list(seeds)
    for name in searchers:
        searcher_class(name)  # a wrong name fails here, before any run
    if not (searchers and workers and seeds):
        raise ValueError("searchers, workers and seeds each need at least one entry")
    bad = [k for k in workers
           if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1]
    if bad:
        raise ValueError(f"workers are whole numbers >= 1, got {bad[0]!r}")
    if not np.isfinite(target):
        raise ValueError(f"target must be a finite number, got {target!r}")
    plan = [(name, k, seed) for name in searchers for k in workers for seed in seeds]
    if progress:
        from tqdm.auto import tqdm
        plan = tqdm(plan, desc="runs", mininterval=2)
    rows, kept = [], {}
    for name, k, seed in plan:
        exp = run_search(objective, config_space, searcher=name, n_workers=k, seed=seed,
                         max_num_trials=max_num_trials, scheduling=scheduling,
                         progress=False, **options)
        overlap = pending_overlap(exp, config_space, tolerance=tolerance)
        rows.append({"searcher": name, "workers": k, "seed": seed, "scheduling": scheduling,
                     "to target (s)": time_to_reach(exp, target),
                     "finish (s)": exp.wallclock, "best": exp.best_value,
                     "trials": len(exp.trials),
                     "near-duplicate": float(overlap["near_duplicate"].mean()),
                     "pending": float(overlap["pending"].mean())})
        if keep:
            kept[name, k, seed] = exp
    table = pd.DataFrame(rows)
    return (table, kept) if keep else table


def sweep_summary(table: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Per searcher and number of workers: the median time to target and its middle
    half over the seeds, how many seeds reached it, the speed-up over the same searcher
    on one worker (``workers`` = 1 must be in the sweep), the advantage over
    ``baseline`` with as many workers (its median time over this one's) and the
    near-duplicate share. A run that never reached the target counts as taking
    forever (so a median can be infinite)."""
    if table.empty:
        raise ValueError("the sweep has no runs")
    times = table.assign(t=table["to target (s)"].fillna(np.inf))
    summary = times.groupby(["searcher", "workers"], sort=False).agg(
        # the nearest run's time, not an interpolation (between a run that reached the
        # target and one that never did there is no number)
        median=("t", "median"), q25=("t", lambda t: t.quantile(0.25, interpolation="lower")),
        q75=("t", lambda t: t.quantile(0.75, interpolation="higher")),
        reached=("to target (s)", lambda t: f"{t.notna().sum()}/{len(t)}"),
        near_duplicate=("near-duplicate", "mean")).reset_index()
    one = summary[summary["workers"] == 1].set_index("searcher")["median"]
    if one.empty:
        raise ValueError("the speed-up is over one worker: put workers=1 in the sweep")
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["speed-up"] = summary["searcher"].map(one) / summary["median"]
        if baseline in set(summary["searcher"]):
            base = summary[summary["searcher"] == baseline].set_index("workers")["median"]
            summary[f"vs {baseline}"] = summary["workers"].map(base) / summary["median"]
    return summary.rename(columns={"median": "median to target (s)", "q25": "25th pct (s)",
                                   "q75": "75th pct (s)", "near_duplicate": "near-duplicate"})
