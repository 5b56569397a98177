"""ASHA behind the search seam (``d2l_hpo.search.asha``): where its rungs are, how a
resume refills them, and the guard it shares with ``GuardedScheduler``. The runs through
real trial processes are in ``test_early_stopping.py``."""
import math

import pytest
from syne_tune.backend.trial_status import Trial

import d2l_hpo
from d2l_hpo.search.asha import ASHA, SeededASHA, rung_levels
from d2l_hpo.search.base import Problem
from d2l_hpo.search.random import RandomSearch

SPACE = d2l_hpo.synthetic_space(max_epochs=9, epoch_seconds=0.04)


def make_asha(max_t=9, grace_period=1, reduction_factor=3):
    problem = Problem(SPACE, seed=0)
    return SeededASHA(RandomSearch(SPACE, 0), problem, max_t=max_t,
                      grace_period=grace_period, reduction_factor=reduction_factor)


def syne_tune_rungs(asha):
    """The rung levels Syne Tune 0.16's one bracket keeps (its own bookkeeping)."""
    return sorted(level for level, _ in asha.brackets[0].rungs if level < asha.max_t)


def test_rungs_are_rebuilt_from_the_reports_of_kept_trials():
    # what a resume does before it goes on: the earlier run's reports fill the rungs,
    # and the next trial is judged against them
    asha = make_asha()
    assert syne_tune_rungs(asha) == [1, 3] == ASHA().rungs(Problem(SPACE))
    asha.replay([{"trial_id": 0, "epoch": 1, "validation_error": 0.2},
                 {"trial_id": 1, "epoch": 1, "validation_error": 0.3},
                 {"trial_id": 1, "epoch": 2, "validation_error": 0.25}])
    trial = Trial(trial_id=2, config={}, creation_time=None)
    asha.on_trial_add(trial)
    # worse than both at the first rung: stopped there, and listed as pruned
    assert asha.on_trial_result(trial, {"epoch": 1, "validation_error": 0.5}) == "STOP"
    assert asha.pruned_at(2) == 1
    fresh = make_asha()
    fresh.on_trial_add(trial)
    # without the earlier reports, the first trial at a rung always goes on
    assert fresh.on_trial_result(trial, {"epoch": 1, "validation_error": 0.5}) == "CONTINUE"
    with pytest.raises(ValueError, match="without 'epoch'"):
        fresh.on_trial_result(trial, {"validation_error": 0.5})


def test_rung_levels_are_where_syne_tunes_asha_puts_them():
    for max_t, grace, factor in [(9, 1, 3), (10, 1, 3), (27, 1, 3), (9, 2, 2), (3, 1, 3),
                                 (12, 1, 2.5), (100, 5, 4)]:
        asha = make_asha(max_t, grace, factor)
        assert rung_levels(max_t, grace, factor) == syne_tune_rungs(asha), (max_t, grace, factor)


def test_a_nan_stops_a_trial_as_diverged_not_pruned_and_the_progress_line_counts():
    from d2l_hpo.run.progress import ProgressState

    asha = make_asha()
    trial = Trial(trial_id=0, config={}, creation_time=None)
    asha.on_trial_add(trial)
    assert asha.on_trial_result(trial, {"epoch": 1, "validation_error": math.nan}) == "STOP"
    assert asha.pruned_at(0) is None  # the recorder then marks it diverged
    # a report without the metric passes; the last epoch is never a stop
    assert asha.on_trial_result(trial, {"epoch": 2}) == "CONTINUE"
    assert asha.on_trial_result(trial, {"epoch": 9, "validation_error": 0.9}) == "CONTINUE"
    line = ProgressState(completed=1, failed=0, stopped=0, running=2, best=0.25, pruned=3,
                         epochs=17).describe("validation_error")
    assert line == "3 pruned, 0 failed, 2 running; best validation_error 0.25; 17 epochs"
    plain = ProgressState(1, 0, 0, 2, 0.25).describe("validation_error")
    assert "pruned" not in plain and "epochs" not in plain
