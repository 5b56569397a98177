"""Warm trial processes (the default): forked from a process that imported torch once,
yet each trial starts from fresh state, as a new interpreter would."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from syne_tune.config_space import uniform

import d2l_hpo
from d2l_hpo import run_random_search
from d2l_hpo.backends import SubprocessBackend, _warm_pool
from d2l_hpo.backends._common import imported_modules

pytestmark = pytest.mark.slow


def state_objective(x: float):
    import sys

    preloaded = "torch" in sys.modules  # before this trial imported anything
    import json
    import os
    import random

    import numpy as np
    import psutil
    import torch
    from syne_tune import Reporter

    leftover = getattr(json, "_left_by_a_trial", 0)
    json._left_by_a_trial = 1  # a module global the next trial must not see
    parent = psutil.Process(os.getppid()).cmdline()
    Reporter()(validation_error=x, leftover=leftover, env=os.environ.get("LEFT_BY_A_TRIAL", "unset"),
               numpy_draw=float(np.random.rand()), python_draw=random.random(),
               torch_draw=float(torch.rand(1)), torch_threads=torch.get_num_threads(),
               parent=" ".join(parent), pid=os.getpid(), preloaded=preloaded)
    os.environ["LEFT_BY_A_TRIAL"] = "yes"


def run(tmp_path, warm):
    backend = SubprocessBackend(state_objective, {"x": uniform(0, 1)}, threads_per_trial=2,
                                warm_start=warm)
    exp = run_random_search(state_objective, {"x": uniform(0, 1)}, n_workers=1,
                            max_num_trials=4, seed=0, backend=backend, results_dir=tmp_path,
                            progress=False)
    assert (exp.trials["status"] == "completed").all()
    return exp.results


def test_the_objectives_imports_are_found():
    assert imported_modules(state_objective)[:5] == ["sys", "json", "os", "random", "numpy"]
    assert "torch" in imported_modules(state_objective)


def test_each_warm_trial_starts_from_fresh_state(tmp_path):
    results = run(tmp_path, warm=True)
    # forked from a process that had imported torch before any trial ran
    assert results["preloaded"].all()
    assert results["parent"].nunique() == 1  # the same parent for every trial
    assert results["pid"].nunique() == 4  # one process per trial
    assert (results["leftover"] == 0).all() and (results["env"] == "unset").all()
    for column in ("numpy_draw", "python_draw", "torch_draw"):  # fresh seeds each time
        assert results[column].nunique() == 4, column
    assert (results["torch_threads"] == 2).all()


def test_cold_trials_are_new_interpreters(tmp_path):
    results = run(tmp_path, warm=False)
    assert not results["preloaded"].any()  # a new interpreter imports everything itself
    assert (results["leftover"] == 0).all() and (results["env"] == "unset").all()
    assert (results["torch_threads"] == 2).all()


def test_the_fork_server_waits_warm_for_the_next_search_until_shutdown(tmp_path):
    d2l_hpo.shutdown()
    # under pytest-xdist this process ran other tests before: only what this run starts
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}

    def started():
        return [p for p in psutil.Process(os.getpid()).children(recursive=True)
                if p.pid not in before and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]

    run(tmp_path, warm=True)
    left = started()
    assert [p.pid for p in left] == [s.process.pid for s in _warm_pool.pooled()], \
        [" ".join(p.cmdline())[:200] for p in left]
    assert "d2l_hpo.backends._forkserver" in " ".join(left[0].cmdline())
    d2l_hpo.shutdown()
    assert started() == []
    assert _warm_pool.pooled() == []


def sleeper(seconds: float):
    import time

    from syne_tune import Reporter
    time.sleep(seconds)
    Reporter()(validation_error=seconds)


def test_the_tuner_is_woken_when_a_forked_trial_ends(tmp_path):
    backend = SubprocessBackend(sleeper, {"seconds": 0.3})
    backend.set_path(results_root=str(tmp_path))
    backend.warm_up()
    try:
        trial = backend.start_trial({"seconds": 0.3})
        start = time.monotonic()
        while backend.busy_trial_ids():
            backend.wait_for_change(60)  # returns when the trial ends, not after 60 s
            assert time.monotonic() - start < 30
        status, _ = backend.fetch_status_results([trial.trial_id])
        assert status[trial.trial_id][1] == "Completed"
    finally:
        backend.stop_all()
    # with nothing running and nothing ending, it sleeps its full time
    backend.start_server()
    start = time.monotonic()
    backend.wait_for_change(0.3)
    assert time.monotonic() - start >= 0.25
    backend.stop_server()


# --- issue 16: a single-threaded server, kept warm between searches ---------------------
def heavy_imports(x: float):
    import os

    import numpy as np
    import syne_tune
    import torch
    from syne_tune import Reporter
    from threadpoolctl import threadpool_info

    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    np.linalg.inv(np.eye(200) + x)  # uses BLAS
    Reporter()(validation_error=x, torch_threads=torch.get_num_threads(),
               blas_threads=min(blas) if blas else -1, parent=os.getppid(),
               st=syne_tune.__name__)


def fork_servers() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children():
        try:
            if "d2l_hpo.backends._forkserver" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            pass
    return found


def search(tmp_path, objective, space, threads=1, trials=3, **kwargs):
    backend = SubprocessBackend(objective, space, threads_per_trial=threads)
    return run_random_search(objective, space, n_workers=1, max_num_trials=trials, seed=0,
                             backend=backend, results_dir=tmp_path, progress=False, **kwargs)


def test_the_fork_server_has_one_thread_whenever_it_forks(tmp_path):
    """With torch, numpy and Syne Tune imported and 2 threads per trial, the server
    stays single-threaded (no jemalloc or BLAS threads); each trial has its 2."""
    import threading

    d2l_hpo.shutdown()
    seen, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            for server in fork_servers():
                try:
                    seen.append(len(os.listdir(f"/proc/{server.pid}/task")))
                except OSError:
                    pass
            time.sleep(0.01)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        exp = search(tmp_path, heavy_imports, {"x": uniform(0, 1)}, threads=2, trials=4)
    finally:
        stop.set()
        watcher.join()
    assert (exp.trials["status"] == "completed").all()
    assert len(seen) > 10 and set(seen) == {1}, seen
    assert (exp.results["torch_threads"] == 2).all()
    assert (exp.results["blas_threads"] == 2).all()  # set after the fork
    assert exp.results["parent"].nunique() == 1  # all forked by the one server
    d2l_hpo.shutdown()


def test_trials_start_as_fresh_interpreters_where_forking_is_not_safe(tmp_path, monkeypatch):
    monkeypatch.setenv("D2L_HPO_START", "fresh")
    assert not _warm_pool.fork_is_safe()
    d2l_hpo.shutdown()
    exp = search(tmp_path, state_objective, {"x": uniform(0, 1)}, threads=2, trials=3)
    assert (exp.trials["status"] == "completed").all()
    results = exp.results
    assert not results["preloaded"].any()  # each trial imported torch itself
    assert results["pid"].nunique() == 3 and (results["torch_threads"] == 2).all()
    assert not any("_forkserver" in parent for parent in results["parent"])  # the tuner's
    assert fork_servers() == [] and exp.settings["warm_server"] == ""
    monkeypatch.delenv("D2L_HPO_START")
    monkeypatch.setattr("sys.platform", "darwin")  # macOS: forking after torch is unsafe
    assert not _warm_pool.fork_is_safe()
    assert not SubprocessBackend(state_objective, {"x": 0.5}).warm_start


def reports_parent(x: float):
    import os

    from syne_tune import Reporter

    import lesson_helpers

    Reporter()(validation_error=x, parent=os.getppid(), helper=lesson_helpers.VERSION)


def test_the_warm_server_is_reused_and_replaced_when_a_module_it_imported_changes(
        tmp_path, monkeypatch):
    lesson = tmp_path / "lesson"
    lesson.mkdir()
    (lesson / "lesson_helpers.py").write_text("VERSION = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(lesson))
    d2l_hpo.shutdown()
    space = {"x": uniform(0, 1)}
    first = search(tmp_path / "runs", reports_parent, space, trials=2)
    second = search(tmp_path / "runs", reports_parent, space, threads=2, trials=2)
    assert first.settings["warm_server"] == "started"
    assert second.settings["warm_server"] == "reused"  # another thread budget: no matter
    assert set(first.results["parent"]) == set(second.results["parent"])
    assert (second.results["helper"] == 1).all()
    (lesson / "lesson_helpers.py").write_text("VERSION = 2  # edited\n")  # the lesson changes
    third = search(tmp_path / "runs", reports_parent, space, trials=2)
    assert third.settings["warm_server"] == "started"
    assert (third.results["helper"] == 2).all()  # the new code runs
    assert set(third.results["parent"]).isdisjoint(set(second.results["parent"]))
    # other GPUs visible: another server (it would hand its trials the wrong devices)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    fourth = search(tmp_path / "runs", reports_parent, space, trials=2)
    assert fourth.settings["warm_server"] == "started"
    assert len(_warm_pool.pooled()) == 2  # kept for either setting
    d2l_hpo.shutdown()
    assert fork_servers() == []


def test_the_set_up_before_the_clock_is_recorded_and_said(tmp_path, capsys):
    d2l_hpo.shutdown()
    first = search(tmp_path, state_objective, {"x": uniform(0, 1)}, trials=1)
    again = search(tmp_path, state_objective, {"x": uniform(0, 1)}, trials=1)
    for exp in (first, again):
        assert exp.setup_time > 0 and exp.call_time == exp.setup_time + exp.wallclock
        assert exp.summary()["setup_time"] == round(exp.setup_time, 2)
    assert (first.settings["warm_server"], again.settings["warm_server"]) == ("started", "reused")
    from d2l_hpo.report import write_report

    write_report(again)
    summary = (again.path / "summary.md").read_text()
    assert f"set-up before the clock: {again.setup_time:.1f} s (a warm trial server" in summary
    run_random_search(state_objective, {"x": 0.5}, n_workers=1, max_num_trials=1,
                      results_dir=tmp_path, progress=True)
    first_line = capsys.readouterr().err.splitlines()[0]
    assert "set-up" in first_line and "before the clock (warm trial server reused)" in first_line


EXITING_SCRIPT = """
import sys
from d2l_hpo import run_random_search
from d2l_hpo.backends import _warm_pool

def quick(x: float):
    from syne_tune import Reporter
    Reporter()(validation_error=x)

run_random_search(quick, {"x": 0.5}, n_workers=1, max_num_trials=1, results_dir=sys.argv[1],
                  progress=False)
print([s.process.pid for s in _warm_pool.pooled()], flush=True)
"""


def test_the_warm_server_ends_when_the_interpreter_exits(tmp_path):
    import ast
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXITING_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    pids = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert len(pids) == 1  # it was kept warm until the exit

    def running(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    deadline = time.time() + 10
    while running(pids[0]) and time.time() < deadline:
        time.sleep(0.05)
    assert not running(pids[0])


# --- moved from test_adversarial.py (misuse of this module) ---
INTERRUPTED_WARM_UP = textwrap.dedent("""
    import signal, sys, time, psutil
    # Ctrl-C as in a terminal: a test suite started as a background job without job
    # control (nohup make test &, some CI runners) hands its processes SIGINT ignored,
    # and Python then keeps it ignored: this script would never see the Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from d2l_hpo import run_random_search
    from syne_tune.config_space import uniform

    def heavy(x):
        import time
        import torch  # the fork server imports it during the warm-up
        from syne_tune import Reporter
        time.sleep(60)  # the search cannot end before the signal
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
    script.send_signal(signal.SIGINT)  # while the server still imports torch (mostly)
    out, err = script.communicate(timeout=60)
    assert "children left 0" in out, (script.returncode, out[-500:], err[-2000:])
