"""Lanes, utilisation and best values, on hand-made timings."""
import math

import pandas as pd
import pytest

from d2l_hpo.experiment.measures import assign_lanes, busy_fraction
from d2l_hpo.experiment.results import load_experiment



def test_lanes_are_reconstructed_from_start_and_end_times():
    # lane 0: 0-4, 4-5, 6-10 (the lowest free lane wins); lane 1: 0-6
    starts, ends = [0, 0, 4, 6], [4, 6, 5, 10]
    assert assign_lanes(starts, ends, 2) == [0, 1, 0, 0]
    # a trial that starts before any lane is free goes to the lane that frees first
    assert assign_lanes([0, 0, 1], [5, 3, 4], 2) == [0, 1, 1]
    # never more lanes than workers, whatever the times say
    lanes = assign_lanes(list(range(10)), [100] * 10, 3)
    assert set(lanes) <= {0, 1, 2}
    assert assign_lanes([], [], 1) == []
    with pytest.raises(ValueError, match="n_workers"):
        assign_lanes([0], [1], 0)


def test_utilisation_is_busy_time_over_workers_times_wallclock():
    assert busy_fraction([0, 0, 4, 6], [4, 6, 5, 10], 2, 10) == pytest.approx(15 / 20)
    # time outside [0, wallclock] does not count
    assert busy_fraction([-2, 8], [2, 14], 1, 10) == pytest.approx(4 / 10)
    assert math.isnan(busy_fraction([0], [1], 1, 0))


def test_experiment_tables_and_best_values_skip_nan(tmp_path, handmade):
    exp = handmade()
    assert exp.utilization == pytest.approx(15 / 20)
    assert exp.idle_worker_seconds == pytest.approx(5.0)
    assert list(exp.trials["worker"]) == [0, 1, 0, 0]
    assert list(exp.trials["duration"]) == [4.0, 6.0, 1.0, 4.0]
    assert exp.best_value == pytest.approx(0.3)
    assert exp.best_config == {"learning_rate": 0.2, "batch_size": 32}
    trial2 = exp.trials.set_index("trial_id").loc[2]
    assert math.isnan(trial2["final_validation_error"]) and math.isnan(trial2["best_validation_error"])
    assert exp.trials.set_index("trial_id").loc[1, "best_validation_error"] == 0.4
    summary = exp.summary()
    assert summary["failed"] == 1 and summary["completed"] == 3


def test_mode_max_picks_the_largest(tmp_path, handmade):
    exp = handmade(mode="max")
    assert exp.best_value == pytest.approx(0.8)
    assert exp.best_config == {"learning_rate": 0.1, "batch_size": 64}


def test_no_finite_value_means_no_best(tmp_path, handmade):
    rows = pd.DataFrame({"trial_id": [0], "time": [1.0], "validation_error": [float("inf")]})
    exp = handmade(rows=rows)
    assert math.isnan(exp.best_value) and exp.best_config is None


def test_unknown_experiment_names_both_places_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no experiment 'nope'"):
        load_experiment("nope", results_dir=tmp_path)


def test_ideal_makespan_of_hand_made_durations():
    from d2l_hpo.experiment.measures import ideal_makespan

    # async, 2 workers: lane A runs 4; lane B runs 1, 1, 2 back to back -> 4
    assert ideal_makespan([4, 1, 1, 2], 2) == 4.0
    # sync: batches (4, 1) and (1, 2) each last as long as their longest trial
    assert ideal_makespan([4, 1, 1, 2], 2, "sync") == 4 + 2
    assert ideal_makespan([1, 1, 1], 1) == 3.0
    assert ideal_makespan([5, 1, 1, 1, 1], 4) == 5.0  # the tail: one long trial


def test_ideal_starts_of_hand_made_durations():
    from d2l_hpo.experiment.measures import ideal_starts

    # async, 2 workers: 4 on lane A at 0; 1, 1, 2 on lane B at 0, 1, 2
    assert ideal_starts([4, 1, 1, 2], 2) == [0.0, 0.0, 1.0, 2.0]
    assert ideal_starts([4, 1, 1, 2], 2, "sync") == [0.0, 0.0, 4.0, 4.0]
    assert ideal_starts([], 3) == []
    with pytest.raises(ValueError, match="n_workers"):
        ideal_starts([1], 0)


# --- issue 25: configuration columns never mixed up with the table's own -----------------
def named_like_columns(final_loss: float, status: int, duration: float, start: str,
                       best_loss: float, report=None):
    report(epoch=1, loss=final_loss + best_loss)


def test_configuration_keys_named_like_table_columns_keep_their_values(in_process, results_dir):
    import d2l_hpo
    from d2l_hpo.search.spaces import choice, randint, uniform

    space = {"final_loss": uniform(0, 1), "status": randint(1, 9), "duration": uniform(5, 6),
             "start": choice(["a", "b"]), "best_loss": uniform(0, 1)}
    exp = d2l_hpo.run_random_search(named_like_columns, space, n_workers=1, max_num_trials=4,
                                    metric="loss", seed=2, backend=in_process,
                                    results_dir=results_dir, progress=False)
    configs = d2l_hpo.sample_configs(space, 4, seed=2)
    assert exp.configs.to_dict("records") == configs  # under their own names
    assert exp.trials["config_status"].tolist() == [c["status"] for c in configs]
    assert set(exp.trials["status"]) == {"completed"}  # the table's own column intact
    loss = [c["final_loss"] + c["best_loss"] for c in configs]
    assert exp.trials["final_loss"].tolist() == pytest.approx(loss)
    best = min(range(4), key=loss.__getitem__)
    assert exp.best_config == configs[best]
    assert (exp.trials["duration"] < 5).all()  # how long each ran, not the config's 5-6
    assert load_experiment(exp.path).configs.equals(exp.configs)


def test_a_folder_written_with_bare_config_columns_still_loads(in_process, results_dir):
    import json

    import d2l_hpo
    from d2l_hpo.search.spaces import uniform
    from d2l_hpo.experiment.storage import EXPERIMENT_FILE, TRIALS_FILE

    exp = d2l_hpo.run_random_search(named_like_columns, {
        "final_loss": uniform(0, 1), "status": 1, "duration": 1.0, "start": "a",
        "best_loss": 0.5}, n_workers=1, max_num_trials=2, metric="loss", seed=0,
        backend=in_process, results_dir=results_dir, progress=False)
    # as the version before configuration columns were prefixed wrote it
    trials = pd.read_csv(exp.path / TRIALS_FILE).rename(columns={"config_final_loss": "final_loss"})
    trials.to_csv(exp.path / TRIALS_FILE, index=False)
    settings = json.loads((exp.path / EXPERIMENT_FILE).read_text())
    del settings["table_format"]
    (exp.path / EXPERIMENT_FILE).write_text(json.dumps(settings))
    old = load_experiment(exp.path)
    assert old.configs.equals(exp.configs) and old.best_config == exp.best_config


def test_loading_a_run_gives_no_warning(in_process, results_dir):
    import warnings

    import d2l_hpo
    from d2l_hpo.search.spaces import uniform

    exp = d2l_hpo.run_random_search(named_like_columns, {
        "final_loss": uniform(0, 1), "status": 1, "duration": 1.0, "start": "a",
        "best_loss": 0.5}, n_workers=1, max_num_trials=2, metric="loss", seed=0,
        backend=in_process, results_dir=results_dir, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_experiment(exp.path)
