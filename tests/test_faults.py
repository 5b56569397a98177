"""Fault injection with real subprocess trials: what fails is recorded, what
succeeded survives, and no process is left behind."""
import json
import math
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import d2l_hpo
from conftest import pooled_server_pids
from d2l_hpo import load_experiment, run_random_search
from d2l_hpo.run.runner import MetricNotReportedError, TooManyFailuresError
from d2l_hpo.search.spaces import choice, randint

pytestmark = pytest.mark.slow


def descendants():
    """Processes left under this one, except the fork servers kept warm for the next
    search (``d2l_hpo.shutdown()`` closes those)."""
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and p.pid not in pooled_server_pids()]


@pytest.fixture(autouse=True)
def no_process_left_behind():
    yield
    deadline = time.time() + 5
    while descendants() and time.time() < deadline:
        time.sleep(0.1)
    assert descendants() == []


def faulty(kind, x):
    """kind: what goes wrong; x: just a value to report."""
    import math
    import os
    import subprocess
    import sys
    import time

    from syne_tune import Reporter

    report = Reporter()
    if kind == "ok":
        for epoch in range(1, 4):
            time.sleep(0.05)
            report(epoch=epoch, validation_error=float(x))
    elif kind == "raise":
        report(epoch=1, validation_error=0.5)
        raise FloatingPointError(f"loss exploded for x={x}")
    elif kind == "nan":
        for epoch in range(1, 50):
            time.sleep(0.05)
            report(epoch=epoch, validation_error=math.nan if epoch >= 2 else 0.01)
    elif kind == "inf":
        report(epoch=1, validation_error=math.inf)
        time.sleep(30)
    elif kind == "hang":
        report(epoch=1, validation_error=0.7)
        time.sleep(3600)
    elif kind == "spawn":  # a child process (like a DataLoader worker), then hang
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        report(epoch=1, validation_error=0.6)
        time.sleep(3600)
    elif kind == "exit":
        report(epoch=1, validation_error=0.4)
        os._exit(3)


def kinds_space(*kinds):
    return {"kind": choice(list(kinds)), "x": randint(1, 9)}


def run(kinds, results_dir, n=6, initial=None, **kwargs):
    """One trial per kind, in this order, then random ones."""
    args = dict(n_workers=2, max_num_trials=n, seed=0, results_dir=results_dir,
                progress=False, initial_config=initial)
    args.update(kwargs)
    return run_random_search(faulty, kinds_space(*kinds), **args)


def by_kind(exp):
    return {k: sorted(g["status"]) for k, g in exp.trials.groupby("config_kind")}


def test_a_raising_trial_fails_with_its_error_and_the_others_complete(results_dir):
    exp = run(["ok", "raise"], results_dir, n=6, initial={"kind": "raise", "x": 5},
              max_failures=10)
    statuses = by_kind(exp)
    assert set(statuses["raise"]) == {"failed"} and set(statuses["ok"]) == {"completed"}
    failed = exp.trials[exp.trials["status"] == "failed"]
    assert all("FloatingPointError: loss exploded" in e for e in failed["error"])
    assert len(exp.trials) == 6
    summary = exp.summary()
    assert summary["failed"] == len(failed)
    assert "loss exploded for x=5" in summary["errors"][0]
    # what the failed trial reported before it raised is kept
    assert 0 in set(exp.results["trial_id"])


def test_too_many_failures_stop_the_experiment_but_keep_its_results(results_dir):
    with pytest.raises(TooManyFailuresError) as info:
        run(["raise"], results_dir, n=8, max_failures=1, name="doomed")
    assert "more than max_failures=1" in str(info.value)
    assert "FloatingPointError" in str(info.value)
    exp = load_experiment("doomed", results_dir=results_dir)
    assert (exp.trials["status"] == "failed").sum() >= 2
    assert len(exp.results) >= 2


def test_a_diverging_trial_is_stopped_and_never_best(results_dir):
    exp = run(["ok", "nan", "inf"], results_dir, n=5, initial={"kind": "nan", "x": 1},
              max_failures=0)
    statuses = by_kind(exp)
    assert set(statuses["nan"]) == {"diverged"} and set(statuses.get("inf", ["diverged"])) == {"diverged"}
    nan_trial = exp.trials[exp.trials["config_kind"] == "nan"]["trial_id"].iloc[0]
    # stopped right after its first NaN, not after 49 epochs
    assert (exp.results["trial_id"] == nan_trial).sum() <= 3
    # its 0.01 before diverging is not the best: a diverged trial never wins
    assert exp.best_config["kind"] == "ok"
    assert math.isfinite(exp.best_value) and exp.best_value >= 1
    ax = d2l_hpo.plot_trials_over_time(exp)
    assert any(line.get_label() == "diverged (NaN/inf)" for line in ax.lines)


def test_a_hanging_trial_and_its_children_are_killed_after_max_trial_time(results_dir):
    start = time.time()
    exp = run(["ok", "hang", "spawn"], results_dir, n=4, initial={"kind": "spawn", "x": 1},
              max_trial_time=3)
    # bounds that only a trial left to hang (3600 s) breaks, whatever the machine's load
    assert time.time() - start < 300
    statuses = by_kind(exp)
    assert set(statuses["spawn"]) == {"timeout"}
    assert set(statuses.get("hang", ["timeout"])) == {"timeout"}
    assert set(statuses.get("ok", ["completed"])) == {"completed"}
    timed_out = exp.trials[exp.trials["status"] == "timeout"]
    assert (timed_out["duration"] < 60).all()
    # the worker went on to the next trial
    assert len(exp.trials) == 4
    # (the autouse fixture checks that the spawned grandchild is gone too)


def test_a_trial_that_exits_hard_is_failed(results_dir):
    exp = run(["ok", "exit"], results_dir, n=4, initial={"kind": "exit", "x": 2},
              max_failures=10)
    assert set(by_kind(exp)["exit"]) == {"failed"}
    assert (exp.results["trial_id"] == 0).sum() == 1  # its one report survived


def reports_something_else(x):
    from syne_tune import Reporter

    Reporter()(loss=float(x))


def reports_nothing(x):
    return x


def test_an_objective_that_never_reports_the_metric_says_so(results_dir):
    with pytest.raises(MetricNotReportedError) as info:
        run_random_search(reports_something_else, {"x": randint(1, 3)}, n_workers=1,
                          max_num_trials=2, results_dir=results_dir, progress=False)
    message = str(info.value)
    assert "'validation_error'" in message and "[0, 1]" in message and "['loss']" in message
    with pytest.raises(MetricNotReportedError, match="without reporting 'validation_error'"):
        run_random_search(reports_nothing, {"x": randint(1, 3)}, n_workers=1,
                          max_num_trials=2, results_dir=results_dir, progress=False)


SCRIPT = textwrap.dedent("""
    import sys
    import d2l_hpo
    space = d2l_hpo.synthetic_space(max_epochs=12, epoch_seconds=0.3)
    d2l_hpo.run_random_search(d2l_hpo.synthetic_objective, space, n_workers=2,
                              max_num_trials=6, seed=4, name="interrupted",
                              results_dir=sys.argv[1], progress=False)
""")


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def reported(folder):
    try:
        return len(open(folder / "results.csv").read().splitlines()) > 2
    except OSError:
        return False


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_trial_keeps_results_and_says_how_to_resume(
        tmp_path, how):
    runner = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)],
                              stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "interrupted"
    assert wait_for(lambda: reported(folder))
    tree = psutil.Process(runner.pid).children(recursive=True)
    assert tree, "trials should be running"
    runner.send_signal(how)
    _, err = runner.communicate(timeout=30)
    assert "resume=True" in err and "--resume interrupted" in err
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    exp = load_experiment(folder)
    assert "interrupted" in set(exp.trials["status"])
    assert len(exp.results) >= 2
    # resume in this process: same seed sequence, 6 trials in all, none twice
    exp = run_random_search(d2l_hpo.synthetic_objective,
                            d2l_hpo.synthetic_space(max_epochs=12, epoch_seconds=0.3),
                            n_workers=2, max_num_trials=6, name="interrupted",
                            results_dir=tmp_path, resume=True, progress=False)
    assert (exp.trials["status"] == "completed").sum() == 6 and len(exp.trials) == 6
    configs = exp.configs.round(8).to_dict("records")
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 6
    expected = d2l_hpo.sample_configs(d2l_hpo.synthetic_space(), 6, seed=4)
    assert sorted(json.dumps({k: round(c[k], 8) if isinstance(c[k], float) else c[k]
                              for k in exp.config_columns}, sort_keys=True)
                  for c in expected) == sorted(json.dumps(c, sort_keys=True) for c in configs)
    assert exp.trials["trial_id"].is_unique


def test_an_interrupt_while_a_trial_starts_waits_until_it_has_started_then_stops_it(
        results_dir, monkeypatch, capsys):
    """SIGTERM (or Ctrl-C) that lands while a trial is being started: Syne Tune has
    registered the trial's id and the fork server has not answered yet. It used to cut
    the start in two: the clean-up failed with ``KeyError`` on the id without a process
    (a traceback and exit code 1 instead of how to resume; seen in a fresh-clone run of
    the CLI test below). Now the start finishes, then the run stops as on any interrupt:
    that trial too is stopped, nothing keeps running, the results are there."""
    from d2l_hpo.backends.local import SubprocessBackend

    fork, starts = SubprocessBackend._fork, []

    def fork_interrupted(self, argv, trial_dir, env):
        starts.append(trial_dir.name)
        if len(starts) == 3:  # the third trial's id is registered, its process not started
            signal.raise_signal(signal.SIGTERM)
        return fork(self, argv, trial_dir, env)

    monkeypatch.setattr(SubprocessBackend, "_fork", fork_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_random_search(d2l_hpo.synthetic_objective,
                          d2l_hpo.synthetic_space(max_epochs=4, epoch_seconds=0.2),
                          n_workers=2, max_num_trials=6, seed=0, name="cut",
                          results_dir=results_dir, progress=False)
    assert len(starts) == 3
    assert "--resume cut" in capsys.readouterr().err
    assert psutil.wait_procs(descendants(), timeout=10)[1] == []
    exp = load_experiment(results_dir / "cut")
    trials = exp.trials.set_index("trial_id")
    assert list(trials.index) == [0, 1, 2] and trials.loc[2, "status"] == "interrupted"
    assert trials.loc[[0, 1], "pid"].notna().all()  # (the third was stopped before seen)


def test_the_command_line_run_survives_a_signal_and_resumes(tmp_path):
    cmd = [sys.executable, "-m", "d2l_hpo", "run", "--workers", "2", "--trials", "5",
           "--epochs", "1", "--data-fraction", "0.05", "--name", "cli", "--no-progress",
           "--results-dir", str(tmp_path)]
    runner = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    folder = tmp_path / "cli"

    def one_done():
        try:
            return "completed" in (folder / "trials.csv").read_text()
        except OSError:
            return False

    assert wait_for(one_done, timeout=120)
    tree = psutil.Process(runner.pid).children(recursive=True)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "--resume cli" in err, (runner.returncode, err[-3000:])
    assert psutil.wait_procs(tree, timeout=5)[1] == []
    before = load_experiment(folder)
    done_before = before.trials[before.trials["status"] == "completed"]
    # interrupted part-way: some trials finished, not all of them
    assert 1 <= len(done_before) < 5
    again = subprocess.run([sys.executable, "-m", "d2l_hpo", "run", "--resume", "cli",
                            "--results-dir", str(tmp_path), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    exp = load_experiment(folder)
    assert len(exp.trials) == 5 and set(exp.trials["status"]) == {"completed"}
    assert exp.trials["trial_id"].is_unique
    configs = exp.configs[["learning_rate", "batch_size"]].to_dict("records")
    assert len({json.dumps(c) for c in configs}) == 5
    # finished trials were not run again: same ids, same configurations
    kept = exp.trials.set_index("trial_id").loc[done_before["trial_id"]]
    assert kept["config_learning_rate"].tolist() == done_before["config_learning_rate"].tolist()
    assert exp.settings["resumed"] == 1


def test_kill_9_of_the_tuner_keeps_reports_and_leaves_no_trial_running(tmp_path):
    runner = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)],
                              stderr=subprocess.DEVNULL)
    folder = tmp_path / "interrupted"
    assert wait_for(lambda: reported(folder))
    tree = psutil.Process(runner.pid).children(recursive=True)
    time.sleep(1.0)
    runner.kill()
    runner.wait()
    # the trials die with their tuner (PR_SET_PDEATHSIG)
    assert psutil.wait_procs(tree, timeout=5)[1] == []
    logged = 0
    for out in folder.glob("*/std.out"):
        logged += out.read_text().count("[tune-metric]")
    exp = load_experiment(folder)
    assert len(exp.results) == logged  # every report a trial printed, even the last second's
    assert set(exp.trials["status"]) <= {"completed", "interrupted"}
    resumed = run_random_search(d2l_hpo.synthetic_objective,
                                d2l_hpo.synthetic_space(max_epochs=12, epoch_seconds=0.3),
                                n_workers=2, max_num_trials=6, name="interrupted",
                                results_dir=tmp_path, resume=True, progress=False)
    assert (resumed.trials["status"] == "completed").sum() == 6


def test_resume_refuses_what_does_not_match(results_dir):
    space = d2l_hpo.synthetic_space(max_epochs=1, epoch_seconds=0.01)
    run_random_search(d2l_hpo.synthetic_objective, space, n_workers=1, max_num_trials=1,
                      name="done", results_dir=results_dir, progress=False, seed=1)
    with pytest.raises(FileExistsError, match="pass resume=True"):
        run_random_search(d2l_hpo.synthetic_objective, space, n_workers=1, max_num_trials=1,
                          name="done", results_dir=results_dir)
    with pytest.raises(FileNotFoundError, match="no experiment 'nothing'"):
        run_random_search(d2l_hpo.synthetic_objective, space, n_workers=1, max_num_trials=1,
                          name="nothing", results_dir=results_dir, resume=True)
    with pytest.raises(ValueError, match="its n_workers was 1, now 2"):
        run_random_search(d2l_hpo.synthetic_objective, space, n_workers=2, max_num_trials=1,
                          name="done", results_dir=results_dir, resume=True)
    with pytest.raises(ValueError, match="seed=2"):
        run_random_search(d2l_hpo.synthetic_objective, space, n_workers=1, max_num_trials=1,
                          name="done", results_dir=results_dir, resume=True, seed=2)
    # a finished experiment with its budget spent has nothing left to do
    exp = run_random_search(d2l_hpo.synthetic_objective, space, n_workers=1,
                            max_num_trials=1, name="done", results_dir=results_dir,
                            resume=True, progress=False)
    assert len(exp.trials) == 1


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    from d2l_hpo.experiment import storage

    target = tmp_path / "trials.csv"
    target.write_text("trial_id\n0\n")

    def crash(src, dst):
        raise OSError("killed mid-write")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError):
        storage.write_atomically(target, "trial_id\n0\n1\n")
    assert target.read_text() == "trial_id\n0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]
