"""load_experiment reads what plain Syne Tune wrote (Tuner.run() with its PythonBackend),
so a lesson can draw the same tables and plots for it."""
import os

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend import PythonBackend
from syne_tune.experiments import load_experiment as syne_tune_load
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.tuner_logger import TunerLogger

import d2l_hpo
from d2l_hpo.search.spaces import loguniform, randint

pytestmark = pytest.mark.slow


def sleepy(learning_rate, batch_size, epochs):
    import time

    from syne_tune import Reporter

    report = Reporter()
    for epoch in range(1, epochs + 1):
        time.sleep(0.1 + batch_size / 1000)
        report(epoch=epoch, validation_error=1.0 / (epoch + learning_rate))


SPACE = {"learning_rate": loguniform(0.01, 1.0), "batch_size": randint(32, 256), "epochs": 3}


@pytest.fixture(scope="module")
def syne_tune_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("syne")
    points = d2l_hpo.sample_configs(SPACE, 6, seed=0)
    before = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = str(folder)  # where Syne Tune writes, not ~/syne-tune
    try:
        tuner = Tuner(trial_backend=PythonBackend(tune_function=sleepy, config_space=SPACE),
                      scheduler=RandomSearch(SPACE, metrics=["validation_error"],
                                             do_minimize=True, points_to_evaluate=points),
                      stop_criterion=StoppingCriterion(max_num_trials_completed=2),
                      n_workers=2, sleep_time=0.2, print_update_interval=3600,
                      output_logger=TunerLogger(use_colors=False, use_emojis=False))
        tuner.run()
    finally:
        if before is None:
            del os.environ["SYNETUNE_FOLDER"]
        else:
            os.environ["SYNETUNE_FOLDER"] = before
    assert tuner.tuner_path.parent == folder
    return tuner.tuner_path, points


def test_a_syne_tune_folder_loads_into_the_same_tables(syne_tune_run):
    path, points = syne_tune_run
    exp = d2l_hpo.load_experiment(path)
    raw = syne_tune_load(path.name, local_path=str(path.parent)).results
    assert exp.n_workers == 2 and exp.scheduling == "async"  # inferred: no pickle read
    assert exp.metric == "validation_error" and exp.mode == "min"
    assert exp.config_columns == ["learning_rate", "batch_size"]
    # every report, at the time the trial made it
    assert len(exp.results) == len(raw)
    assert sorted(exp.results["validation_error"]) == sorted(raw["validation_error"])
    # every trial that started, with its configuration, in order
    started = exp.trials.sort_values("trial_id")
    assert set(raw["trial_id"]) <= set(started["trial_id"])
    for row, point in zip(started.itertuples(), points):
        assert row.config_batch_size == point["batch_size"]
        assert row.config_learning_rate == pytest.approx(point["learning_rate"], rel=1e-12)
    assert (started["status"] == "completed").sum() >= 3
    assert set(started["status"]) <= {"completed", "stopped"}
    # a completed trial ends when the backend saw its process end: after its last report
    done = started[started["status"] == "completed"].set_index("trial_id")
    last = exp.results.groupby("trial_id")["time"].max()
    assert (done["end"] >= last.loc[done.index]).all() and (done["end"] > done["start"]).all()
    # the lanes follow the order in which the tuner saw trials end: a worker's next trial
    # starts after the end of the one before it on the same lane
    for _, lane in started.sort_values("start").groupby("worker"):
        assert (lane["start"].to_numpy()[1:] >= lane["end"].to_numpy()[:-1] - 1e-6).all()
    assert set(exp.trials["worker"]) <= {0, 1}
    assert exp.best_value == pytest.approx(raw["validation_error"].min())


def test_plots_and_gaps_work_for_a_syne_tune_folder(syne_tune_run):
    exp = d2l_hpo.load_experiment(syne_tune_run[0])
    ax = d2l_hpo.plot_worker_timeline(exp)
    assert len(ax.patches) == len(exp.trials)
    gaps = d2l_hpo.launch_gaps(exp)
    assert len(gaps) == len(exp.trials) - 2 and (gaps >= -1e-6).all()  # 2 lanes
    plt.close("all")


def test_without_the_pickled_tuner_workers_are_counted_from_the_times(syne_tune_run, tmp_path):
    import shutil

    copy = tmp_path / syne_tune_run[0].name
    shutil.copytree(syne_tune_run[0], copy)
    (copy / "tuner.dill").unlink()
    exp = d2l_hpo.load_experiment(copy)
    assert exp.n_workers == 2  # at most two trials overlapped
    assert set(exp.trials["status"]) <= {"completed", "stopped"}
    assert isinstance(exp.trials, pd.DataFrame) and len(exp.trials) >= 3


def test_a_folder_that_is_neither_says_what_it_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Syne Tune experiment"):
        d2l_hpo.load_experiment(tmp_path / "empty")


def folder_with_a_booby_trapped_pickle(syne_tune_run, tmp_path):
    """A copy of the run whose tuner.dill, when unpickled, writes a file (as one a
    student downloads could run any command)."""
    import pickle
    import shutil

    copy = tmp_path / "downloaded"
    shutil.copytree(syne_tune_run[0], copy)
    marker = tmp_path / "it-ran"

    class Trap:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    (copy / "tuner.dill").write_bytes(pickle.dumps(Trap()))
    return copy, marker


def test_loading_a_downloaded_folder_never_unpickles_it(syne_tune_run, tmp_path):
    import subprocess
    import sys

    copy, marker = folder_with_a_booby_trapped_pickle(syne_tune_run, tmp_path)
    exp = d2l_hpo.load_experiment(copy)
    assert not marker.exists(), "loading a results folder ran the code in its tuner.dill"
    # what the pickle would have said, read from the other files
    assert exp.n_workers == 2 and exp.scheduling == "async"
    assert set(exp.trials["status"]) <= {"completed", "stopped"}
    assert (exp.trials["status"] == "completed").sum() >= 2
    done = subprocess.run([sys.executable, "-m", "d2l_hpo", "plot", str(copy)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "python -m d2l_hpo plot ran the code in tuner.dill"
    # the documented opt-in does unpickle (and so runs it): for one's own folders only
    d2l_hpo.load_experiment(copy, trust_pickle=True)
    assert marker.exists()


def test_workers_scheduling_and_statuses_are_read_from_the_pickle_without_running_it(
        tmp_path, monkeypatch):
    import pickle

    from d2l_hpo.experiment.syne_tune_folder import read_pickled_facts

    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path))
    points = d2l_hpo.sample_configs(SPACE, 4, seed=1)
    tuner = Tuner(trial_backend=PythonBackend(tune_function=sleepy, config_space=SPACE),
                  scheduler=RandomSearch(SPACE, metrics=["validation_error"],
                                         do_minimize=True, points_to_evaluate=points),
                  stop_criterion=StoppingCriterion(max_num_trials_completed=2),
                  n_workers=2, sleep_time=0.2, print_update_interval=3600,
                  asynchronous_scheduling=False,
                  output_logger=TunerLogger(use_colors=False, use_emojis=False))
    tuner.run()
    read = d2l_hpo.load_experiment(tuner.tuner_path)
    trusted = d2l_hpo.load_experiment(tuner.tuner_path, trust_pickle=True)
    assert (read.n_workers, read.scheduling) == (trusted.n_workers, trusted.scheduling) \
        == (2, "sync")
    assert read.trials["status"].tolist() == trusted.trials["status"].tolist()
    assert read.settings["read_without_unpickling"] == [
        "asynchronous_scheduling", "n_workers", "statuses"]
    # a file that is no tuner at all gives nothing, and runs nothing
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "tuner.dill").write_bytes(pickle.dumps({"n_workers": "many"}))
    assert read_pickled_facts(tmp_path / "x") == {}
