"""Each plot returns its Axes with the artists it promises."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

import d2l_hpo
from d2l_hpo import plots



@pytest.fixture
def exp(handmade):
    return handmade()


def test_data_steps_give_plain_tables(exp):
    curves = plots.trials_over_time(exp)
    assert sorted(curves) == [0, 1, 2, 3] and list(curves[3]["validation_error"]) == [0.6, 0.3]
    best = plots.best_so_far(exp)
    assert list(best["best"]) == [0.8, 0.7, 0.5, 0.4, 0.4, 0.3]  # NaN skipped
    bars = plots.worker_timeline(exp)
    assert list(bars["worker"]) == [0, 1, 0, 0] and list(bars["status"])[2] == "failed"


def test_trials_over_time_draws_one_coloured_line_per_trial(exp):
    ax = plots.plot_trials_over_time(exp)
    trial_lines = [line for line in ax.lines if line.get_label().startswith("trial ")]
    assert isinstance(ax, Axes) and len(trial_lines) == 4
    assert len({tuple(line.get_color()) for line in trial_lines}) == 4
    # trial 2 reported NaN: a cross on the top edge instead of a point
    crosses = [line for line in ax.lines if line.get_label() == "diverged (NaN/inf)"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [4.5]
    plt.close("all")


def test_best_so_far_draws_one_curve_per_experiment_with_a_legend(exp, tmp_path, handmade):
    other = handmade(scheduling="sync")
    fig, ax = plt.subplots()
    assert plots.plot_best_so_far([exp, other], ax=ax) is ax
    assert len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "async, 2 workers", "sync, 2 workers"]
    assert ax.lines[0].get_ydata()[-1] == pytest.approx(0.3)
    plt.close("all")


def test_worker_timeline_draws_a_bar_per_trial_in_its_lane(exp):
    ax = plots.plot_worker_timeline(exp)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 4
    assert sorted((round(b.get_x(), 3), round(b.get_width(), 3)) for b in bars) == [
        (0.0, 4.0), (0.0, 6.0), (4.0, 1.0), (6.0, 4.0)]
    colours = {tuple(np.round(b.get_facecolor(), 3)) for b in bars}
    assert len(colours) == 2  # completed and failed differ
    assert "75%" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker 0", "worker 1"]
    plt.close("all")


def test_sync_vs_async_puts_both_timelines_and_the_curves_side_by_side(exp, tmp_path, handmade):
    sync = handmade(scheduling="sync", wallclock=12.0)
    axes = plots.plot_sync_vs_async(sync, exp)
    assert len(axes) == 3 and all(isinstance(a, Axes) for a in axes)
    assert axes[0].get_title().startswith("sync") and axes[1].get_title().startswith("async")
    assert axes[0].get_xlim() == axes[1].get_xlim() == (0, 12.0)
    assert len(axes[2].lines) == 2
    plt.close("all")


def test_worker_timeline_groups_lanes_by_node_when_trials_ran_on_several(tmp_path, handmade):
    trials = pd.DataFrame({
        "trial_id": [0, 1, 2, 3, 4],
        "status": ["completed"] * 5,
        "start": [0.0, 0.0, 0.0, 3.0, 5.0],
        "end": [4.0, 6.0, 3.0, 8.0, 9.0],
        "worker": [0, 1, 2, 2, 0],
        "config_learning_rate": [0.1] * 5, "config_batch_size": [64] * 5,
        "node": ["aaaa1111", "bbbb2222", "aaaa1111", "bbbb2222", "aaaa1111"],
    })
    exp = handmade(trials=trials, n_workers=3)
    bars = plots.worker_timeline(exp).set_index("trial_id")
    # node aaaa1111 ran trials 0 and 2 side by side, then 4: two slots, lanes 0-1;
    # node bbbb2222 ran 1 and 3 side by side: two slots, lanes 2-3
    assert bars.loc[[0, 2, 4], "label"].str.startswith("node aaaa1111").all()
    assert bars.loc[[1, 3], "label"].str.startswith("node bbbb2222").all()
    assert sorted(bars.loc[[0, 2], "lane"]) == [0, 1] and bars.loc[4, "lane"] in (0, 1)
    assert sorted(bars.loc[[1, 3], "lane"]) == [2, 3]
    ax = plots.plot_worker_timeline(exp)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["node aaaa1111 · slot 0", "node aaaa1111 · slot 1",
                      "node bbbb2222 · slot 0", "node bbbb2222 · slot 1"]
    plt.close("all")


def test_worker_timeline_keeps_worker_lanes_for_one_machine(exp):
    bars = plots.worker_timeline(exp)
    assert (bars["lane"] == bars["worker"]).all()
    assert bars["label"].str.startswith("worker ").all()


def test_neighbouring_trials_differ_in_colour_and_carry_their_ids(tmp_path, handmade):
    rows = pd.DataFrame({"trial_id": list(range(12)), "time": [float(i) for i in range(12)],
                         "validation_error": [0.5] * 12})
    trials = pd.DataFrame({"trial_id": list(range(12)), "status": ["completed"] * 12,
                           "start": [0.0] * 12, "end": [12.0] * 12,
                           "config_learning_rate": [0.1] * 12, "config_batch_size": [64] * 12})
    exp = handmade(rows=rows, trials=trials, n_workers=12, wallclock=12.0)
    ax = plots.plot_trials_over_time(exp)
    colours = [tuple(line.get_color()) for line in ax.lines if line.get_label().startswith("trial ")]
    assert all(a != b for a, b in zip(colours, colours[1:]))
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(i) for i in range(12))
    plt.close("all")


def test_trials_ten_apart_differ_in_line_style_and_labels_at_one_point_do_not_overprint(
        handmade):
    # 12 trials whose last reports fall on one point: trial 10 shares trial 0's colour,
    # not its line style, and the twelve labels are stacked, each at its own height
    rows = pd.DataFrame({"trial_id": list(range(12)), "time": [5.0] * 12,
                         "validation_error": [0.5] * 12})
    trials = pd.DataFrame({"trial_id": list(range(12)), "status": ["completed"] * 12,
                           "start": [0.0] * 12, "end": [5.0] * 12,
                           "config_learning_rate": [0.1] * 12, "config_batch_size": [64] * 12})
    ax = plots.plot_trials_over_time(handmade(rows=rows, trials=trials, n_workers=12,
                                              wallclock=5.0))
    lines = {line.get_label(): line for line in ax.lines}
    looks = [(tuple(lines[f"trial {i}"].get_color()), lines[f"trial {i}"].get_linestyle())
             for i in range(12)]
    assert len(set(looks)) == 12 and looks[10][0] == looks[0][0]
    heights = sorted(t.get_position()[1] for t in ax.texts)
    assert len(heights) == 12 and min(np.diff(heights)) >= 7.9  # points apart
    plt.close("all")


def test_labels_far_apart_stay_where_they_are():
    fig, ax = plt.subplots()
    ax.plot([0, 10], [0, 1])
    assert plots.spread_labels(ax, [(0, 0), (10, 1)]) == [0.0, 0.0]
    assert plots.spread_labels(ax, []) == []
    plt.close("all")


def test_speedup_draws_seeds_over_their_median_and_a_reference():
    table = pd.DataFrame({"workers": [1, 1, 2, 2, 4, 4], "speed-up": [1, 1, 1.9, 2.1, 3.5, 3.9],
                          "ideal": [1, 1, 1.95, 1.95, 3.8, 3.8]})
    ax = plots.plot_speedup(table, column="speed-up", reference="ideal",
                            reference_label="zero-overhead schedule")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["ideal (speed-up = workers)", "median",
                     "zero-overhead schedule (median)", "each seed"]
    points = ax.collections[0]
    median = next(line for line in ax.lines if line.get_label() == "median")
    assert points.get_zorder() > median.get_zorder() and len(points.get_offsets()) == 6
    reference = next(line for line in ax.lines if line.get_label().startswith("zero"))
    assert list(reference.get_ydata()) == [1, 1.95, 3.8]
    plt.close("all")


def test_timeline_legend_only_when_statuses_differ_and_outside_the_bars(exp, tmp_path, handmade):
    ax = plots.plot_worker_timeline(exp)  # completed and failed
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == [
        "completed", "failed"]
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # right of the axes
    plt.close("all")
    trials = exp.trials.assign(status="completed")
    ax = plots.plot_worker_timeline(handmade(trials=trials))
    assert ax.get_legend() is None
    plt.close("all")


@pytest.mark.parametrize("fraction, text", [(0.9951, "99.5%"), (0.996, "99.6%"), (0.9996, "99.9%"), (0.9949, "99%"), (1.0, "100%"),
                                            (0.754, "75%"), (0.003, "0.3%"), (0.0004, "0.1%"), (0.0, "0%")])
def test_busy_percentages_never_round_to_full_or_empty(fraction, text):
    assert plots.busy_percent(fraction) == text


def test_sync_vs_async_without_the_best_so_far_panel(exp, tmp_path, handmade):
    sync = handmade(scheduling="sync", wallclock=12.0)
    axes = plots.plot_sync_vs_async(sync, exp, best_so_far=False)
    assert len(axes) == 2 and axes[0].get_xlim() == axes[1].get_xlim() == (0, 12.0)
    plt.close("all")


def test_speedup_takes_experiments_like_every_other_plot(tmp_path):
    from d2l_hpo.experiment.results import build_experiment

    def run(workers, seed, wallclock, reached_at):
        trials = pd.DataFrame({"trial_id": [0], "status": ["completed"], "start": [0.0],
                               "end": [wallclock], "worker": [0]})
        rows = pd.DataFrame({"trial_id": [0, 0], "time": [reached_at, wallclock],
                             "validation_error": [0.2, 0.1]})
        settings = {"name": f"k{workers}-{seed}", "n_workers": workers, "seed": seed,
                    "scheduling": "async", "metric": "validation_error", "mode": "min",
                    "wallclock": wallclock, "config_columns": []}
        return build_experiment(tmp_path, settings, trials, rows)

    runs = [run(1, 0, 8.0, 4.0), run(1, 1, 10.0, 6.0), run(2, 0, 4.5, 2.5), run(4, 0, 3.0, 1.0)]
    table = d2l_hpo.speedup(runs)
    assert table["workers"].tolist() == [1, 1, 2, 4]
    assert table["speedup"].round(3).tolist() == [1.125, 0.9, 2.0, 3.0]  # 9 s / each
    assert d2l_hpo.speedup(runs, target=0.2)["speedup"].tolist() == [1.25, 0.8333333333333334,
                                                                   2.0, 5.0]
    ax = d2l_hpo.plot_speedup(runs)
    assert len(ax.collections[0].get_offsets()) == 4
    with pytest.raises(KeyError, match="no column 'speed-up'.*'speedup'"):
        d2l_hpo.plot_speedup(runs, column="speed-up")
    with pytest.raises(ValueError, match="at least one"):
        d2l_hpo.speedup([])
    plt.close("all")


# --- at the scale of a replayed benchmark (64 workers, 1,000 trials) ------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A replay of 1,000 trials on 64 workers, stopped by a simulated-time budget so that
    two statuses show (completed, stopped): a second or two."""
    bench = d2l_hpo.benchmarks.tabular("fcnet-protein")
    return d2l_hpo.run_random_search(bench, bench.config_space, n_workers=64,
                                     max_num_trials=1000, max_wallclock_time=4000.0, seed=0,
                                     results_dir=tmp_path_factory.mktemp("big"),
                                     progress=False)


def _outside_the_picture(fig, *artists) -> list:
    """Those of ``artists`` that stick out of the figure as drawn (and saved)."""
    fig.canvas.draw()
    whole = fig.bbox
    out = []
    for artist in artists:
        box = artist.get_window_extent()
        if not (box.x0 >= whole.x0 - 0.5 and box.x1 <= whole.x1 + 0.5
                and box.y0 >= whole.y0 - 0.5 and box.y1 <= whole.y1 + 0.5):
            out.append(artist)
    return out


def test_a_timeline_of_64_workers_names_a_lane_every_few_and_no_trial_it_cannot_fit(big):
    assert len(big.trials) > 900 and set(big.trials["status"]) == {"completed", "stopped"}
    ax = d2l_hpo.plot_worker_timeline(big)
    fig = ax.figure
    fig.canvas.draw()
    assert len(ax.patches) == len(big.trials)  # every trial still has its bar
    assert len(ax.texts) == 0  # lanes a few points tall: no id fits in one
    ticks = [t.get_window_extent() for t in ax.get_yticklabels() if t.get_text()]
    assert 4 <= len(ticks) < 64
    # tick labels do not overprint each other
    ys = sorted(b.y0 for b in ticks)
    assert min(b - a for a, b in zip(ys, ys[1:])) >= max(b.height for b in ticks) * 0.95


def test_a_saved_timeline_keeps_its_legend_and_labels_inside_the_picture(big, tmp_path):
    ax = d2l_hpo.plot_worker_timeline(big)
    fig = ax.figure
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == 2
    fig.savefig(tmp_path / "timeline.png")
    assert not _outside_the_picture(fig, legend, ax.xaxis.label, ax.title,
                                    *ax.get_yticklabels())


def test_trials_over_time_with_1000_trials_shows_points_and_the_best_so_far_not_1000_entries(
        big, tmp_path):
    ax = d2l_hpo.plot_trials_over_time(big)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        f"a report ({len(big.results['trial_id'].unique())} trials)", "best so far"]
    offsets = ax.collections[-1].get_offsets()  # the points: one per report
    assert len(offsets) == big.results["validation_error"].notna().sum()
    best = ax.get_lines()[-1].get_ydata()
    assert best[-1] == pytest.approx(big.best_value)
    ax.figure.savefig(tmp_path / "trials.png")
    assert not _outside_the_picture(ax.figure, legend)


def shifted(handmade, by: float = 0.0, later: float = 0.0):
    """The hand-made run with every error raised by ``by`` and every report ``later``."""
    rows = handmade().results[["trial_id", "time", "epoch", "validation_error"]].copy()
    rows["validation_error"] += by
    rows["time"] += later
    return handmade(rows=rows)


def test_searcher_bands_are_the_median_and_quantiles_over_seeds_where_all_have_begun(handmade):
    runs = {"random": [shifted(handmade, by) for by in (0.0, 0.1, 0.2)],
            "late": [handmade(), shifted(handmade, later=3.0)]}
    bands = plots.best_so_far_bands(runs, times=[1.0, 2.5, 6.0, 12.0])
    random = bands[bands["label"] == "random"].set_index("time")
    assert np.isnan(random.loc[1.0, "median"])  # no run had a result yet
    assert list(random["median"].round(6))[1:] == [0.9, 0.5, 0.4]
    assert random.loc[2.5, "low"] == pytest.approx(0.85)
    assert random.loc[2.5, "high"] == pytest.approx(0.95)
    assert (random["runs"] == 3).all()
    late = bands[bands["label"] == "late"].set_index("time")
    assert np.isnan(late.loc[2.5, "median"])  # one of its runs had not begun
    assert late.loc[6.0, "median"] == pytest.approx(0.55)  # 0.4, and 0.7 three s late
    with pytest.raises(ValueError, match="non-empty list"):
        plots.best_so_far_bands({"tpe": []})
    with pytest.raises(ValueError, match="quantiles"):
        plots.best_so_far_bands(runs, quantiles=(0.6, 0.9))


def test_plot_searchers_draws_a_median_and_a_band_per_searcher(handmade):
    runs = {"random": [shifted(handmade, by) for by in (0.0, 0.1, 0.2)],
            "tpe": [handmade()]}
    fig, ax = plt.subplots()
    assert d2l_hpo.plot_searchers(runs, ax=ax, xlabel="simulated time (s)") is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "random (median of 3)", "tpe (median of 1)"]
    assert len(ax.collections) == 2 and ax.get_xlabel() == "simulated time (s)"
    assert np.nanmin(ax.lines[1].get_ydata()) == pytest.approx(0.3)
    plt.close("all")
