"""The Ray backend on a real multi-node Ray cluster (several Ray nodes on this machine).

Every node binds 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, see the design
notes). The cluster (conftest.py's ``ray_nodes``) is started once and shared with the
backend contract's Ray tests; the last test here shuts it down and checks that no Ray
process is left behind.
"""

import threading
import time

import psutil
import pytest

ray = pytest.importorskip("ray", reason="the Ray backend is the optional extra 'ray'")

from syne_tune.backend.trial_status import Status  # noqa: E402
from syne_tune.config_space import choice, uniform  # noqa: E402
from syne_tune.report import retrieve  # noqa: E402

from d2l_hpo import run_random_search  # noqa: E402
from d2l_hpo.backends import RayBackend  # noqa: E402
from d2l_hpo.backends._ray_cluster import COLLECTOR_PREFIX  # noqa: E402
from d2l_hpo.plots import worker_timeline  # noqa: E402
from conftest import RAY_NODE_CPUS  # noqa: E402

pytestmark = pytest.mark.ray

NODE_CPUS = RAY_NODE_CPUS  # the shared cluster's nodes (conftest.py)
RAY_PROCESS_NAMES = ("raylet", "gcs_server", "plasma_store", "ray::", "default_worker.py",
                     "dashboard", "log_monitor", "monitor.py", "runtime_env_agent")


def ray_processes() -> dict[int, str]:
    """The Ray processes this test started (its descendants), by pid; another Ray on
    the machine (a CI neighbour's) is none of our business."""
    found = {}
    for process in psutil.Process().children(recursive=True):
        try:
            text = " ".join([process.name(), *process.cmdline()])
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if any(name in text for name in RAY_PROCESS_NAMES):
            found[process.pid] = f"{process.pid}: {text[:120]}"
    return found


def still_running(pids: dict[int, str]) -> list[str]:
    left = []
    for pid, text in pids.items():
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(text)
        except psutil.Error:
            pass
    return left


@pytest.fixture
def cluster(ray_nodes):
    """The Ray tests' shared cluster (conftest.py's ``ray_nodes``)."""
    return ray_nodes


# --- objectives: top level, imports inside ---------------------------------------------
def epochs_objective(x: float, epochs: int = 4, pause: float = 0.05):
    import time

    from syne_tune import Reporter

    report = Reporter()
    started = time.time()
    print(f"hello from x={x}")
    for epoch in range(1, epochs + 1):
        time.sleep(pause)
        report(epoch=epoch, score=x * epoch, started=started, now=time.time())


def flaky_objective(x: float, fail: str = "no"):
    import os
    import time

    from syne_tune import Reporter

    report = Reporter()
    report(epoch=1, score=x)
    if fail == "raise":
        raise FloatingPointError(f"loss exploded for x={x}")
    if fail == "crash":
        os._exit(3)
    if fail == "hang":
        time.sleep(600)
    report(epoch=2, score=2 * x)


def node_ids(prefix=8) -> set[str]:
    return {n["NodeID"][:prefix] for n in ray.nodes() if n["Alive"]}


def check_reports_complete(exp, epochs):
    for trial_id in exp.trials.query("status == 'completed'")["trial_id"]:
        rows = exp.results[exp.results["trial_id"] == trial_id]
        assert rows["epoch"].tolist() == list(range(1, epochs + 1)), trial_id


# --- through run_random_search ---------------------------------------------------------
@pytest.mark.parametrize("scheduling", ["async", "sync"])
def test_trials_run_on_several_nodes(cluster, tmp_path, scheduling):
    backend = RayBackend(address="auto")
    exp = run_random_search(epochs_objective, {"x": uniform(0, 1), "epochs": 4, "pause": 0.1},
                            n_workers=6, max_num_trials=12, scheduling=scheduling, seed=1,
                            metric="score", mode="max", backend=backend,
                            results_dir=tmp_path, progress=False)
    assert (exp.trials["status"] == "completed").all() and len(exp.trials) == 12
    nodes = set(exp.trials["node"])
    assert len(nodes) >= 2 and nodes <= node_ids(), nodes
    assert exp.trials["pid"].notna().all()
    check_reports_complete(exp, 4)
    # each trial's reports were made in order, and reached the table in that order
    for _, rows in exp.results.groupby("trial_id"):
        assert rows["now"].is_monotonic_increasing
    # stdout went to the trial's folder, like the local backend's
    first = exp.trials["trial_id"].iloc[0]
    assert "hello from x=" in (exp.path / str(first) / "std.out").read_text()
    # the worker timeline groups lanes by node
    bars = worker_timeline(exp)
    assert bars["label"].str.startswith("node ").all()
    assert bars.groupby("label")["node"].nunique().max() == 1


def test_a_node_never_runs_more_trials_than_its_cpus(cluster, tmp_path):
    # 2 CPUs a trial: one trial at a time on each 2-CPU node, even with more workers
    backend = RayBackend(address="auto", cpus_per_trial=2)
    assert backend.capacity() == 3
    with pytest.warns(UserWarning, match="room for only 3"):
        exp = run_random_search(epochs_objective,
                                {"x": uniform(0, 1), "epochs": 3, "pause": 0.2},
                                n_workers=5, max_num_trials=9, seed=2, metric="score",
                                mode="max", backend=backend, results_dir=tmp_path,
                                progress=False)
    assert (exp.trials["status"] == "completed").all()
    spans = exp.results.groupby("trial_id").agg(started=("started", "first"), ended=("now", "max"))
    spans = spans.join(exp.trials.set_index("trial_id")["node"])
    assert spans["node"].nunique() == 3
    for node, rows in spans.groupby("node"):
        events = sorted([(t, 1) for t in rows["started"]] + [(t, -1) for t in rows["ended"]],
                        key=lambda e: (e[0], e[1]))
        running = peak = 0
        for _, step in events:
            running += step
            peak = max(peak, running)
        assert peak == 1, f"node {node} ran {peak} trials of 2 CPUs on its 2 CPUs"
    # the trials table agrees: a trial that waited for a free node starts when its node
    # began to run it, so no node shows two trials at once in the worker timeline
    bars = worker_timeline(exp)
    assert (bars.groupby("node")["lane"].nunique() == 1).all(), bars


@ray.remote(num_cpus=0)
class _SlowAnswer:
    def call(self, seconds):
        time.sleep(seconds)
        return seconds


def test_waiting_for_the_collector_keeps_the_tasks_cpus(cluster):
    # A task blocked in ray.get from its main thread lends its CPUs to a queued task
    # (Ray 2.60 started a second 2-CPU task on a 2-CPU node during such a wait): a
    # trial waits for each report's round trip, so with more workers than the nodes
    # have room for, a node ran two trials at once. Four 2-CPU tasks pinned to one
    # 2-CPU node, each waiting three times for a slow answer, must run one at a time.
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from d2l_hpo.backends._ray_worker import wait_holding_cpus

    @ray.remote(num_cpus=2)
    def waits(answer):
        began = time.time()
        for _ in range(3):
            time.sleep(0.1)
            wait_holding_cpus(answer.call.remote(0.4))
        return began, time.time()

    answer = _SlowAnswer.remote()
    node = cluster.head_node.node_id
    spans = sorted(ray.get([
        waits.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        .remote(answer) for _ in range(4)]))
    for (_, first_end), (second_start, _) in zip(spans, spans[1:]):
        assert second_start >= first_end, f"two 2-CPU tasks at once on a 2-CPU node: {spans}"
    # errors still reach the task's own thread
    with pytest.raises(ray.exceptions.RayError):
        @ray.remote
        def fails():
            raise ValueError("no answer")
        wait_holding_cpus(fails.remote())


def _remove_when_busy(cluster, node, node_id, backend, seen: dict):
    """Remove ``node`` once a trial running there has reported (or after 120 s)."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if any(backend.trial_placement(t).node == node_id[:8]
               and any("[tune-metric]" in line for line in backend.stdout(t))
               for t, _ in backend.busy_trial_ids()):
            break
        time.sleep(0.05)
    seen["removed_at"] = time.time()
    cluster.remove_node(node, allow_graceful=False)


@pytest.mark.parametrize("retry", [False, True])
def test_a_node_dying_mid_run(cluster, tmp_path, retry):
    doomed = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    doomed_id = doomed.node_id
    seen = {}
    backend = RayBackend(address="auto", retry_on_node_failure=retry)
    killer = threading.Thread(target=_remove_when_busy,
                              args=(cluster, doomed, doomed_id, backend, seen))
    killer.start()
    try:
        exp = run_random_search(epochs_objective,
                                {"x": uniform(0, 1), "epochs": 6, "pause": 0.4},
                                n_workers=8, max_num_trials=12, seed=3, metric="score",
                                mode="max", backend=backend, results_dir=tmp_path,
                                progress=False, max_failures=8)
    finally:
        killer.join()
    assert "removed_at" in seen
    lost = exp.trials[exp.trials["error"].str.contains("died")]
    assert len(lost) >= 1, exp.trials[["trial_id", "status", "node", "error"]]
    # max_num_trials counts failed trials too; every other trial completed
    assert len(exp.trials) == 12
    assert (exp.trials["status"] == "completed").sum() == 12 - (0 if retry else len(lost))
    check_reports_complete(exp, 6)
    if retry:
        assert (lost["status"] == "completed").all()
        assert lost["error"].str.contains("running the trial again").all()
        assert not (lost["node"] == doomed_id[:8]).any()  # the rerun went elsewhere
    else:
        assert (lost["status"] == "failed").all()
        # where it ran, when the trial said so before its node died (a task placed there
        # may die before its first line runs: then nobody knows, and the node is blank)
        assert (lost["node"] == doomed_id[:8]).any()
        assert lost["node"].isin([doomed_id[:8], ""]).all()
        assert lost["error"].str.contains(doomed_id[:8]).all()
        # what they reported before the node died is kept
        assert exp.results["trial_id"].isin(lost["trial_id"]).any()


def test_failed_and_crashed_trials_carry_their_error(cluster, tmp_path):
    space = {"x": uniform(0, 1), "fail": choice(["no", "raise", "crash"])}
    exp = run_random_search(flaky_objective, space, n_workers=3, max_num_trials=6, seed=4,
                            metric="score", mode="max", backend=RayBackend(address="auto"),
                            results_dir=tmp_path, progress=False, max_failures=20)
    trials = exp.trials.set_index("trial_id")
    for trial_id, row in trials.iterrows():
        if row["config_fail"] == "no":
            assert row["status"] == "completed"
        elif row["config_fail"] == "raise":
            assert row["status"] == "failed"
            assert "FloatingPointError: loss exploded" in row["error"]
        else:
            assert row["status"] == "failed"
            assert "worker process died" in row["error"]
        # every trial reported epoch 1 before anything went wrong, and it is kept
        assert 1 in exp.results.loc[exp.results["trial_id"] == trial_id, "epoch"].tolist()
    assert set(trials["config_fail"]) == {"no", "raise", "crash"}


def test_max_trial_time_stops_a_hung_trial(cluster, tmp_path):
    space = {"x": uniform(0, 1), "fail": choice(["hang"])}
    started = time.time()
    exp = run_random_search(flaky_objective, space, n_workers=2, max_num_trials=2, seed=5,
                            metric="score", mode="max", backend=RayBackend(address="auto"),
                            results_dir=tmp_path, progress=False, max_trial_time=2,
                            max_wallclock_time=60)
    assert time.time() - started < 300  # not the 600 s the trials would hang
    assert (exp.trials["status"] == "timeout").all()  # killed, not cut by the budget


# --- the TrialBackend seam, as Syne Tune checks its local backend -----------------------
def wait_for(backend, trial_ids, statuses, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _ = backend.fetch_status_results(trial_ids)
        if all(status[i][1] in statuses for i in trial_ids):
            return status
        time.sleep(0.05)
    raise AssertionError(f"trials {trial_ids} not in {statuses} after {timeout} s: {status}")


def test_backend_statuses_reports_stdout_and_stop(cluster, tmp_path):
    backend = RayBackend(address="auto")
    backend.bind_objective(flaky_objective, {"x": uniform(0, 1), "fail": "no"})
    backend.set_path(results_root=str(tmp_path))
    done = backend.start_trial({"x": 0.5, "fail": "no"})
    bad = backend.start_trial({"x": 0.25, "fail": "raise"})
    hung = backend.start_trial({"x": 0.75, "fail": "hang"})
    status = wait_for(backend, [done.trial_id, bad.trial_id], {Status.completed, Status.failed})
    assert status[done.trial_id][1] == Status.completed
    assert status[bad.trial_id][1] == Status.failed
    # the hung trial has reported once and is still running
    deadline = time.time() + 30
    while not any("[tune-metric]" in line for line in backend.stdout(hung.trial_id)) \
            and time.time() < deadline:
        time.sleep(0.05)
    assert backend.busy_trial_ids() == [(hung.trial_id, Status.in_progress)]
    backend.stop_trial(hung.trial_id)
    status, _ = backend.fetch_status_results([hung.trial_id])
    assert status[hung.trial_id][1] == Status.stopped
    # stopping freed its CPU at once: every CPU of the cluster is free again
    deadline = time.time() + 10
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        assert time.time() < deadline, ray.available_resources()
        time.sleep(0.1)
    # every report of each trial, in order, through Syne Tune's own accounting
    results = [r for t in (done, bad) for r in retrieve(backend.stdout(t.trial_id))]
    assert [r["score"] for r in results] == [0.5, 1.0, 0.25]
    assert [r["st_worker_iter"] for r in results] == [0, 1, 0]
    assert any("loss exploded" in line for line in backend.stderr(bad.trial_id))
    assert any("[tune-metric]" in line for line in backend.stdout(done.trial_id))
    assert (tmp_path / str(done.trial_id) / "std.out").read_text().count("[tune-metric]") == 2
    placement = backend.placement(done.trial_id)
    assert placement["node"][:8] in node_ids() and placement["pid"] > 0


def test_bad_settings_fail_before_any_work(cluster):
    with pytest.raises(ValueError, match="cpus_per_trial"):
        RayBackend(cpus_per_trial=0)
    with pytest.raises(ValueError, match="gpus_per_trial"):
        RayBackend(gpus_per_trial=-1)
    with pytest.raises(ValueError, match="address"):
        RayBackend(address="")
    with pytest.raises(ValueError, match="no node of the Ray cluster has that many CPUs"):
        RayBackend(address="auto", cpus_per_trial=3).connect()
    with pytest.raises(ValueError, match="GPUs"):
        RayBackend(address="auto", gpus_per_trial=1).connect()


def logging_objective(x: float):
    import logging

    import chatty_module  # gives its logger a handler when first imported
    from syne_tune import Reporter  # importing Syne Tune gives the root logger a handler

    logging.warning(f"root handler made at import: x={x}")
    chatty_module.logger.info(f"chatty handler made at import: x={x}")
    # a root handler of the trial's own, replacing the one made at import
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    logging.getLogger("user.code").info(f"handler the trial added: x={x}")
    Reporter()(score=x)


def test_each_trial_logs_to_its_own_files_and_leaves_no_handler(cluster, tmp_path):
    # trials one after the other: Ray gives later ones the worker an earlier one used
    backend = RayBackend(address="auto")
    exp = run_random_search(logging_objective, {"x": uniform(0, 1)}, n_workers=1,
                            max_num_trials=5, metric="score", backend=backend, seed=0,
                            results_dir=tmp_path, name="logs", progress=False)
    assert exp.trials["status"].tolist() == ["completed"] * 5
    pids = [backend.placement(i)["pid"] for i in exp.trials["trial_id"]]
    assert len(set(pids)) < len(pids), f"no worker ran two trials: {pids}"
    for trial_id, x in zip(exp.trials["trial_id"], exp.trials["config_x"]):
        err = (backend.trial_path(trial_id) / "std.err").read_text()
        lines = [line for line in err.splitlines() if "x=" in line]
        assert len(lines) == 3 and all(line.endswith(f"x={x}") for line in lines), err
        for kind in ("root handler made at import", "chatty handler made at import",
                     "handler the trial added"):
            assert any(kind in line for line in lines), (kind, err)


def writes_bytes(x: float):
    import sys

    from syne_tune import Reporter

    sys.stdout.buffer.write(b"caf\xe9 \xff not UTF-8\n")
    sys.stderr.buffer.write(b"\xfe on stderr too\n")
    Reporter()(score=x)


def test_bytes_that_are_not_utf8_are_kept_with_replacement(cluster, tmp_path):
    backend = RayBackend(address="auto")
    backend.bind_objective(writes_bytes, {"x": uniform(0, 1)})
    backend.set_path(results_root=str(tmp_path))
    backend.start_trial({"x": 0.5})
    status = wait_for(backend, [0], {Status.completed, Status.failed})
    assert status[0][1] == Status.completed, backend.stderr(0)
    assert "caf\ufffd \ufffd not UTF-8\n" in backend.stdout(0)
    assert "\ufffd on stderr too\n" in backend.stderr(0)
    assert [r["score"] for r in retrieve(backend.stdout(0))] == [0.5]


def test_early_stopping_runs_unchanged_and_frees_a_pruned_trials_cpus(cluster, tmp_path):
    import d2l_hpo

    # epochs long enough that a trial is still running when ASHA's decision reaches it
    # (with 0.05 s epochs, a loaded machine let pruned trials finish all 9 epochs first,
    # and a task that has ended leaves its worker alive for the next one)
    space = d2l_hpo.synthetic_space(max_epochs=9, epoch_seconds=0.3)
    exp = run_random_search(d2l_hpo.synthetic_objective, space, n_workers=4,
                            max_num_trials=12, seed=3, early_stopping="asha",
                            backend=RayBackend(address="auto"), results_dir=tmp_path,
                            name="asha", progress=False)
    statuses = exp.trials.set_index("trial_id")["status"]
    assert set(statuses) <= {"completed", "pruned"} and "pruned" in set(statuses)
    assert set(exp.trials["stopped_at"].dropna()) <= {1, 3}
    assert exp.trials["node"].str.len().gt(0).all()
    # a pruned trial whose task was still running is stopped by killing its Ray worker
    # (its CPUs are freed then); ray.cancel only asks the raylet, so the worker goes a
    # moment later. A trial that ran its 9 epochs before ASHA's decision reached it
    # (a loaded machine) had already left its worker to the next task.
    last_epoch = exp.results.groupby("trial_id")["epoch"].max()
    pruned = exp.trials[exp.trials["status"] == "pruned"].set_index("trial_id")
    cut_short = pruned.loc[last_epoch.loc[pruned.index] < 9, "pid"].astype(int).tolist()
    assert cut_short, "no pruned trial was still running when it was stopped"
    deadline = time.time() + 20
    while any(psutil.pid_exists(pid) for pid in cut_short):
        assert time.time() < deadline, [pid for pid in cut_short if psutil.pid_exists(pid)]
        time.sleep(0.1)
    deadline = time.time() + 10
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        assert time.time() < deadline, ray.available_resources()
        time.sleep(0.1)


def test_backends_of_one_driver_share_the_collector_and_wake_the_tuner(cluster, tmp_path):
    first, second = RayBackend(address="auto"), RayBackend(address="auto")
    for backend, folder in ((first, "first"), (second, "second")):
        backend.bind_objective(flaky_objective, {"x": uniform(0, 1), "fail": "no"})
        backend.set_path(results_root=str(tmp_path / folder))
    collectors = [a for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith(COLLECTOR_PREFIX)]
    assert len(collectors) == 1, collectors  # one actor for the driver, started once
    a = first.start_trial({"x": 0.5, "fail": "no"})
    b = second.start_trial({"x": 0.25, "fail": "no"})
    assert a.trial_id == b.trial_id == 0  # the same ids: only the token tells them apart
    start = time.monotonic()
    while first.busy_trial_ids():
        first.wait_for_change(60)  # returns when a task ends, not after 60 s
        assert time.monotonic() - start < 30
    wait_for(second, [b.trial_id], {Status.completed})
    # each backend got its own trial's reports, none of the other's
    assert [r["score"] for r in retrieve(first.stdout(0))] == [0.5, 1.0]
    assert [r["score"] for r in retrieve(second.stdout(0))] == [0.25, 0.5]


def test_every_ray_process_stays_on_127_0_0_1(cluster):
    ray_pids = set(ray_processes())
    assert len(ray_pids) >= 6  # 3 raylets, a GCS, workers...
    connections = [c for c in psutil.net_connections(kind="inet") if c.pid in ray_pids]
    assert connections
    outside = [c for c in connections
               if c.laddr.ip not in ("127.0.0.1", "::ffff:127.0.0.1")
               or (c.raddr and c.raddr.ip not in ("127.0.0.1", "::ffff:127.0.0.1"))]
    assert outside == []


def test_no_ray_process_left_after_shutdown(cluster):
    ours = ray_processes()  # orphans would leave our tree: remember them by pid
    assert len(ours) >= 6
    ray.shutdown()
    cluster.shutdown()
    deadline = time.time() + 20
    while still_running(ours) and time.time() < deadline:
        time.sleep(0.2)
    left = still_running(ours)
    assert left == [], repr(left)
