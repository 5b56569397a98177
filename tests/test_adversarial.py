"""What an adversarial but realistic user does (issue 14), through real trial processes:
nothing run from stale code, no two runs in one folder, no table column overwritten,
bad input refused before any folder exists, every error naming its cause."""
import functools
import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from d2l_hpo import load_experiment, run_random_search
from d2l_hpo.report import write_report
from d2l_hpo.run.settings import default_name
from d2l_hpo.search.spaces import choice, uniform

pytestmark = pytest.mark.slow
SPACE = {"x": uniform(0.0, 1.0)}


def first_version(x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=1.0)


def fixed_version(x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=2.0)


def quick(objective, results_dir, space=SPACE, **kwargs):
    args = dict(n_workers=1, max_num_trials=2, seed=0, results_dir=results_dir,
                progress=False)
    args.update(kwargs)
    return run_random_search(objective, space, **args)


# 1 --------------------------------------------------------------------------------------
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


# 2 --------------------------------------------------------------------------------------
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


def test_a_claim_left_by_a_dead_process_is_stale(results_dir):
    folder = results_dir / "orphan"
    folder.mkdir(parents=True)
    (folder / ".owner").write_text("999999999 12.000")  # no such process
    exp = quick(first_version, results_dir, name="orphan")
    assert len(exp.trials) == 2 and not (folder / ".owner").exists()


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


# 3 --------------------------------------------------------------------------------------
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


def test_a_reported_time_does_not_move_the_clock(results_dir):
    exp = quick(reports_time, results_dir)
    assert exp.wallclock < 600
    assert (exp.results["reported_time"] == 3600.0).all()
    assert exp.results["time"].max() < 600


# 6 and 11 -----------------------------------------------------------------------------
def prints_bytes(kind, x):
    import sys

    from syne_tune import Reporter

    sys.stdout.buffer.write(b"caf\xe9 \xff\xfe not UTF-8\n")
    sys.stdout.flush()
    sys.stderr.buffer.write(b"\xff\xfe on stderr too\n")
    sys.stderr.flush()
    Reporter()(epoch=1, validation_error=float(x))
    if kind == "raise":
        raise ValueError("the real cause")
    if kind == "exit":
        sys.exit("learning rate out of range")


def test_output_that_is_not_utf8_and_sys_exit_messages_are_kept(results_dir):
    exp = quick(prints_bytes, results_dir, space={"kind": choice(["ok", "raise", "exit"]),
                                                  "x": uniform(0, 1)},
                max_num_trials=3, max_failures=5,
                initial_config={"kind": "raise", "x": 0.5})
    statuses = dict(zip(exp.trials["config_kind"], exp.trials["status"]))
    errors = dict(zip(exp.trials["config_kind"], exp.trials["error"]))
    assert statuses.get("ok", "completed") == "completed"
    assert statuses["raise"] == "failed" and "ValueError: the real cause" in errors["raise"]
    second = quick(prints_bytes, results_dir, space={"kind": "exit", "x": uniform(0, 1)},
                   max_num_trials=1, max_failures=5, name="exits")
    assert "learning rate out of range" in second.trials["error"].iloc[0]
    assert len(exp.results) == 3  # every trial's report survived the bad bytes


# 10 -------------------------------------------------------------------------------------
class Model:
    def fit(self, x):
        from syne_tune import Reporter

        Reporter()(validation_error=float(x))


def with_offset(x, offset):
    from syne_tune import Reporter

    Reporter()(validation_error=float(x) + offset)


def test_a_bound_method_or_a_partial_is_refused_up_front(results_dir):
    with pytest.raises(TypeError, match="bound method.*top-level function"):
        quick(Model().fit, results_dir)
    with pytest.raises(TypeError, match="functools.partial or a callable object"):
        quick(functools.partial(with_offset, offset=1.0), results_dir)
    assert not results_dir.exists()


# 12 and 13 ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [dict(seed=-1), dict(seed=1.5), dict(seed="abc"),
                                 dict(seed=True), dict(max_num_trials=True),
                                 dict(max_failures=True), dict(n_workers=2.0),
                                 dict(max_wallclock_time=float("nan")),
                                 dict(name="x" * 300), dict(name="../escape")])
def test_bad_settings_are_refused_before_any_folder_exists(results_dir, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        quick(first_version, results_dir, **bad)
    assert not results_dir.exists()


def test_numpy_integers_work_as_settings_and_are_stored_as_json(results_dir):
    exp = quick(first_version, results_dir, seed=np.int64(5), n_workers=np.int64(2),
                max_num_trials=np.int32(2))
    stored = json.loads((exp.path / "experiment.json").read_text())
    assert stored["seed"] == 5 and stored["n_workers"] == 2
    assert len(exp.trials) == 2


def test_results_dir_with_a_tilde_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    exp = quick(first_version, "~/my-runs", name="home")
    assert exp.path == tmp_path / "home" / "my-runs" / "home"
    assert not (tmp_path / "~").exists()  # not a folder named "~" here
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="a-file is a file"):
        quick(first_version, tmp_path / "a-file" / "runs")


def test_default_names_are_valid_for_lambdas_and_non_ascii_functions(results_dir):
    assert default_name("<lambda>", "20261128-1") == "lambda-20261128-1"
    assert default_name("λfit_model", "1") == "fit-model-1"
    assert default_name("λ", "1") == "objective-1"
    exp = quick(lambda x: __import__("syne_tune").Reporter()(validation_error=float(x)),
                results_dir)
    assert exp.name.startswith("lambda-")
    assert len(exp.trials) == 2
    # the name it printed for a resume is one that resume accepts
    again = quick(lambda x: __import__("syne_tune").Reporter()(validation_error=float(x)),
                  results_dir, name=exp.name, resume=True, max_num_trials=3)
    assert len(again.trials) == 3



# 4 and 5 --------------------------------------------------------------------------------
def coded(code, x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=float(x) + len(code))


def test_strings_that_look_like_numbers_read_back_as_written(results_dir):
    space = {"code": choice(["007", "08", ""]), "x": uniform(0, 1)}
    exp = quick(coded, results_dir, space=space, max_num_trials=5, name="codes",
                initial_config={"code": "007", "x": 0.5})
    codes = exp.trials["config_code"].tolist()
    assert codes[0] == "007" and all(isinstance(c, str) for c in codes), codes
    assert set(codes) <= {"007", "08", ""}
    assert exp.best_config["code"] in {"007", "08", ""}
    # a resume hands the values back to Syne Tune, which checks them against the choices
    again = quick(coded, results_dir, space=space, max_num_trials=7, name="codes",
                  resume=True)
    assert again.trials["config_code"].tolist()[:5] == codes and len(again.trials) == 7


def coded_for_epochs(code, x, epochs):
    from syne_tune import Reporter

    Reporter()(epoch=epochs, validation_error=float(x) + len(code))


def test_an_initial_config_must_give_every_searched_key_and_leave_constants(results_dir):
    space = {"x": uniform(0, 1), "code": choice(["a", "b"]), "epochs": 3}
    with pytest.raises(ValueError, match=r"initial_config lacks \['code'\]"):
        quick(coded_for_epochs, results_dir, space=space, initial_config={"x": 0.5})
    with pytest.raises(ValueError, match="'epochs'=5, but the config space fixes it to 3"):
        quick(coded_for_epochs, results_dir, space=space,
              initial_config={"x": 0.5, "code": "a", "epochs": 5})
    assert not results_dir.exists()


# 14 -------------------------------------------------------------------------------------
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
def test_a_damaged_file_is_an_error_that_names_it(finished, tmp_path, file, text, words):
    copy = damaged_copy(finished, tmp_path, file, text)
    with pytest.raises(ValueError, match=re.escape(words)):
        load_experiment(copy)
    done = subprocess.run([sys.executable, "-m", "d2l_hpo", "plot", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and file in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("file", ["trials.csv", "results.csv"])
def test_a_table_cut_at_a_row_boundary_is_found(finished, tmp_path, file):
    lines = (finished / file).read_text().splitlines(keepends=True)
    assert len(lines) == 3  # a header and the two trials' rows
    copy = damaged_copy(finished, tmp_path, file, "".join(lines[:2]))
    with pytest.raises(ValueError, match=re.escape(f"{file} has 1 rows, but the run wrote 2")):
        load_experiment(copy)
    assert len(load_experiment(finished).trials) == 2  # the original reads as before


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


def test_compare_and_choice_name_the_mistake():
    from d2l_hpo.experiment.analysis import compare

    with pytest.raises(ValueError, match="at least one experiment"):
        compare([])
    with pytest.raises(ValueError, match=r"one type, got \['float', 'int'\]"):
        choice([1, 2.5])


# 9 and 15 -------------------------------------------------------------------------------
def imitates_reports(x):
    from syne_tune import Reporter

    print('[tune-metric]: {"validation_error": 0.0}')  # no time stamp: not a report
    print("[tune-metric]: {broken")
    Reporter()(epoch=1, validation_error=float(x))


def test_lines_that_imitate_a_report_do_not_end_the_run(results_dir):
    exp = quick(imitates_reports, results_dir, max_num_trials=3)
    assert set(exp.trials["status"]) == {"completed"} and len(exp.trials) == 3
    assert len(exp.results) == 3 and exp.best_value > 0.0  # the fake 0.0 was not taken


def test_the_backend_reads_only_what_is_new_in_a_trial_log(tmp_path):
    from d2l_hpo.backends.local import SubprocessBackend

    backend = SubprocessBackend(first_version, SPACE)
    backend.set_path(results_root=str(tmp_path))
    log = backend.trial_path(0) / "std.out"
    log.parent.mkdir(parents=True)
    report = '[tune-metric]: {"validation_error": %s, "st_worker_timestamp": 1.0}\n'
    log.write_bytes(b"noise \xff\n" + (report % "0.5").encode() + b"[tune-metric]: {bad\n")
    assert [r["validation_error"] for r in backend.reports(0)] == [0.5]
    assert backend.malformed_reports(0) == 1
    with open(log, "r+b") as f:  # rewrite what was read: a re-read would see 0.9
        f.seek(len(b"noise \xff\n"))
        f.write((report % "0.9").encode())
    with open(log, "ab") as f:  # then a report arrives in two pieces
        f.write((report % "0.25").encode()[:20])
    assert [r["validation_error"] for r in backend.reports(0)] == [0.5]
    with open(log, "ab") as f:
        f.write((report % "0.25").encode()[20:])
    assert [r["validation_error"] for r in backend.reports(0)] == [0.5, 0.25]


# 7 --------------------------------------------------------------------------------------
def leaves_processes(x, seconds):
    import subprocess

    from syne_tune import Reporter

    subprocess.Popen(["sleep", str(seconds)])  # never waited for
    subprocess.Popen(["sh", "-c", f"sleep {seconds + 0.5} &"])  # an orphan of an orphan
    Reporter()(epoch=1, validation_error=float(x))


def sleeping(seconds):
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline[:1] == ["sleep"] and cmdline[1:] in ([str(seconds)], [str(seconds + 0.5)]):
            found.append(process)
    return found


@pytest.mark.parametrize("warm_start", [True, False])
def test_processes_a_completed_trial_left_running_are_killed(results_dir, warm_start):
    from d2l_hpo.backends.local import SubprocessBackend

    seconds = 91.25 if warm_start else 92.25  # to recognise them
    space = {"x": uniform(0, 1), "seconds": seconds}
    backend = SubprocessBackend(leaves_processes, space, warm_start=warm_start)
    exp = quick(leaves_processes, results_dir, space=space, backend=backend)
    assert set(exp.trials["status"]) == {"completed"}
    deadline = time.time() + 5
    while sleeping(seconds) and time.time() < deadline:
        time.sleep(0.1)
    assert sleeping(seconds) == []


# 8 --------------------------------------------------------------------------------------
INTERRUPTED_WARM_UP = textwrap.dedent("""
    import sys, time, psutil
    from d2l_hpo import run_random_search
    from syne_tune.config_space import uniform

    def heavy(x):
        import torch  # the fork server imports it during the warm-up
        from syne_tune import Reporter
        Reporter()(validation_error=float(x))

    try:
        run_random_search(heavy, {"x": uniform(0, 1)}, n_workers=1, max_num_trials=1,
                          results_dir=sys.argv[1], progress=False)
    except KeyboardInterrupt:
        deadline = time.time() + 5
        while psutil.Process().children() and time.time() < deadline:
            time.sleep(0.1)
        print("children left", len(psutil.Process().children()), flush=True)
""")


def test_ctrl_c_during_the_warm_up_leaves_no_fork_server(tmp_path):
    import psutil

    script = subprocess.Popen([sys.executable, "-c", INTERRUPTED_WARM_UP, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any("_forkserver" in " ".join(p.cmdline())
                  for p in psutil.Process(script.pid).children()):
        assert script.poll() is None and time.time() < deadline
        time.sleep(0.02)
    script.send_signal(signal.SIGINT)  # while the server still imports torch
    out, err = script.communicate(timeout=60)
    assert "children left 0" in out, err[-2000:]


# 10 -------------------------------------------------------------------------------------
def helper(x):
    return x


def uses_a_module_global(x):
    from syne_tune import Reporter

    Reporter()(validation_error=helper(x))  # helper is not shipped with the objective


def reports_a_tensor(x):
    import torch
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=torch.tensor(float(x)))


def imports_a_missing_module(x):
    import a_module_that_is_not_installed

    a_module_that_is_not_installed.train(x)


def test_too_many_failures_name_the_error_not_a_missing_report(results_dir):
    from d2l_hpo.run.runner import TooManyFailuresError

    with pytest.raises(TooManyFailuresError) as info:
        quick(imports_a_missing_module, results_dir, max_num_trials=5, max_failures=1,
              name="missing")
    text = str(info.value)
    assert "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'" in text
    assert "into a package the trials can import" in text
    assert "without reporting" not in text


def test_errors_name_the_cause_when_no_trial_reported(results_dir):
    from d2l_hpo.run.runner import MetricNotReportedError

    with pytest.raises(MetricNotReportedError) as info:
        quick(uses_a_module_global, results_dir, max_failures=5, name="global")
    text = str(info.value)
    assert "every trial failed (2)" in text and "NameError: name 'helper'" in text
    assert "put imports and helper functions inside the objective" in text
    with pytest.raises(MetricNotReportedError) as info:
        quick(reports_a_tensor, results_dir, max_failures=5, name="tensor")
    assert "reported 'validation_error', but never as a number" in str(info.value)
    assert "validation_error=float(value)" in str(info.value)


# 20 -------------------------------------------------------------------------------------
def shows_its_gpus(x):
    import os

    from syne_tune import Reporter

    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    Reporter()(epoch=1, validation_error=float(x))


def test_the_local_backend_takes_syne_tunes_gpu_and_checkpoint_settings(tmp_path):
    from syne_tune.backend.trial_status import Status

    from d2l_hpo.backends import SubprocessBackend

    for bad, words in [({"num_gpus_per_trial": 0}, "num_gpus_per_trial must be an integer"),
                       ({"gpus_to_use": [1, 1]}, "lists a GPU twice"),
                       ({"gpus_to_use": "0,1"}, "must be a list of GPU indices"),
                       ({"gpus_to_use": [-1]}, "indices >= 0")]:
        with pytest.raises(ValueError, match=words):
            SubprocessBackend(shows_its_gpus, SPACE, **bad)
    backend = SubprocessBackend(shows_its_gpus, SPACE, gpus_to_use=[1, 3],
                                num_gpus_per_trial=1, delete_checkpoints=True)
    assert backend.delete_checkpoints
    backend.set_path(results_root=str(tmp_path))
    backend._prepare_for_schedule(num_gpus=4)  # as on a machine with four GPUs
    try:
        for _ in range(2):
            backend.start_trial({"x": 0.5})
        deadline = time.time() + 60
        while len(backend.busy_trial_ids()) and time.time() < deadline:
            time.sleep(0.1)
        seen = {line.strip() for i in (0, 1) for line in backend.stdout(i)
                if line.startswith("CUDA")}
        assert seen == {"CUDA_VISIBLE_DEVICES=1", "CUDA_VISIBLE_DEVICES=3"}
        status, _ = backend.fetch_status_results([0, 1])
        assert {s for _, s in status.values()} == {Status.completed}
    finally:
        backend.stop_server()
    # on this machine (no GPU named 5): said before the first trial starts
    other = SubprocessBackend(shows_its_gpus, SPACE, gpus_to_use=[5])
    other.set_path(results_root=str(tmp_path / "other"))
    with pytest.raises(ValueError, match=r"gpus_to_use=\[5\]"):
        other._prepare_for_schedule(num_gpus=2)


# 10, the other causes ------------------------------------------------------------------
def sleeps_then_reports(x):
    import time

    from syne_tune import Reporter

    time.sleep(30)
    Reporter()(epoch=1, validation_error=float(x))


def test_errors_name_the_cause_when_trials_ran_out_of_time(results_dir):
    from d2l_hpo.run.runner import MetricNotReportedError

    with pytest.raises(MetricNotReportedError, match="every trial ran past max_trial_time=1"):
        quick(sleeps_then_reports, results_dir, max_trial_time=1, name="slow-trials")
    with pytest.raises(MetricNotReportedError,
                       match="the budget ran out before any trial reported 'validation_error'"):
        quick(sleeps_then_reports, results_dir, max_num_trials=None, max_wallclock_time=2,
              name="short-budget")
