"""Plots of an ``Experiment``. Each plot has a data step (a plain table, tested
without drawing) and a drawing step that takes ``ax=None`` and returns the Axes."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from d2l_hpo.experiment.measures import assign_lanes
from d2l_hpo.experiment.results import Experiment
from d2l_hpo.common.status import (
    COMPLETED, DIVERGED, FAILED, INTERRUPTED, PRUNED, RUNNING, STOPPED, TIMEOUT,
)

# pruned trials stand apart from completed ones (orange against blue, not cyan)
STATUS_COLORS = {COMPLETED: "tab:blue", PRUNED: "tab:orange", FAILED: "tab:red",
                 DIVERGED: "tab:purple", TIMEOUT: "tab:brown", STOPPED: "tab:gray",
                 INTERRUPTED: "tab:olive", RUNNING: "tab:green"}
TRIAL_LINESTYLES = ("-", "--", ":", "-.")


def _axes(ax, height: float = 3.5):
    """``ax``, or the Axes of a new figure whose layout keeps everything drawn beside the
    Axes (a legend on the right, long tick labels) inside the picture, so that
    ``fig.savefig(path)`` saves what the notebook shows."""
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(6, height), layout="constrained")
    return ax


def _axes_points(ax) -> tuple[float, float]:
    """The Axes' width and height in points (1/72 inch) as the figure is laid out now."""
    box = ax.get_position()  # in figure fractions (before a constrained layout's last say)
    w, h = ax.figure.get_size_inches()
    return box.width * w * 72.0, box.height * h * 72.0


# most trials a figure tells apart by colour and line style (and names in a legend)
DISTINCT_TRIALS = 40


def trial_color(i: int):
    """Colour of the i-th trial: neighbouring trials never share a colour (tab10, cycled)."""
    import matplotlib
    return matplotlib.colormaps["tab10"](i % 10)


def trial_style(i: int) -> dict:
    """Colour and line style of the i-th trial: the ten colours repeat every ten trials,
    the line style changes with each repeat, so no two of the first 40 trials look alike."""
    return {"color": trial_color(i),
            "linestyle": TRIAL_LINESTYLES[(i // 10) % len(TRIAL_LINESTYLES)]}


def spread_labels(ax, points, min_gap_pt: float = 8.0) -> list[float]:
    """Vertical offsets (points) for labels drawn at ``points`` (data x, y), so that
    labels whose anchors are within a label's size of each other do not overprint:
    each is moved up past the one below it."""
    if not points:
        return []
    ax.autoscale_view()
    to_points = 72.0 / ax.figure.dpi
    where = ax.transData.transform(np.asarray(points, dtype=float)) * to_points
    offsets = [0.0] * len(points)
    placed = []  # (x, y with offset) of the labels already placed
    for i in sorted(range(len(points)), key=lambda j: (where[j][1], where[j][0])):
        x, y = where[i]
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(px - x) < 3 * min_gap_pt and abs(py - (y + offsets[i])) < min_gap_pt:
                offsets[i] = py + min_gap_pt - y
        placed.append((x, y + offsets[i]))
    return offsets


def busy_percent(fraction: float) -> str:
    """A busy fraction as a percentage that never rounds up to 100 % (or down to 0 %)."""
    text = f"{fraction:.0%}"
    if text == "100%" and fraction < 1:
        text = f"{math.floor(fraction * 1000) / 10:.1f}%"  # 99.96 % reads 99.9 %
    elif text == "0%" and fraction > 0:
        text = f"{math.ceil(fraction * 1000) / 10:.1f}%"
    return text


# --- data steps -----------------------------------------------------------------------
def trials_over_time(exp: Experiment) -> dict[int, pd.DataFrame]:
    """Per trial: its reports (time, metric) in time order."""
    rows = exp.results.sort_values("time")
    return {int(t): g[["time", exp.metric]].reset_index(drop=True)
            for t, g in rows.groupby("trial_id")} if exp.metric in rows else {}


def learning_curves(exp: Experiment) -> dict[int, pd.DataFrame]:
    """Per trial: its reports (epoch, metric) in epoch order (``resource_attr``)."""
    epoch = exp.resource_attr
    if exp.metric not in exp.results or epoch not in exp.results:
        return {}
    rows = exp.results.sort_values([epoch, "time"])
    return {int(t): g[[epoch, exp.metric]].reset_index(drop=True)
            for t, g in rows.groupby("trial_id")}


def best_so_far(exp: Experiment) -> pd.DataFrame:
    """Best value so far against wall-clock time (a step function); NaN/inf reports
    and diverged trials do not count (see ``Experiment``)."""
    rows = exp.valid_results().sort_values("time")
    values = rows[exp.metric].astype(float)
    best = values.cummin() if exp.mode == "min" else values.cummax()
    return pd.DataFrame({"time": rows["time"].to_numpy(), "best": best.to_numpy()})


def worker_timeline(exp: Experiment) -> pd.DataFrame:
    """One bar per trial: its lane (row of the plot) and the lane's label, start, end, status.

    Trials that ran on one machine get one lane per worker. When the trials table
    says they ran on several nodes (the Ray backend), each node gets its own group
    of lanes, as many as it ran trials at the same time, so the plot shows where
    every trial really ran."""
    t = exp.trials
    bars = pd.DataFrame({"trial_id": t["trial_id"], "worker": t["worker"],
                         "start": t["start"], "end": t["end"].fillna(exp.wallclock),
                         "status": t["status"],
                         "node": t["node"].fillna("").astype(str) if "node" in t else ""})
    nodes = [n for n in dict.fromkeys(bars.sort_values("start")["node"]) if n]
    if len(nodes) < 2:
        bars["lane"] = bars["worker"]
        bars["label"] = [f"worker {w}" for w in bars["worker"]]
        return bars
    bars["lane"], bars["label"], first = 0, "", 0
    for node in nodes + [""] if (bars["node"] == "").any() else nodes:
        rows = bars.index[bars["node"] == node]
        slots = assign_lanes(bars.loc[rows, "start"].tolist(), bars.loc[rows, "end"].tolist(),
                             len(rows))
        bars.loc[rows, "lane"] = [first + s for s in slots]
        name = f"node {node}" if node else "not started"
        bars.loc[rows, "label"] = [f"{name} · slot {s}" for s in slots]
        first += max(slots) + 1
    return bars


# --- drawing steps --------------------------------------------------------------------
def plot_trials_over_time(exp: Experiment, ax=None, label_trials: bool | None = None):
    """The metric of every trial against wall-clock time, one colour per trial.

    Each point is one report (after an epoch), at the time it was made: a curve starts
    at its trial's first report, one epoch after the trial started. A NaN or infinite
    report (a diverged trial) is drawn as a red cross on the top edge; a failed trial's
    last point as a red square; where early stopping pruned a trial, a black bar.

    :param label_trials: write each trial's id at the end of its curve; default: when
        there are at most 20 trials
    """
    ax = _axes(ax)
    curves = trials_over_time(exp)
    if len(curves) > DISTINCT_TRIALS:
        return _plot_many_trials_over_time(exp, curves, ax)
    status = dict(zip(exp.trials["trial_id"], exp.trials["status"]))
    if label_trials is None:
        label_trials = len(curves) <= 20
    bad_times, pruned_at, labels = [], [], []
    for i, (trial_id, rows) in enumerate(sorted(curves.items())):
        values = pd.to_numeric(rows[exp.metric], errors="coerce")
        ok = np.isfinite(values)
        style = trial_style(i)
        color = style["color"]
        ax.plot(rows["time"][ok], values[ok], marker="o", markersize=3, linewidth=1,
                label=f"trial {trial_id}", **style)
        if label_trials and ok.any():
            labels.append((str(trial_id), color,
                           (rows["time"][ok].iloc[-1], values[ok].iloc[-1])))
        bad_times.extend(rows["time"][~ok])
        if status.get(trial_id) == FAILED and ok.any():
            ax.plot(rows["time"][ok].iloc[-1], values[ok].iloc[-1], "s", color="tab:red",
                    markersize=6)
        if status.get(trial_id) == PRUNED and ok.any():
            pruned_at.append((rows["time"][ok].iloc[-1], values[ok].iloc[-1]))
    for (text, color, point), dy in zip(labels, spread_labels(ax, [p for _, _, p in labels])):
        ax.annotate(text, point, xytext=(3, dy), textcoords="offset points", fontsize=7,
                    color=color, va="center")
    if pruned_at:
        ax.plot(*zip(*pruned_at), "_", color="black", markersize=10, markeredgewidth=2,
                linestyle="none", label="pruned here")
    if bad_times:
        ax.plot(bad_times, [1.0] * len(bad_times), "x", color="tab:red", markersize=8,
                transform=ax.get_xaxis_transform(), clip_on=False, label="diverged (NaN/inf)")
    ax.set_xlabel("wall-clock time (s)")
    ax.set_ylabel(exp.metric)
    ax.set_title(f"{exp.metric} of each trial ({len(curves)} trials)")
    return ax


def _plot_many_trials_over_time(exp: Experiment, curves: dict, ax):
    """Too many trials to tell apart: every report as a small point (a trial's reports
    joined by a faint line), coloured by when its trial started, and the best so far as
    a black step line; the legend has two entries, not one per trial."""
    from matplotlib.collections import LineCollection

    start = dict(zip(exp.trials["trial_id"], exp.trials["start"]))
    times, values, started, lines = [], [], [], []
    for trial_id, rows in curves.items():
        v = pd.to_numeric(rows[exp.metric], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(v)
        t = rows["time"].to_numpy(dtype=float)[ok]
        times.extend(t)
        values.extend(v[ok])
        started.extend([start.get(trial_id, 0.0)] * int(ok.sum()))
        if ok.sum() > 1:
            lines.append(np.column_stack([t, v[ok]]))
    if lines:
        ax.add_collection(LineCollection(lines, colors="0.75", linewidths=0.5, zorder=1))
    points = ax.scatter(times, values, c=started, cmap="viridis", s=6, linewidths=0,
                        zorder=2, label=f"a report ({len(curves)} trials)")
    ax.figure.colorbar(points, ax=ax, label="trial started at (s)", pad=0.01)
    curve = best_so_far(exp)
    if len(curve):
        ax.step(np.append(curve["time"], exp.wallclock), np.append(curve["best"],
                curve["best"].iloc[-1]), where="post", color="black", linewidth=1.5,
                zorder=3, label="best so far")
    ax.set_xlabel("wall-clock time (s)")
    ax.set_ylabel(exp.metric)
    ax.set_title(f"{exp.metric} of each trial ({len(curves)} trials)")
    ax.legend(fontsize=7, loc="upper right")
    return ax


def plot_learning_curves(exp: Experiment, ax=None):
    """The metric of every trial against its epoch, coloured by how the trial ended:
    pruned trials (their curve ends at the rung where they were stopped) thin and
    underneath, so that the trials that went on stay visible above them; the legend
    counts the trials of each kind; the rungs (where trials can be stopped) as dashed
    lines."""
    ax = _axes(ax)
    status = dict(zip(exp.trials["trial_id"], exp.trials["status"]))
    curves = sorted(learning_curves(exp).items())
    counts = pd.Series([status.get(t, COMPLETED) for t, _ in curves]).value_counts()
    shown = set()
    for trial_id, rows in curves:
        values = pd.to_numeric(rows[exp.metric], errors="coerce")
        ok = np.isfinite(values)
        kind = status.get(trial_id, COMPLETED)
        pruned = kind == PRUNED
        ax.plot(rows[exp.resource_attr][ok], values[ok], marker="o",
                markersize=2 if pruned else 3, linewidth=0.7 if pruned else 1.2,
                alpha=0.45 if pruned else 0.9, zorder=1 if pruned else 2,
                color=STATUS_COLORS.get(kind, "tab:purple"),
                label=f"{kind} ({counts[kind]})" if kind not in shown else None)
        shown.add(kind)
    for level in exp.rungs:
        ax.axvline(level, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"{exp.resource_attr} (dashed: rungs)" if exp.rungs else exp.resource_attr)
    ax.set_ylabel(exp.metric)
    ax.set_title(f"{exp.metric} of each trial by {exp.resource_attr}")
    if shown:
        ax.legend(fontsize=7)
    return ax


def plot_best_so_far(experiments: Experiment | Sequence[Experiment], ax=None,
                     labels: Sequence[str] | None = None):
    """Best value so far against wall-clock time; several experiments share the axis."""
    ax = _axes(ax)
    if isinstance(experiments, Experiment):
        experiments = [experiments]
    labels = labels or [f"{e.scheduling}, {e.n_workers} workers" for e in experiments]
    for exp, label in zip(experiments, labels):
        curve = best_so_far(exp)
        if len(curve):
            # extend the last step to the end of the run
            times = np.append(curve["time"], max(exp.wallclock, curve["time"].iloc[-1]))
            values = np.append(curve["best"], curve["best"].iloc[-1])
            ax.step(times, values, where="post", label=label)
    ax.set_xlabel("wall-clock time (s)")
    ax.set_ylabel(f"best {experiments[0].metric} so far")
    ax.legend()
    return ax


def best_so_far_bands(runs: dict[str, Sequence[Experiment]], times=None,
                      quantiles: tuple[float, float] = (0.25, 0.75)) -> pd.DataFrame:
    """For several searchers, each run over several seeds: the best value so far at
    each of ``times`` (default: 200 points up to the longest run), as the median and the
    ``quantiles`` over the seeds. Before a run's first result its best is NaN; a band is
    drawn only where every seed of that searcher has a result. Columns: ``label``,
    ``time``, ``median``, ``low``, ``high``, ``runs``."""
    if not runs or any(len(exps) == 0 for exps in runs.values()):
        raise ValueError("runs maps each label to a non-empty list of experiments, got "
                         f"{ {k: len(v) for k, v in runs.items()} if runs else runs!r}")
    low_q, high_q = quantiles
    if not 0 <= low_q <= 0.5 <= high_q <= 1:
        raise ValueError(f"quantiles are (low, high) with 0 <= low <= 0.5 <= high <= 1, "
                         f"got {quantiles!r}")
    if times is None:
        end = max(e.wallclock for exps in runs.values() for e in exps)
        times = np.linspace(0, end, 200)
    times = np.asarray(times, dtype=float)
    frames = []
    for label, exps in runs.items():
        grid = np.full((len(exps), len(times)), np.nan)
        for row, exp in enumerate(exps):
            curve = best_so_far(exp)
            if len(curve):
                at = np.searchsorted(curve["time"].to_numpy(), times, side="right") - 1
                grid[row] = np.where(at >= 0, curve["best"].to_numpy()[np.maximum(at, 0)],
                                     np.nan)
        complete = ~np.isnan(grid).any(axis=0)
        with warnings.catch_warnings():  # all-NaN columns (before any result) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            frames.append(pd.DataFrame({
                "label": label, "time": times,
                "median": np.where(complete, np.nanmedian(grid, axis=0), np.nan),
                "low": np.where(complete, np.nanquantile(grid, low_q, axis=0), np.nan),
                "high": np.where(complete, np.nanquantile(grid, high_q, axis=0), np.nan),
                "runs": len(exps)}))
    return pd.concat(frames, ignore_index=True)


def plot_searchers(runs: dict[str, Sequence[Experiment]], ax=None, times=None,
                   quantiles: tuple[float, float] = (0.25, 0.75), log_time: bool = False,
                   xlabel: str = "wall-clock time (s)"):
    """Best value so far against time for several searchers: per searcher the median
    over its runs (seeds) and a band between the ``quantiles`` (the middle half by
    default); ``best_so_far_bands`` is the table it draws. ``log_time``: a logarithmic
    time axis (linear near zero); ``xlabel``: say "simulated time (s)" for replays."""
    bands = best_so_far_bands(runs, times, quantiles)
    ax = _axes(ax)
    first = next(iter(runs.values()))[0]
    for i, (label, rows) in enumerate(bands.groupby("label", sort=False)):
        color = f"C{i}"
        ax.plot(rows["time"], rows["median"], color=color,
                label=f"{label} (median of {int(rows['runs'].iloc[0])})")
        ax.fill_between(rows["time"], rows["low"], rows["high"], color=color, alpha=0.2,
                        linewidth=0)
    if log_time:
        ax.set_xscale("symlog", linthresh=max(float(bands["time"].max()) / 1000, 1e-9))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"best {first.metric} so far")
    low, high = quantiles
    ax.set_title(f"median and {low:.0%}-{high:.0%} band over seeds", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_worker_timeline(exp: Experiment, ax=None):
    """One lane per worker (grouped by node when trials ran on several), one bar per
    trial coloured by status; gaps are idle time.

    A trial's id is written on its bar where it fits (the bar wide and its lane tall
    enough for the text), and the lanes are named one in every few where there are too
    many to name each (64 workers), so the plot stays readable at any scale."""
    bars = worker_timeline(exp)
    labels = dict(zip(bars["lane"], bars["label"]))
    lanes = max([exp.n_workers, *(lane + 1 for lane in labels)])
    ax = _axes(ax, height=min(9.0, max(3.5, 1.0 + 0.11 * lanes)))
    end = max(exp.wallclock, 1e-9)
    ax.set_xlim(0, end)
    width_pt, height_pt = _axes_points(ax)
    lane_pt = height_pt / lanes
    many = len(bars) > 200  # white edges would grey out thin bars
    for status, rows in bars.groupby("status"):
        ax.barh(rows["lane"], rows["end"] - rows["start"], left=rows["start"], height=0.8,
                color=STATUS_COLORS.get(status, "tab:purple"), edgecolor="white",
                linewidth=0.3 if many else 1.0, label=status)
    statuses = bars["status"].nunique()
    if lane_pt >= 9:  # room for 7-point text in a lane
        for row in bars.itertuples():
            width = row.end - row.start
            if width / end * width_pt >= 5.0 * len(str(row.trial_id)) + 4:
                ax.text(row.start + width / 2, row.lane, str(row.trial_id), ha="center",
                        va="center", fontsize=7, color="white")
    step = max(1, math.ceil(9.0 / lane_pt))  # a tick label needs about 9 points
    shown = list(range(0, lanes, step))
    ax.set_yticks(shown)
    ax.set_yticklabels([labels.get(lane, f"worker {lane}") for lane in shown],
                       fontsize=None if step == 1 else 7)
    ax.set_ylim(-0.6, lanes - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("wall-clock time (s)")
    util = exp.utilization
    ax.set_title(f"{exp.scheduling}: workers busy {busy_percent(util)} of the time"
                 if not math.isnan(util) else exp.scheduling)
    if statuses > 1:  # one colour needs no key; outside the axes, it covers no bar
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, title="status",
                  title_fontsize=7)
    return ax


def plot_sync_vs_async(sync: Experiment, asynchronous: Experiment, axes=None,
                       best_so_far: bool = True):
    """The two worker timelines (same x scale) and, beside them, both best-so-far curves.

    :param best_so_far: draw the best-so-far panel; default True
    :return: the Axes (sync timeline, async timeline[, best so far])
    """
    if axes is None:
        import matplotlib.pyplot as plt
        lanes = max(sync.n_workers, asynchronous.n_workers)
        height = min(12.0, max(4.5, 1.5 + 0.16 * lanes))
        if best_so_far:
            fig = plt.figure(figsize=(12, height), layout="constrained")
            grid = fig.add_gridspec(2, 2, width_ratios=[1.6, 1])
            axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]),
                    fig.add_subplot(grid[:, 1])]
        else:
            fig, axes = plt.subplots(2, 1, figsize=(8, height), layout="constrained")
    plot_worker_timeline(sync, ax=axes[0])
    plot_worker_timeline(asynchronous, ax=axes[1])
    end = max(sync.wallclock, asynchronous.wallclock)
    for ax in axes[:2]:
        ax.set_xlim(0, end)
    if best_so_far:
        plot_best_so_far([sync, asynchronous], ax=axes[2], labels=["sync", "async"])
    return np.array(axes)


def speedup(experiments: Sequence[Experiment], target: float | None = None) -> pd.DataFrame:
    """One row per experiment: ``workers``, ``seed``, ``seconds`` (the whole run's
    wall-clock, or with ``target`` the time until a trial first reached it) and
    ``speedup``: the median ``seconds`` of the runs with the fewest workers, times that
    number of workers, over this run's (so with one-worker runs it is T1 / T)."""
    from d2l_hpo.experiment.analysis import time_to_reach

    experiments = [experiments] if isinstance(experiments, Experiment) else list(experiments)
    if not experiments:
        raise ValueError("speedup needs at least one Experiment")
    rows = [{"workers": exp.n_workers, "seed": exp.settings.get("seed"),
             "seconds": exp.wallclock if target is None else time_to_reach(exp, target)}
            for exp in experiments]
    table = pd.DataFrame(rows)
    fewest = table["workers"].min()
    base = table.loc[table["workers"] == fewest, "seconds"].median()
    table["speedup"] = fewest * base / table["seconds"]
    return table


def plot_speedup(data: pd.DataFrame | Sequence[Experiment], ax=None, column: str = "speedup",
                 reference: str | None = None, reference_label: str | None = None,
                 target: float | None = None):
    """Measured speed-up against the number of workers, beside the ideal (= workers).

    :param data: experiments with several worker counts (their ``speedup`` table is
        drawn, see ``speedup``), or such a table: one row per run with columns
        ``workers`` and ``column``; several rows per worker count (seeds) are drawn as
        open points over their median
    :param reference: another column of the table (a schedule without overhead, say)
        whose median is drawn as a dotted line; default: none
    :param reference_label: its legend entry; default: the column's name
    :param target: with experiments: speed-up in reaching this metric value, not in
        finishing; default None
    """
    table = data if isinstance(data, pd.DataFrame) else speedup(data, target)
    if column not in table:
        raise KeyError(f"the table has no column {column!r}; it has {list(table.columns)}")
    if reference is not None and reference not in table:
        raise KeyError(f"the table has no column {reference!r} (reference=); it has "
                       f"{list(table.columns)}")
    ax = _axes(ax)
    workers = sorted(table["workers"].unique())
    ax.plot(workers, workers, "k--", label="ideal (speed-up = workers)")
    medians = table.groupby("workers")[column].median()
    ax.plot(medians.index, medians.to_numpy(), "-", color="tab:blue", zorder=2,
            label="median")
    if reference is not None:
        ref = table.groupby("workers")[reference].median()
        ax.plot(ref.index, ref.to_numpy(), ":", color="tab:gray", linewidth=2, zorder=1,
                label=f"{reference_label or reference} (median)")
    several = table.groupby("workers")[column].size().max() > 1
    # open circles above the median line: none hides behind it
    ax.scatter(table["workers"], table[column], facecolors="none", edgecolors="tab:blue",
               s=22, linewidths=1, zorder=3, label="each seed" if several else "measured")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(workers, [str(w) for w in workers])
    ax.set_yticks(workers, [str(w) for w in workers])
    ax.set_xlabel("workers")
    ax.set_ylabel(column.replace("_", " "))
    ax.legend()
    return ax
