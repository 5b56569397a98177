"""Warm trial processes (the default): forked from a process that imported torch once,
yet each trial starts from fresh state, as a new interpreter would."""
import os
import time

import psutil
import pytest
from syne_tune.config_space import uniform

from d2l_hpo import run_random_search
from d2l_hpo.backends import SubprocessBackend
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


def test_the_fork_server_is_gone_after_the_run(tmp_path):
    run(tmp_path, warm=True)
    assert psutil.Process(os.getpid()).children(recursive=True) == []


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
