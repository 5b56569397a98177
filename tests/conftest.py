"""Shared set-up and helpers of the tests.

- ``handmade``: an ``Experiment`` built from hand-made tables, for tests of the analysis
  and the plots that need tables, not runs;
- ``InProcessBackend`` / ``in_process``: a deterministic trial backend that runs each
  trial in this process when it starts, for fast tests of the runner, the recorder and
  resume (the real-process tests are the slower tier, as in Syne Tune's own tests);
- the markers ``slow`` (real trial processes, notebooks' helpers, minutes) and ``ray``
  (a Ray cluster); ``make test`` runs everything, ``pytest -m "not slow and not ray"``
  only the fast tier.
"""
import math
import time
import traceback
from datetime import datetime
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.backend.trial_status import Status

from d2l_hpo.backends._common import call_objective
from d2l_hpo.backends.base import RunnerBackend
from d2l_hpo.experiment.results import build_experiment

matplotlib.use("Agg")


def pooled_server_pids() -> set[int]:
    """The fork servers kept warm for the next search (expected to outlive a run)."""
    from d2l_hpo.backends import _warm_pool

    return {server.process.pid for server in _warm_pool.pooled()}


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture(autouse=True)
def _no_user_data_env(monkeypatch):
    # tests decide for themselves where data comes from
    monkeypatch.delenv("SYNETUNE_FOLDER", raising=False)
    yield


# One local Ray cluster for the Ray test modules of this process (the backend contract and
# test_ray_backend.py): three nodes of RAY_NODE_CPUS on 127.0.0.1. Starting one took 30-60 s
# beside the other tests; make test keeps every Ray test on one pytest-xdist worker, so
# they share it. The tests' folder is on the nodes' PYTHONPATH (test_ray_backend.py's
# objectives import helper modules from it). The last test of test_ray_backend.py shuts
# it down and checks that no Ray process is left; when that test does not run (one module
# alone, -k), the session's end does it.
RAY_NODE_CPUS = {"head": 2, "a": 2, "b": 2}


@pytest.fixture(scope="session")
def ray_nodes():
    import os

    ray = pytest.importorskip("ray", reason="the Ray backend is the optional extra 'ray'")
    from ray.cluster_utils import Cluster

    from d2l_hpo.backends.ray_backend import local_only

    local_only()
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent)] + ([saved] if saved else []))
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": RAY_NODE_CPUS["head"], "include_dashboard": False})
        for name in ("a", "b"):
            cluster.add_node(num_cpus=RAY_NODE_CPUS[name])
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    if cluster.head_node is not None:
        cluster.shutdown()


# lessons whose claims compare no timings of this machine, so that they may run beside the
# tests (make test puts them in the pytest-xdist part): lesson 04 checks where its trials
# ran and which schedule finished first (sync waits on stragglers whatever the load) on a
# Ray cluster, so it joins the Ray tests' group; lesson 06 replays tables in simulated
# time; lesson 07 too, and its real runs check which searcher repeated itself, not how
# long anything took. The others compare wall-clock times and run afterwards, alone.
BESIDE_THE_TESTS = {"04_scaling_out_with_ray.ipynb": "ray",
                    "06_async_search_at_scale.ipynb": "06_async_search_at_scale",
                    "07_searchers_that_learn.ipynb": "07_searchers_that_learn"}


def _is_notebook(item) -> bool:
    return item.path.suffix == ".ipynb"


def _longest_first(item) -> int:
    if item.get_closest_marker("ray"):
        return 0
    return 1 if item.path.name == "test_benchmarks.py" or _is_notebook(item) else 2


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        if _is_notebook(item):
            item.add_marker(pytest.mark.slow)  # notebooks run real trials too
            # a notebook's cells share one kernel: with pytest-xdist they stay together
            group = BESIDE_THE_TESTS.get(item.path.name, item.path.stem)
            if group == "ray":
                item.add_marker(pytest.mark.ray)
            else:
                item.add_marker(pytest.mark.xdist_group(group))
        if item.get_closest_marker("ray"):
            # make test spreads the tests over pytest-xdist workers (--dist loadgroup):
            # the Ray tests go to one of them, one after another, so that a module's
            # cluster starts once (its last test shuts it down) and two clusters do not
            # start at once (measured: the suite took longer with a group per module)
            item.add_marker(pytest.mark.xdist_group("ray"))
    # the longest chains first (the Ray tests, then each benchmark), so that
    # no worker starts one of them when the others are nearly done; a stable sort keeps
    # each module's order (the last Ray test checks the cluster's shutdown)
    items.sort(key=_longest_first)


# --- hand-made experiments -------------------------------------------------------------
def handmade_experiment(tmp_path, rows=None, trials=None, n_workers=2, mode="min",
                        scheduling="async", wallclock=10.0):
    trials = trials if trials is not None else pd.DataFrame({
        "trial_id": [0, 1, 2, 3],
        "status": ["completed", "completed", "failed", "completed"],
        "start": [0.0, 0.0, 4.0, 6.0],
        "end": [4.0, 6.0, 5.0, 10.0],
        "config_learning_rate": [0.1, 0.5, 0.9, 0.2],
        "config_batch_size": [64, 128, 256, 32],
    })
    rows = rows if rows is not None else pd.DataFrame({
        "trial_id": [0, 0, 1, 1, 2, 3, 3],
        "time": [2.0, 4.0, 3.0, 6.0, 4.5, 8.0, 10.0],
        "epoch": [1, 2, 1, 2, 1, 1, 2],
        "validation_error": [0.8, 0.5, 0.7, 0.4, math.nan, 0.6, 0.3],
    })
    settings = {"name": "handmade", "n_workers": n_workers, "scheduling": scheduling,
                "metric": "validation_error", "mode": mode, "wallclock": wallclock,
                "config_columns": ["learning_rate", "batch_size"]}
    return build_experiment(tmp_path, settings, trials, rows)


@pytest.fixture
def handmade(tmp_path):
    """``handmade(**changes)``: the hand-made experiment, with some tables or settings changed."""
    return lambda **changes: handmade_experiment(tmp_path, **changes)


# --- a deterministic in-process backend ----------------------------------------------
class InProcessBackend(RunnerBackend, TrialBackend):
    """Runs a trial's objective in this process as soon as the trial starts, then hands
    its reports to the tuner one per poll, as a trial that reports each epoch would; once
    all are out, the trial is completed (or failed, with its traceback as its error
    output, when it raised). Stopping a trial keeps back what it had not handed out yet.
    No processes, no waiting, the same reports every time.

    The objective gets ``report`` (a function taking the reported values) next to its
    configuration, so it takes an argument ``report=None``.
    """

    def __init__(self):
        super().__init__()
        self.objective, self.first_trial_id = None, 0
        self.outcomes = {}  # trial id -> (status, reports, stderr lines, start, end)
        self.handed_out = {}  # trial id -> how many of its reports the tuner has
        self.stopped = set()

    def bind_objective(self, objective, config_space, first_trial_id=0):
        self.objective, self.first_trial_id = objective, first_trial_id

    def _schedule(self, trial_id, config):
        start, reports = time.time(), []

        def report(**values):
            reports.append({**values, "st_worker_timestamp": time.time(),
                            "st_worker_time": time.time() - start,
                            "st_worker_iter": len(reports)})
        status, errors = Status.completed, []
        try:
            call_objective(self.objective, {**config, "report": report})
        except Exception:
            status, errors = Status.failed, traceback.format_exc().splitlines(keepends=True)
        self.outcomes[trial_id] = (status, reports, errors, start, time.time())
        self.handed_out[trial_id] = 0

    def _all_trial_results(self, trial_ids):
        results = []
        for i in trial_ids:
            status, reports, _, _, end = self.outcomes[i]
            if i in self.stopped:
                status = Status.stopped
            elif self.handed_out[i] < len(reports):
                self.handed_out[i] += 1
                status = Status.in_progress if self.handed_out[i] < len(reports) else status
            results.append(self._trial_dict[i].add_results(
                metrics=reports[:self.handed_out[i]], status=status,
                training_end_time=datetime.fromtimestamp(end)))
        return results

    def busy_trial_ids(self):
        return [(i, Status.in_progress) for i, (_, reports, *_) in self.outcomes.items()
                if i not in self.stopped and self.handed_out[i] < len(reports)]

    def _stop_trial(self, trial_id, result):
        self.stopped.add(trial_id)

    def _pause_trial(self, trial_id, result):
        self.stopped.add(trial_id)

    def _resume_trial(self, trial_id):
        raise NotImplementedError

    def stdout(self, trial_id):
        return []

    def stderr(self, trial_id):
        return list(self.outcomes[trial_id][2])

    def set_path(self, results_root=None, tuner_name=None):
        self.root = Path(results_root) if results_root else None

    def entrypoint_path(self):
        return Path("in_process.py")

    def set_entrypoint(self, entry_point):
        raise NotImplementedError

    def launch_time(self, trial_id):
        return self.outcomes[trial_id][3] if trial_id in self.outcomes else None

    def end_time(self, trial_id):
        return self.outcomes[trial_id][4] if trial_id in self.outcomes else None


@pytest.fixture
def in_process():
    return InProcessBackend()
