"""A sweep of searchers x workers x seeds on a replayed table, and its summary."""
import math

import numpy as np
import pandas as pd
import pytest

import d2l_hpo


def test_a_sweep_has_a_row_per_run_and_its_summary_a_row_per_searcher_and_k():
    bench = d2l_hpo.benchmarks.tabular("fcnet-protein")
    target = bench.quantile(0.2)
    runs, kept = d2l_hpo.searcher_sweep(bench, bench.config_space, ["random", "optuna_tpe"],
                                        [1, 4], [0, 1], target, max_num_trials=16,
                                        progress=False, keep=True)
    assert len(runs) == 8 and set(kept) == {(s, k, seed) for s in ("random", "optuna_tpe")
                                            for k in (1, 4) for seed in (0, 1)}
    assert (runs["trials"] == 16).all()
    one = runs[runs["workers"] == 1]
    assert (one["near-duplicate"] == 0).all() and (one["pending"] == 0).all()
    assert (runs.loc[runs["workers"] == 4, "pending"] > 0).all()
    exp = kept["random", 4, 1]
    reached = d2l_hpo.time_to_reach(exp, target)
    row = runs[(runs["searcher"] == "random") & (runs["workers"] == 4) & (runs["seed"] == 1)]
    assert row["to target (s)"].iloc[0] == pytest.approx(reached, nan_ok=True)
    # the same seed replays the same run
    again = d2l_hpo.searcher_sweep(bench, bench.config_space, ["random"], [4], [1], target,
                                   max_num_trials=16, progress=False)
    assert again["finish (s)"].iloc[0] == row["finish (s)"].iloc[0]
    summary = d2l_hpo.sweep_summary(runs)
    assert list(zip(summary["searcher"], summary["workers"])) == [
        ("random", 1), ("random", 4), ("optuna_tpe", 1), ("optuna_tpe", 4)]
    assert {"speed-up", "vs random", "near-duplicate", "reached"} <= set(summary.columns)


def test_the_summary_counts_a_run_that_never_reached_the_target_as_infinite():
    table = pd.DataFrame({
        "searcher": ["random"] * 4 + ["tpe"] * 4, "workers": [1, 1, 4, 4] * 2,
        "seed": [0, 1] * 4, "to target (s)": [100, 300, 40, np.nan, 50, 70, 10, 30],
        "near-duplicate": [0, 0, 0, 0, 0, 0, 0.5, 0.25]})
    s = d2l_hpo.sweep_summary(table).set_index(["searcher", "workers"])
    assert s.loc[("random", 1), "median to target (s)"] == 200
    assert math.isinf(s.loc[("random", 4), "median to target (s)"])
    assert s.loc[("random", 4), "25th pct (s)"] == 40  # the nearest run, no interpolation
    assert math.isinf(s.loc[("random", 4), "75th pct (s)"])
    assert s.loc[("random", 4), "reached"] == "1/2"
    assert s.loc[("tpe", 4), "speed-up"] == pytest.approx(60 / 20)
    assert s.loc[("tpe", 1), "vs random"] == pytest.approx(200 / 60)
    assert s.loc[("tpe", 4), "near-duplicate"] == pytest.approx(0.375)
    with pytest.raises(ValueError, match="workers=1"):
        d2l_hpo.sweep_summary(table[table["workers"] == 4])


def test_bad_sweep_settings_fail_before_any_run():
    bench = d2l_hpo.benchmarks.tabular("fcnet-protein")
    args = (bench, bench.config_space)
    with pytest.raises(ValueError, match="searcher must be"):
        d2l_hpo.searcher_sweep(*args, ["random", "gp"], [1], [0], 0.1, max_num_trials=4)
    with pytest.raises(ValueError, match="workers are whole numbers"):
        d2l_hpo.searcher_sweep(*args, ["random"], [0], [0], 0.1, max_num_trials=4)
    with pytest.raises(ValueError, match="target"):
        d2l_hpo.searcher_sweep(*args, ["random"], [1], [0], float("nan"), max_num_trials=4)
