"""The recorder's tables, through run_random_search with the in-process backend (fast
tier: no processes), and the recorder alone for what only a cluster backend does."""
import math

import pytest
from syne_tune.backend.trial_status import Status

import d2l_hpo
from d2l_hpo.backends.base import Placement, RunnerBackend
from d2l_hpo.run.recorder import ExperimentRecorder
from d2l_hpo.run.runner import MetricNotReportedError
from d2l_hpo.run.settings import RunSettings, RunState
from d2l_hpo.search.spaces import choice, loguniform, randint
from helpers import first_version, quick


def bowl(x: float, epochs: int, kind: str = "ok", report=None):
    for epoch in range(1, epochs + 1):
        if kind == "raise" and epoch == 2:
            raise FloatingPointError(f"loss exploded for x={x:.3f}")
        loss = float("nan") if kind == "nan" and epoch == 2 else (x - 0.3) ** 2 + 1 / epoch
        report(epoch=epoch, loss=loss)


SPACE = {"x": loguniform(0.01, 1.0), "epochs": randint(1, 3)}


def search(backend, results_dir, space=SPACE, **kwargs):
    args = dict(n_workers=2, max_num_trials=6, metric="loss", seed=0, backend=backend,
                results_dir=results_dir, progress=False)
    return d2l_hpo.run_random_search(bowl, space, **{**args, **kwargs})


def test_one_row_per_trial_and_per_report_and_the_best_of_them(in_process, results_dir):
    exp = search(in_process, results_dir)
    assert list(exp.trials["trial_id"]) == list(range(6))
    assert set(exp.trials["status"]) == {"completed"}
    assert set(exp.trials["worker"]) <= {0, 1} and (exp.trials["end"] >= exp.trials["start"]).all()
    configs = d2l_hpo.sample_configs(SPACE, 6, seed=0)
    assert list(exp.trials["config_epochs"]) == [c["epochs"] for c in configs]
    assert exp.results.groupby("trial_id").size().tolist() == [c["epochs"] for c in configs]
    assert exp.best_value == pytest.approx(exp.results["loss"].min())
    assert exp.settings["finished"] is True and exp.settings["random_draws"] == 6


def test_a_failed_trial_keeps_its_error_and_reports_and_the_others_go_on(in_process, results_dir):
    space = {**SPACE, "epochs": 3, "kind": choice(["ok", "raise"])}
    exp = search(in_process, results_dir, space=space, max_failures=6)
    failed = exp.trials[exp.trials["config_kind"] == "raise"]
    assert len(failed) and (failed["status"] == "failed").all()
    assert failed["error"].str.contains("loss exploded").all()
    assert (exp.trials[exp.trials["config_kind"] == "ok"]["status"] == "completed").all()
    # what a failed trial reported before it raised is kept: its first epoch
    assert (exp.results[exp.results["trial_id"].isin(failed["trial_id"])]["epoch"] == 1).all()


def test_a_nan_report_makes_the_trial_diverged_and_never_best(in_process, results_dir):
    space = {"x": 0.3, "epochs": 3, "kind": choice(["ok", "nan"])}
    exp = search(in_process, results_dir, space=space, max_failures=6)
    diverged = exp.trials[exp.trials["config_kind"] == "nan"]
    assert len(diverged) and (diverged["status"] == "diverged").all()
    assert diverged["best_loss"].isna().all()
    # its first epoch (0.0 + 1/1 = 1.0) never counts: the best is an "ok" trial's last epoch
    assert exp.best_config["kind"] == "ok" and exp.best_value == pytest.approx(1 / 3)


def test_a_metric_never_reported_is_a_clear_error(in_process, results_dir):
    with pytest.raises(MetricNotReportedError, match="no trial reported 'validation_error'"):
        search(in_process, results_dir, metric="validation_error")


class NodeThatDied(RunnerBackend):
    """Says that trial 0 runs again (attempt 2) after its node died."""

    places_trials = True

    def __init__(self):
        self.placement = Placement(node="aaaa1111", pid=7, started=None)

    def trial_placement(self, trial_id):
        return self.placement


def test_reports_of_a_lost_attempt_are_dropped_and_late_ones_ignored(tmp_path):
    backend = NodeThatDied()
    settings = RunSettings(name="rerun", n_workers=1, max_num_trials=1, metric="loss",
                           config_columns=["x"])
    recorder = ExperimentRecorder(tmp_path, settings, RunState(), backend, progress=False)
    recorder.on_tuning_start(None)

    class Trial:
        trial_id, config = 0, {"x": 0.5}

    recorder.on_start_trial(Trial)
    first = {"epoch": 1, "loss": 0.9, "st_worker_timestamp": recorder.t0 + 1}
    recorder.on_fetch_status_results({0: (Trial, Status.in_progress)}, [(0, first)])
    assert [r["loss"] for r in recorder.rows] == [0.9] and recorder.trials[0]["node"] == "aaaa1111"
    backend.placement = Placement(node="bbbb2222", pid=8, started=None, attempt=2,
                                  rerun_reason="the Ray node running this trial died")
    late = {**first, "epoch": 2, "loss": 0.1, "st_attempt": 1}  # the lost attempt's last words
    again = {**first, "loss": 0.8, "st_attempt": 2}
    recorder.on_fetch_status_results({0: (Trial, Status.in_progress)}, [(0, late), (0, again)])
    assert [r["loss"] for r in recorder.rows] == [0.8]
    assert recorder.best == pytest.approx(0.8)
    assert recorder.trials[0]["node"] == "bbbb2222" and "died" in recorder.trials[0]["error"]
    recorder.on_fetch_status_results({0: (Trial, Status.completed)}, [])
    recorder.on_tuning_end()
    exp = d2l_hpo.load_experiment(tmp_path)
    assert exp.trials["status"].tolist() == ["completed"] and exp.results["loss"].tolist() == [0.8]
    assert math.isclose(exp.best_value, 0.8)


# --- issue 25: a full disk is said, with the path, and loses nothing ---------------------
FILLED = []  # trials of fills_the_disk so far (the in-process backend runs them here)


def fills_the_disk(x: float, filler: str, report=None):
    import time

    FILLED.append(x)
    if len(FILLED) < 3:
        time.sleep(1.1)  # the recorder saves its tables at most once a second
    else:  # the third trial fills the 2 MB disk before it reports: 3 MB at most, so
        # that where the disk is not a small tmpfs of its own it fills nothing real
        with open(filler, "wb") as f:
            try:
                for _ in range(48):
                    f.write(b"0" * 65536)
                    f.flush()
            except OSError:
                pass
    report(epoch=1, loss=x)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A folder on a 2 MB file system of its own (a tmpfs, as root); where mounting is
    not allowed, a folder whose table writes fail as on a full disk once the filler
    file exists."""
    import errno
    import os
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        import d2l_hpo.run.recorder as recorder
        real = recorder.write_tables

        def full_once_filled(path, *args):
            if (folder / "filler").exists():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(path, *args)
        monkeypatch.setattr(recorder, "write_tables", full_once_filled)
    yield folder
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_stops_the_run_with_the_path_and_the_trials_interrupted(
        in_process, small_disk):
    FILLED.clear()
    filler = small_disk / "filler"
    with pytest.raises(d2l_hpo.ResultsNotSavedError) as info:
        d2l_hpo.run_random_search(fills_the_disk, {"x": loguniform(0.01, 1.0),
                                                   "filler": str(filler)},
                                  n_workers=1, max_num_trials=5, metric="loss", seed=0,
                                  name="full", backend=in_process, results_dir=small_disk,
                                  progress=False)
    message = str(info.value)
    folder = small_disk / "full"
    assert f"into {folder}" in message and "No space left on device (errno 28)" in message
    assert "resume=True" in message and info.value.errno == 28
    assert info.value.__suppress_context__  # one error, not a traceback within a traceback
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "temporary files left behind"
    filler.unlink()  # space again
    exp = d2l_hpo.load_experiment(folder)
    assert "stopped" not in set(exp.trials["status"])  # "stopped" means the budget ran out
    assert exp.trials["status"].iloc[0] == "completed"
    assert set(exp.trials["status"].iloc[1:]) <= {"completed", "interrupted"}
    assert exp.settings["finished"] is False


# --- moved from test_adversarial.py (misuse of this module) ---
def has_status(status):
    from syne_tune import Reporter

    Reporter()(validation_error=0.5)


def reports_time(x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=float(x), time=3600.0)


def test_a_metric_named_like_a_column_of_the_results_is_refused_before_any_work(results_dir):
    with pytest.raises(ValueError, match="metric='time' is a column"):
        quick(first_version, results_dir, metric="time")
    assert not results_dir.exists()


@pytest.mark.slow
def test_a_reported_time_does_not_move_the_clock(results_dir):
    exp = quick(reports_time, results_dir)
    assert exp.wallclock < 600
    assert (exp.results["reported_time"] == 3600.0).all()
    assert exp.results["time"].max() < 600
