"""What the tables show across experiments (fast tier): measures derived from an
Experiment's tables agree with its own definition of a valid result."""
import math

import pandas as pd
import pytest

from d2l_hpo.experiment.analysis import time_to_reach
from d2l_hpo.search.spaces import choice


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
