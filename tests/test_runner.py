"""run_random_search end to end, through real Syne Tune subprocess workers."""
import json
import math
import sys
import threading
import time
import warnings

import pytest

import d2l_hpo
from d2l_hpo import run_random_search, sample_configs, synthetic_objective, synthetic_space
from d2l_hpo.search.spaces import ConfigSpaceError, choice, loguniform, randint
from helpers import first_version, quick

pytestmark = pytest.mark.slow

# stragglers: batch sizes above 224 take three times as long
STRAGGLERS = synthetic_space(max_epochs=2, epoch_seconds=0.15)


def configs_of(exp):
    return exp.configs.to_dict("records")


@pytest.fixture(scope="module")
def sync_and_async(tmp_path_factory):
    results_dir = tmp_path_factory.mktemp("runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 4 workers on 2 cores is the point
        return {mode: run_random_search(synthetic_objective, STRAGGLERS, n_workers=4,
                                        max_num_trials=16, scheduling=mode, seed=3,
                                        results_dir=results_dir, progress=False)
                for mode in ("sync", "async")}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_runs_exactly_max_num_trials_to_completion_on_at_most_n_workers(sync_and_async, mode):
    exp = sync_and_async[mode]
    assert exp.scheduling == mode and exp.n_workers == 4
    assert len(exp.trials) == 16
    assert set(exp.trials["status"]) == {"completed"}
    assert set(exp.trials["worker"]) <= {0, 1, 2, 3}
    assert (exp.trials["end"] > exp.trials["start"]).all()
    # every trial reported both epochs, in order
    epochs = exp.results.groupby("trial_id")["epoch"].apply(list)
    assert all(e == [1, 2] for e in epochs)
    # no two trials overlap on the same lane
    for _, lane in exp.trials.sort_values("start").groupby("worker"):
        assert (lane["start"].to_numpy()[1:] >= lane["end"].to_numpy()[:-1] - 1e-6).all()
    assert math.isfinite(exp.best_value) and exp.best_config is not None


def test_the_same_seed_gives_the_same_configs_in_sync_and_async(sync_and_async):
    sync, asynchronous = configs_of(sync_and_async["sync"]), configs_of(sync_and_async["async"])
    assert sync == asynchronous
    expected = sample_configs(STRAGGLERS, 16, seed=3)
    assert [{k: c[k] for k in sync[0]} for c in expected] == sync
    assert len({json.dumps(c, sort_keys=True) for c in sync}) == 16


def test_async_keeps_workers_busier_than_sync_behind_stragglers(sync_and_async):
    sync, asynchronous = sync_and_async["sync"], sync_and_async["async"]
    assert asynchronous.utilization > sync.utilization + 0.05
    assert asynchronous.wallclock < sync.wallclock
    # sync really ran in batches: nobody started while a batch was still running
    trials = sync.trials.sort_values("start")
    for batch_start in range(0, 16, 4):
        batch = trials.iloc[batch_start:batch_start + 4]
        if batch_start + 4 < 16:
            assert trials.iloc[batch_start + 4]["start"] >= batch["end"].max() - 1e-6


def test_results_are_on_disk_and_load_back_the_same(sync_and_async):
    exp = sync_and_async["async"]
    again = d2l_hpo.load_experiment(exp.path)
    assert again.trials.equals(exp.trials) and again.best_value == exp.best_value
    assert again.utilization == pytest.approx(exp.utilization)
    assert (exp.path / "results.csv").exists() and (exp.path / "tuner.log").exists()
    named = d2l_hpo.load_experiment(exp.name, results_dir=exp.path.parent)
    assert named.name == exp.name


def test_initial_config_comes_first_then_the_seeded_sequence(results_dir):
    space = synthetic_space(max_epochs=1, epoch_seconds=0.05)
    first = {"learning_rate": 0.1, "batch_size": 128, "num_layers": 2}
    exp = run_random_search(synthetic_objective, space, n_workers=2, max_num_trials=3,
                            seed=5, initial_config=first, results_dir=results_dir,
                            progress=False)
    configs = configs_of(exp)
    assert configs[0] == first
    assert configs[1:] == [{k: c[k] for k in first}
                           for c in sample_configs(space, 2, seed=5)]


def test_the_wallclock_budget_stops_running_trials(results_dir):
    space = synthetic_space(max_epochs=40, epoch_seconds=0.5)  # 20 s and more a trial
    exp = run_random_search(synthetic_objective, space, n_workers=2, max_wallclock_time=3,
                            seed=0, results_dir=results_dir, progress=False)
    assert exp.wallclock < 15
    assert set(exp.trials["status"]) == {"stopped"}
    assert len(exp.results) > 0  # what they reported before the stop is kept


def reports_its_threads(k):
    import os

    from syne_tune import Reporter

    Reporter()(threads=int(os.environ["OMP_NUM_THREADS"]), validation_error=0.5)


def test_each_trial_gets_a_fair_share_of_the_cores(results_dir):
    import os

    cores = len(os.sched_getaffinity(0))
    exp = run_random_search(reports_its_threads, {"k": randint(1, 2)}, n_workers=1,
                            max_num_trials=1, results_dir=results_dir, progress=False)
    assert exp.results["threads"].tolist() == [cores]


def keeps_defaults(x, scale=10.0, label="a b"):
    from syne_tune import Reporter

    Reporter()(validation_error=x * scale, label_ok=int(label == "a b"))


def test_objective_defaults_and_types_survive_the_trip_to_the_worker(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = run_random_search(keeps_defaults, {"x": randint(1, 1)}, n_workers=1,
                            max_num_trials=1, progress=False)
    assert exp.best_value == 10.0 and exp.results["label_ok"].tolist() == [1]
    # results under ./runs by default, and nothing else left in the working directory
    assert exp.path.parent.resolve() == (tmp_path / "runs").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("kwargs, error, words", [
    ({"n_workers": 0}, ValueError, ["n_workers", ">= 1", "0"]),
    ({"scheduling": "parallel"}, ValueError, ["scheduling", "'parallel'"]),
    ({"mode": "lowest"}, ValueError, ["mode", "'lowest'"]),
    ({"max_num_trials": None, "max_wallclock_time": None}, ValueError, ["budget"]),
    ({"max_wallclock_time": -1}, ValueError, ["max_wallclock_time", "-1"]),
    ({"max_num_trials": 0}, ValueError, ["max_num_trials", "0"]),
    ({"name": "a/b"}, ValueError, ["name 'a/b'"]),
    ({"backend": object()}, TypeError, ["TrialBackend", "object"]),
    ({"initial_config": {"learning_rate": 5.0}}, ConfigSpaceError, ["'learning_rate'=5.0", "outside"]),
])
def test_bad_input_is_refused_before_any_trial_starts(kwargs, error, words, results_dir):
    args = {"n_workers": 2, "max_num_trials": 2, "results_dir": results_dir, "progress": False}
    args.update(kwargs)
    with pytest.raises(error) as info:
        run_random_search(synthetic_objective, synthetic_space(), **args)
    for word in words:
        assert word in str(info.value)
    assert not results_dir.exists() or not any(results_dir.glob("*/0"))


def test_a_space_that_does_not_fit_the_objective_is_refused(results_dir):
    with pytest.raises(ConfigSpaceError, match="'momentum' is in the config space"):
        run_random_search(synthetic_objective, {**synthetic_space(), "momentum": 0.9},
                          n_workers=1, max_num_trials=1, results_dir=results_dir)


def test_an_existing_name_is_refused_and_a_closure_is_explained(results_dir):
    space = synthetic_space(max_epochs=1, epoch_seconds=0.01)
    run_random_search(synthetic_objective, space, n_workers=1, max_num_trials=1,
                      name="taken", results_dir=results_dir, progress=False)
    with pytest.raises(FileExistsError, match="'taken' already exists"):
        run_random_search(synthetic_objective, space, n_workers=1, max_num_trials=1,
                          name="taken", results_dir=results_dir, progress=False)
    scale = 2.0

    def closure(learning_rate, batch_size, max_epochs, num_layers, epoch_seconds):
        return learning_rate * scale

    with pytest.raises(ValueError, match="enclosing function"):
        run_random_search(closure, space, n_workers=1, max_num_trials=1,
                          results_dir=results_dir, progress=False)


def test_a_results_dir_that_is_a_file_is_refused(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="file is a file"):
        run_random_search(synthetic_objective, synthetic_space(), n_workers=1,
                          max_num_trials=1, results_dir=blocked)


def test_more_workers_than_cores_warns(results_dir):
    import os

    too_many = len(os.sched_getaffinity(0)) + 1
    with pytest.warns(UserWarning, match="CPU cores"):
        run_random_search(synthetic_objective, synthetic_space(max_epochs=1, epoch_seconds=0.01),
                          n_workers=too_many, max_num_trials=1, results_dir=results_dir,
                          progress=False)


def fails_for_large_x(x):
    import sys

    from syne_tune import Reporter

    if x > 2:
        raise RuntimeError(f"x={x} is too large")
    if x == 2:
        sys.exit(0)  # a clean early exit after no report counts as completed
    Reporter()(validation_error=float(x))


def test_a_trial_that_raises_is_failed_and_the_others_go_on(results_dir):
    exp = run_random_search(fails_for_large_x, {"x": choice([1, 3])}, n_workers=2,
                            max_num_trials=4, seed=0, results_dir=results_dir,
                            initial_config={"x": 3}, progress=False)
    statuses = dict(zip(exp.trials["config_x"], exp.trials["status"]))
    assert statuses[3] == "failed" and statuses.get(1, "completed") == "completed"
    assert len(exp.trials) == 4
    failed = exp.trials[exp.trials["status"] == "failed"]
    assert (failed["end"] > failed["start"]).all()
    stderr = (exp.path / str(failed["trial_id"].iloc[0]) / "std.err").read_text()
    assert "RuntimeError: x=3 is too large" in stderr


# --- issue 25: a second Ctrl-C during the clean-up still stops every trial ----------------
def reports_then_sleeps(x):
    import time

    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=float(x))
    time.sleep(120)


def test_a_second_ctrl_c_while_the_results_are_saved_still_stops_every_trial(
        results_dir, monkeypatch):
    import os
    import signal
    import threading
    import time

    import psutil

    from d2l_hpo.backends.local import SubprocessBackend
    from d2l_hpo.run.recorder import ExperimentRecorder

    final_save = ExperimentRecorder.on_tuning_end

    def second_interrupt_lands_in_the_final_save(self):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, a moment after the first
        time.sleep(0.2)  # Python delivers it here, before the save below
        final_save(self)
    monkeypatch.setattr(ExperimentRecorder, "on_tuning_end",
                        second_interrupt_lands_in_the_final_save)
    space = {"x": loguniform(0.01, 1.0)}
    backend = SubprocessBackend(reports_then_sleeps, space)

    def first_interrupt_once_both_trials_reported():
        deadline = time.time() + 120
        while time.time() < deadline:
            logs = [results_dir / "twice" / str(i) / "std.out" for i in (0, 1)]
            if all(p.exists() and "validation_error" in p.read_text() for p in logs):
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=first_interrupt_once_both_trials_reported, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_random_search(reports_then_sleeps, space, n_workers=2, max_num_trials=4,
                              seed=0, name="twice", backend=backend, results_dir=results_dir,
                              progress=False)
        pids = [p.pid for p in backend.trial_subprocess.values()]
        assert len(pids) == 2
        time.sleep(1.0)  # the fork server reaps its killed children

        def alive(pid):
            try:
                return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False
        assert [pid for pid in pids if alive(pid)] == [], "trials left running"
        exp = d2l_hpo.load_experiment(results_dir / "twice")
        assert exp.trials["status"].tolist() == ["interrupted", "interrupted"]
        assert exp.results["validation_error"].notna().sum() == 2  # nothing lost
    finally:
        for process in backend.trial_subprocess.values():
            process.kill()


# --- moved from test_adversarial.py (misuse of this module) ---
def slow_version(x):
    import time

    from syne_tune import Reporter

    time.sleep(1.0)
    Reporter()(epoch=1, validation_error=1.0)


def test_a_second_search_in_another_thread_is_a_clear_error(results_dir):
    stdout = sys.stdout
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault(
        "exp", quick(slow_version, results_dir, name="in-a-thread", max_num_trials=6)))
    thread.start()
    deadline = time.time() + 60  # until the search in the thread has begun
    while not (results_dir / "in-a-thread" / ".owner").exists():
        assert time.time() < deadline and thread.is_alive()
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="already running in this process"):
        quick(first_version, results_dir, name="in-main")
    thread.join(timeout=120)
    assert len(done["exp"].trials) == 6
    assert sys.stdout is stdout
    assert not (results_dir / "in-main").exists()
