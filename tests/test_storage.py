"""The experiment folder (fast tier): rows from reports, tables written and read back,
reports recovered from a killed run's trial logs, and the folder's own errors."""
import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from d2l_hpo import load_experiment, run_random_search
from d2l_hpo.experiment.storage import (EXPERIMENT_FILE, prepare_folder, read_tables,
                                        release_folder, report_row, write_atomically, write_tables)
from d2l_hpo.run.settings import RunSettings, RunState, to_json
from helpers import SPACE, first_version, quick


def test_a_report_becomes_a_row_with_its_time_since_the_start():
    report = {"epoch": 2, "loss": 0.5, "st_worker_timestamp": 110.0, "st_worker_time": 7.0,
              "st_worker_iter": 1}
    assert report_row(3, report, t0=100.0) == {"trial_id": 3, "time": 10.0, "epoch": 2,
                                               "loss": 0.5, "worker_time": 7.0}
    bare = report_row(3, {"loss": 0.5}, t0=100.0, default_time=105.0)
    assert bare["time"] == 5.0 and math.isnan(bare["worker_time"])


def test_tables_written_are_the_tables_read(tmp_path):
    settings = RunSettings(name="t", n_workers=2, max_num_trials=2, config_columns=["lr"],
                           string_columns=["lr"])
    state = RunState(start_timestamp=100.0, wallclock=9.0, finished=True)
    trials = [{"trial_id": 0, "status": "completed", "start": 0.0, "end": 4.0, "worker": 0,
               "config_lr": "007", "error": "", "pid": 11, "node": "here"}]
    rows = [{"trial_id": 0, "time": 4.0, "validation_error": 0.25}]
    write_tables(tmp_path, to_json(settings, state), trials, rows, ["lr"])
    data, read_trials, read_rows = read_tables(tmp_path)
    assert data["name"] == "t" and data["wallclock"] == 9.0 and data["finished"] is True
    assert read_trials.to_dict("records")[0]["status"] == "completed"
    assert read_trials["config_lr"].tolist() == ["007"]  # a string column stays a string
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
    assert trials["status"].tolist() == ["interrupted"] and trials["config_x"].tolist() == [0.5]
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


# --- issue 25: folders edited by hand or written by another version ----------------------
@pytest.fixture
def run_folder(in_process, tmp_path):
    """A finished run of the in-process backend, and a way to damage a copy of it."""
    import shutil

    import d2l_hpo
    from test_recorder import SPACE, bowl

    exp = d2l_hpo.run_random_search(bowl, SPACE, n_workers=2, max_num_trials=3, metric="loss",
                                    seed=0, name="done", backend=in_process,
                                    results_dir=tmp_path / "runs", progress=False)

    def damaged(change, unfinished=False):
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(exp.path, copy)
        if unfinished:  # as a killed run left it: trial folders are read too
            settings = json.loads((copy / EXPERIMENT_FILE).read_text())
            (copy / EXPERIMENT_FILE).write_text(json.dumps({**settings, "finished": False}))
            (copy / "7").mkdir()
            (copy / "7" / "std.out").write_text("")
            (copy / "7" / "config.json").write_text('{"x": 0.5, "epochs": 1}')
        change(copy)
        return copy
    return damaged


def edit_settings(**fields):
    def change(copy):
        settings = json.loads((copy / EXPERIMENT_FILE).read_text())
        for key, value in fields.items():
            if value is None:
                del settings[key]
            else:
                settings[key] = value
        (copy / EXPERIMENT_FILE).write_text(json.dumps(settings))
    return change


def edit_cell(file, column, value):
    def change(copy):
        import pandas as pd
        table = pd.read_csv(copy / file, dtype=str)
        table.loc[0, column] = value
        table.to_csv(copy / file, index=False)
    return change


def write(name, data: bytes):
    return lambda copy: (copy / name).write_bytes(data)


@pytest.mark.parametrize("change, unfinished, words", [
    (edit_settings(metric=None), False, "experiment.json has no field 'metric'"),
    (edit_settings(mode="MAX"), False, "'mode' is 'MAX'; expected 'min' or 'max'"),
    (edit_settings(n_workers=0), False, "'n_workers' is 0; expected an integer >= 1"),
    (edit_settings(n_workers="2"), False, "'n_workers' is '2'"),
    (edit_settings(scheduling="batch"), False, "'scheduling' is 'batch'"),
    (edit_settings(config_columns="x"), False, "'config_columns' is 'x'"),
    (edit_settings(wallclock="long"), False, "'wallclock' is 'long'; expected a number"),
    (edit_settings(start_timestamp=[1]), False, "'start_timestamp' is [1]"),
    (write("experiment.json", b'{"name": "\xff"}'), False, "experiment.json is not UTF-8"),
    (edit_cell("trials.csv", "start", "soon"), False,
     "trials.csv: column 'start' holds 'soon' in row 2; expected a number"),
    (edit_cell("trials.csv", "trial_id", "1.5"), False, "column 'trial_id' must hold whole"),
    (edit_cell("results.csv", "time", "noon"), False, "results.csv: column 'time' holds 'noon'"),
    (write("results.csv", b"trial_id,time,loss\n0,1.0,\xff\n"), False,
     "results.csv cannot be read as a table"),
    (write("7/config.json", b"{not json"), True, "7/config.json is not valid JSON"),
    (write("7/config.json", b"[0.5]"), True, "7/config.json holds list; expected the trial's"),
    (write("7/end", b"half past"), True, "7/end should hold the time the trial's process ended"),
])
def test_hand_edited_or_foreign_folders_are_errors_naming_file_and_field(
        run_folder, capsys, change, unfinished, words):
    import d2l_hpo
    from d2l_hpo.__main__ import main

    copy = run_folder(change, unfinished)
    with pytest.raises(d2l_hpo.CorruptExperimentError, match=re.escape(words)):
        d2l_hpo.load_experiment(copy)
    capsys.readouterr()
    assert main(["plot", str(copy)]) == 2  # a line, not a traceback
    assert re.escape(words) and words in capsys.readouterr().err


def test_a_finished_run_reads_back_unchanged_by_the_checks(run_folder):
    import d2l_hpo

    copy = run_folder(lambda copy: None)
    assert len(d2l_hpo.load_experiment(copy).trials) == 3
    unfinished = run_folder(lambda copy: None, unfinished=True)
    assert len(d2l_hpo.load_experiment(unfinished).trials) == 4  # trial 7 from its folder


# --- issue 25: the files a run writes follow the umask -----------------------------------
def test_the_tables_are_written_with_the_umask_not_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o002)  # a course's group may read and write
    try:
        settings = RunSettings(name="t", n_workers=1, max_num_trials=1, config_columns=["x"])
        write_tables(tmp_path, to_json(settings, RunState(finished=True)), [], [], ["x"])
        write_atomically(tmp_path / "exit-123", "0")  # as the fork server writes it
        os.umask(0o077)
        write_atomically(tmp_path / "private", "x")
    finally:
        os.umask(old)
    for name in ("experiment.json", "trials.csv", "results.csv", "exit-123"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o664, name
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# --- moved from test_adversarial.py (misuse of this module) ---
SLOW_RUN = textwrap.dedent("""
    import sys
    from d2l_hpo import run_random_search
    from syne_tune.config_space import uniform

    def slow(x):
        import time
        from syne_tune import Reporter
        time.sleep(1.5)
        Reporter()(epoch=1, validation_error=float(x))

    run_random_search(slow, {"x": uniform(0, 1)}, n_workers=1, max_num_trials=3, seed=1,
                      name="shared", results_dir=sys.argv[1], progress=False)
""")


@pytest.mark.slow
def test_a_second_process_cannot_write_into_a_running_experiment(results_dir):
    first = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(results_dir)],
                             stderr=subprocess.PIPE, text=True)
    owner = results_dir / "shared" / ".owner"
    deadline = time.time() + 60
    while not owner.exists():
        assert first.poll() is None and time.time() < deadline, first.stderr.read()
        time.sleep(0.05)
    with pytest.raises(FileExistsError, match=f"being written by another run \\(process "
                                              f"{first.pid}\\)"):
        quick(first_version, results_dir, name="shared")
    assert first.wait(timeout=120) == 0, first.stderr.read()
    exp = load_experiment(results_dir / "shared")
    assert len(exp.trials) == 3 and (exp.results.groupby("trial_id").size() == 1).all()
    assert not owner.exists()  # released at the end


@pytest.mark.slow
def test_a_claim_left_by_a_dead_process_is_stale(results_dir):
    folder = results_dir / "orphan"
    folder.mkdir(parents=True)
    (folder / ".owner").write_text("999999999 12.000")  # no such process
    exp = quick(first_version, results_dir, name="orphan")
    assert len(exp.trials) == 2 and not (folder / ".owner").exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    exp = run_random_search(first_version, SPACE, n_workers=1, max_num_trials=2, seed=0,
                            results_dir=root, name="done", progress=False)
    return exp.path


def damaged_copy(finished, tmp_path, file, text):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / file).write_text(text)
    return copy


@pytest.mark.parametrize("file, text, words", [
    ("experiment.json", '{"name": "done", "n_wor', "experiment.json is not valid JSON"),
    ("experiment.json", "[1, 2]", "does not hold an experiment's settings"),
    ("results.csv", "trial_id,validation_error\n0,0.5\n", "results.csv lacks the columns ['time']"),
    ("trials.csv", 'trial_id,status,start,end,worker,x\n0,completed,0.1,"0.2\n',
     "trials.csv cannot be read as a table"),
    ("trials.csv", "id,state\n0,ok\n", "trials.csv lacks the columns"),
])


@pytest.mark.slow
def test_a_damaged_file_is_an_error_that_names_it(finished, tmp_path, file, text, words):
    copy = damaged_copy(finished, tmp_path, file, text)
    with pytest.raises(ValueError, match=re.escape(words)):
        load_experiment(copy)
    done = subprocess.run([sys.executable, "-m", "d2l_hpo", "plot", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and file in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("file", ["trials.csv", "results.csv"])
def test_a_table_cut_at_a_row_boundary_is_found(finished, tmp_path, file):
    lines = (finished / file).read_text().splitlines(keepends=True)
    assert len(lines) == 3  # a header and the two trials' rows
    copy = damaged_copy(finished, tmp_path, file, "".join(lines[:2]))
    with pytest.raises(ValueError, match=re.escape(f"{file} has 1 rows, but the run wrote 2")):
        load_experiment(copy)
    assert len(load_experiment(finished).trials) == 2  # the original reads as before


@pytest.mark.slow
def test_the_cli_says_what_it_cannot_do_instead_of_a_traceback(finished, tmp_path):
    copy = tmp_path / "unwritable"
    shutil.copytree(finished, copy)
    (copy / "summary.md").mkdir()  # cannot be written, even by root
    done = subprocess.run([sys.executable, "-m", "d2l_hpo", "plot", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot write the figures" in done.stderr
    assert "Traceback" not in done.stderr
    resumed = subprocess.run([sys.executable, "-m", "d2l_hpo", "run", "--resume", "done",
                              "--results-dir", str(finished.parent)],
                             capture_output=True, text=True, timeout=120)
    assert "Traceback" not in resumed.stderr and resumed.returncode == 2
    assert "did not come from `python -m d2l_hpo run`" in resumed.stderr
