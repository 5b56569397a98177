"""Resume, on experiments of the in-process backend (fast tier): what is kept, what runs
again, which configurations come next, and the budget left."""
import json

import pandas as pd
import pytest
from test_recorder import SPACE, bowl

import d2l_hpo
from d2l_hpo.experiment.storage import EXPERIMENT_FILE, TRIALS_FILE
from d2l_hpo.report import write_report
from d2l_hpo.run.resume import plan_resume
from d2l_hpo.run.settings import RunSettings
from helpers import first_version, fixed_version, quick


def interrupted_run(backend, results_dir, n=4):
    """A finished run of ``n`` trials, then made to look as if its last trial was
    running when the run was killed."""
    d2l_hpo.run_random_search(bowl, SPACE, n_workers=2, max_num_trials=n, metric="loss",
                              seed=3, name="cut", backend=backend, results_dir=results_dir,
                              progress=False)
    path = results_dir / "cut"
    trials = pd.read_csv(path / TRIALS_FILE)
    trials.loc[trials["trial_id"] == n - 1, "status"] = "running"
    trials.to_csv(path / TRIALS_FILE, index=False)
    settings = json.loads((path / EXPERIMENT_FILE).read_text())
    (path / EXPERIMENT_FILE).write_text(json.dumps({**settings, "finished": False}))
    return path


def test_the_plan_keeps_finished_trials_and_redoes_the_interrupted_one(in_process, results_dir):
    path = interrupted_run(in_process, results_dir)
    settings = RunSettings(name="cut", n_workers=2, max_num_trials=6, metric="loss",
                           **RunSettings.space_fields(SPACE))
    plan = plan_resume(path, settings)
    assert [t["trial_id"] for t in plan.kept_trials] == [0, 1, 2]
    assert {r["trial_id"] for r in plan.kept_reports} == {0, 1, 2}
    configs = d2l_hpo.sample_configs(SPACE, 6, seed=3)
    # the interrupted trial's configuration
    assert len(plan.redo) == 1 and plan.redo[0]["epochs"] == configs[3]["epochs"]
    assert plan.redo[0]["x"] == pytest.approx(configs[3]["x"], rel=1e-12)
    assert plan.next_trial_id == 4 and plan.state.abandoned == [3]
    assert plan.trials_left == 3 and plan.settings.seed == 3 and plan.state.resumed == 1


def test_a_resumed_run_goes_on_with_the_seeded_sequence(in_process, results_dir):
    interrupted_run(in_process, results_dir)
    fresh = type(in_process)()  # a new backend, as a new session would have
    exp = d2l_hpo.run_random_search(bowl, SPACE, n_workers=2, max_num_trials=6, metric="loss",
                                    name="cut", backend=fresh, results_dir=results_dir,
                                    resume=True, progress=False)
    configs = d2l_hpo.sample_configs(SPACE, 6, seed=3)
    assert list(exp.trials["trial_id"]) == [0, 1, 2, 4, 5, 6]  # 3 was redone as 4
    # kept 0-2, then the redo of 3, then the sequence goes on where it stopped
    assert exp.trials["config_epochs"].tolist() == [c["epochs"] for c in configs]
    assert exp.trials["config_x"].tolist() == pytest.approx([c["x"] for c in configs], rel=1e-12)
    assert set(exp.trials["status"]) == {"completed"} and exp.settings["resumed"] == 1


def test_resuming_with_other_settings_is_refused_by_name(in_process, results_dir):
    path = interrupted_run(in_process, results_dir)
    for change, words in ((dict(n_workers=3), "its n_workers was 2, now 3"),
                          (dict(seed=9), "seed=9")):
        settings = RunSettings(**{**dict(name="cut", n_workers=2, max_num_trials=6,
                                         metric="loss", **RunSettings.space_fields(SPACE)),
                                  **change})
        with pytest.raises(ValueError, match=words):
            plan_resume(path, settings)


# --- issue 25: resume touches nothing of another search, and refuses another space ------
def fake_trial_process():
    """A live process whose command line looks like one of our trials (as a trial of
    another, unrelated search would)."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "_trial_main.py"])


def mark_running(path, trial_id, pid, pid_started):
    trials = pd.read_csv(path / TRIALS_FILE)
    row = trials["trial_id"] == trial_id
    trials.loc[row, ["pid", "pid_started"]] = [pid, pid_started]
    trials.loc[row, "node"] = trials.loc[trials.index[0], "node"]
    trials.to_csv(path / TRIALS_FILE, index=False)


def test_resume_never_kills_a_process_that_only_reuses_a_recorded_pid(in_process, results_dir):
    from d2l_hpo.backends.local import kill_leftover_trials
    from d2l_hpo.common.files import process_start_time

    path = interrupted_run(in_process, results_dir)
    other = fake_trial_process()  # it got the pid the interrupted trial once had
    try:
        settings = RunSettings(name="cut", n_workers=2, metric="loss", max_num_trials=6,
                               **RunSettings.space_fields(SPACE))
        mark_running(path, 3, other.pid, process_start_time(other.pid) - 50.0)
        assert kill_leftover_trials(plan_resume(path, settings).leftovers) == []
        assert other.poll() is None, "resume killed a process that was not its trial"
        # the very process recorded (same pid, same start time) is still cleaned up
        mark_running(path, 3, other.pid, process_start_time(other.pid))
        assert kill_leftover_trials(plan_resume(path, settings).leftovers) == [other.pid]
        assert other.wait(timeout=10) is not None
    finally:
        other.kill()
        other.wait()


def test_resuming_with_a_changed_domain_is_refused_by_name(in_process, results_dir):
    path = interrupted_run(in_process, results_dir)
    wider = {**SPACE, "x": d2l_hpo.search.spaces.loguniform(0.01, 2.0)}
    with pytest.raises(ValueError, match=r"searched 'x' over Float\(lower=0.01, upper=1.0\)"
                                         r", LogUniform, now over Float\(lower=0.01, upper=2.0\)"):
        d2l_hpo.run_random_search(bowl, wider, n_workers=2, max_num_trials=6, metric="loss",
                                  name="cut", resume=True, backend=in_process,
                                  results_dir=results_dir, progress=False)
    linear = {**SPACE, "x": d2l_hpo.search.spaces.uniform(0.01, 1.0)}
    with pytest.raises(ValueError, match="searched 'x' over .*LogUniform, now over .*, Uniform"):
        d2l_hpo.run_random_search(bowl, linear, n_workers=2, max_num_trials=6, metric="loss",
                                  name="cut", resume=True, backend=in_process,
                                  results_dir=results_dir, progress=False)
    assert "interrupted" not in set(pd.read_csv(path / TRIALS_FILE)["status"])  # untouched


# --- moved from test_adversarial.py (misuse of this module) ---
@pytest.mark.slow
def test_resume_runs_the_objective_given_now_and_says_it_changed(results_dir):
    quick(first_version, results_dir, name="fix-and-go-on")
    exp = quick(fixed_version, results_dir, name="fix-and-go-on", resume=True,
                max_num_trials=4)
    errors = exp.results.groupby("trial_id")["validation_error"].first().to_dict()
    assert errors == {0: 1.0, 1: 1.0, 2: 2.0, 3: 2.0}  # the new code, not the stored one
    write_report(exp)
    summary = (exp.path / "summary.md").read_text()
    assert "The objective changed since the earlier run" in summary
    assert "trials from 2 on run the objective given now (fixed-version)" in summary
