"""What the tables show across experiments (fast tier): measures derived from an
Experiment's tables agree with its own definition of a valid result."""
import math

import pandas as pd
import pytest

from d2l_hpo.experiment.analysis import pending_overlap, time_to_reach
from d2l_hpo.search.spaces import choice, loguniform


def test_time_to_reach_ignores_what_a_diverged_trial_reported(handmade):
    trials = pd.DataFrame({
        "trial_id": [0, 1], "status": ["diverged", "completed"], "start": [0.0, 0.0],
        "end": [3.0, 8.0], "config_learning_rate": [0.9, 0.1], "config_batch_size": [64, 64]})
    rows = pd.DataFrame({"trial_id": [0, 0, 1, 1], "time": [1.0, 2.0, 4.0, 8.0],
                         "validation_error": [0.01, math.nan, 0.3, 0.04]})
    exp = handmade(trials=trials, rows=rows)
    assert exp.best_value == pytest.approx(0.04)  # the diverged 0.01 does not count...
    assert time_to_reach(exp, 0.05) == 8.0  # ...and so it reached nothing at 1 s
    assert math.isnan(time_to_reach(exp, 0.02))
    assert time_to_reach(exp, exp.best_value) == 8.0


def test_the_gap_after_a_last_report_counts_from_the_report_not_the_stamped_end(handmade):
    # lane 0: trial 0 reports last at 3 s, its end is stamped at 5 s (when the tuner
    # looked), trial 2 starts at 5 s; lane 1: trial 1 reports nothing, ends at 6 s
    trials = pd.DataFrame({
        "trial_id": [0, 1, 2, 3], "status": ["completed"] * 4, "start": [0.0, 0.0, 5.0, 6.5],
        "end": [5.0, 6.0, 9.0, 9.0], "worker": [0, 1, 0, 1],
        "config_learning_rate": [0.1] * 4, "config_batch_size": [64] * 4})
    rows = pd.DataFrame({"trial_id": [0, 0, 2, 3], "time": [1.0, 3.0, 8.0, 8.5],
                         "validation_error": [0.5, 0.4, 0.3, 0.2]})
    exp = handmade(trials=trials, rows=rows)
    from d2l_hpo import gaps_after_last_report, launch_gaps

    assert sorted(launch_gaps(exp)) == [0.0, 0.5]
    assert sorted(gaps_after_last_report(exp)) == [0.5, 2.0]


# --- moved from test_adversarial.py (misuse of this module) ---
def test_compare_and_choice_name_the_mistake():
    from d2l_hpo.experiment.analysis import compare

    with pytest.raises(ValueError, match="at least one experiment"):
        compare([])
    with pytest.raises(ValueError, match=r"one type, got \['float', 'int'\]"):
        choice([1, 2.5])


def test_pending_overlap_finds_the_running_trial_a_new_one_nearly_repeats(handmade):
    trials = pd.DataFrame({
        "trial_id": [0, 1, 2, 3, 4],
        "status": ["completed"] * 5,
        "start": [0.0, 0.0, 1.0, 5.0, 9.0],
        "end": [4.0, 6.0, 8.0, 9.0, 12.0],
        "config_learning_rate": [0.01, 0.5, 0.0102, 0.49, 0.2],
        "config_batch_size": [64, 128, 64, 128, 64],
    })
    exp = handmade(trials=trials, rows=pd.DataFrame(
        {"trial_id": [0, 1, 2, 3, 4], "time": [4.0, 6.0, 8.0, 9.0, 12.0],
         "epoch": [1] * 5, "validation_error": [0.5, 0.4, 0.3, 0.2, 0.1]}))
    space = {"learning_rate": loguniform(1e-3, 1.0), "batch_size": choice([64, 128])}
    table = pending_overlap(exp, space).set_index("trial_id")
    # trial 2 started while 0 and 1 ran: 0 has the same batch size and a learning rate
    # 2% away, a tiny step on the log scale
    assert table.loc[2, "pending"] == 2 and table.loc[2, "nearest"] == 0
    assert table.loc[2, "near_duplicate"]
    # on the domain's log scale (linear, it would be 0.0002 / 0.999)
    assert table.loc[2, "distance"] == pytest.approx(math.log(1.02) / math.log(1000))
    # trial 3 started while 1 and 2 ran; 1 is as close on a log scale
    assert table.loc[3, "pending"] == 2 and table.loc[3, "nearest"] == 1
    assert table.loc[3, "near_duplicate"]
    # trial 4: 3 had just ended (end == start): nothing pending
    assert table.loc[4, "pending"] == 0 and not table.loc[4, "near_duplicate"]
    assert table.loc[[0, 1], "pending"].tolist() == [0, 1]  # 1 started beside 0
    # with no tolerance only the same configuration is a duplicate
    exact = pending_overlap(exp, space, tolerance=0.0).set_index("trial_id")
    assert not exact.loc[2, "near_duplicate"]
    # a choice that differs is a distance of 1, however close the rest
    trials.loc[2, "config_batch_size"] = 128
    other = pending_overlap(handmade(trials=trials, rows=exp.results[
        ["trial_id", "time", "epoch", "validation_error"]]), space).set_index("trial_id")
    assert other.loc[2, "nearest"] == 1 and not other.loc[2, "near_duplicate"]
    # without the space: the range seen, on a linear scale
    seen = pending_overlap(exp).set_index("trial_id")
    assert seen.loc[2, "nearest"] == 0 and seen.loc[2, "distance"] < 0.01
    with pytest.raises(ValueError, match="tolerance"):
        pending_overlap(exp, space, tolerance=2)
