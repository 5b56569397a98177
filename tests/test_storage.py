"""The experiment folder (fast tier): rows from reports, tables written and read back,
reports recovered from a killed run's trial logs, and the folder's own errors."""
import json
import math

import pytest

from d2l_hpo.settings import RunSettings, RunState, to_json
from d2l_hpo.storage import (
    EXPERIMENT_FILE, prepare_folder, read_tables, release_folder, report_row, write_atomically,
    write_tables,
)


def test_a_report_becomes_a_row_with_its_time_since_the_start():
    report = {"epoch": 2, "loss": 0.5, "st_worker_timestamp": 110.0, "st_worker_time": 7.0,
              "st_worker_iter": 1}
    assert report_row(3, report, t0=100.0) == {"trial_id": 3, "time": 10.0, "epoch": 2,
                                               "loss": 0.5, "worker_time": 7.0}
    bare = report_row(3, {"loss": 0.5}, t0=100.0, default_time=105.0)
    assert bare["time"] == 5.0 and math.isnan(bare["worker_time"])


def test_tables_written_are_the_tables_read(tmp_path):
    settings = RunSettings(name="t", n_workers=2, max_num_trials=2, config_columns=["lr"])
    state = RunState(start_timestamp=100.0, wallclock=9.0, finished=True)
    trials = [{"trial_id": 0, "status": "completed", "start": 0.0, "end": 4.0, "worker": 0,
               "lr": "007", "error": "", "pid": 11, "node": "here"}]
    rows = [{"trial_id": 0, "time": 4.0, "validation_error": 0.25}]
    write_tables(tmp_path, to_json(settings, state), trials, rows, ["lr"])
    data, read_trials, read_rows = read_tables(tmp_path)
    assert data["name"] == "t" and data["wallclock"] == 9.0 and data["finished"] is True
    assert read_trials.to_dict("records")[0]["status"] == "completed"
    assert read_rows["validation_error"].tolist() == [0.25]


def test_a_killed_run_gets_its_reports_back_from_the_trial_logs(tmp_path):
    settings = RunSettings(name="k", n_workers=1, max_num_trials=3, config_columns=["x"])
    write_tables(tmp_path, to_json(settings, RunState(start_timestamp=100.0)), [], [], ["x"])
    trial = tmp_path / "0"
    trial.mkdir()
    (trial / "config.json").write_text(json.dumps({"x": 0.5}))
    (trial / "std.out").write_text(
        '[tune-metric]: {"validation_error": 0.5, "st_worker_timestamp": 103.0}\n'
        '[tune-metric]: {"validation_error": 0.25, "st_worker_timestamp": 106.0}\n')
    _, trials, rows = read_tables(tmp_path)
    assert trials["status"].tolist() == ["interrupted"] and trials["x"].tolist() == [0.5]
    assert rows["time"].tolist() == [3.0, 6.0]


def test_the_folder_is_claimed_once_and_resumed_only_when_it_exists(tmp_path):
    path = prepare_folder(tmp_path, "a", resume=False)
    write_atomically(path / EXPERIMENT_FILE, "{}")
    with pytest.raises(FileExistsError, match="being written by another run"):
        prepare_folder(tmp_path, "a", resume=True)  # claimed until released
    release_folder(path)
    with pytest.raises(FileExistsError, match="pass resume=True"):
        prepare_folder(tmp_path, "a", resume=False)
    with pytest.raises(FileNotFoundError, match="no experiment 'b'"):
        prepare_folder(tmp_path, "b", resume=True)
    assert prepare_folder(tmp_path, "a", resume=True) == path
