"""The trial-backend contract, run against our two backends and Syne Tune's own.

What a Syne Tune scheduler may ask of a ``TrialBackend`` (its documented behaviour:
``start_trial``, ``stop_trial``, ``pause_trial``, ``resume_trial`` with or without a
new configuration, ``start_trial(checkpoint_trial_id=...)``, ``fetch_status_results``,
``busy_trial_ids``, ``stdout``/``stderr``, ``trial_path``, ``checkpoint_trial_path``,
``copy_checkpoint``/``delete_checkpoint``), written here as tests. Each runs against:

- ``python``: Syne Tune's ``PythonBackend``, the control (it must pass everything);
- ``warm`` / ``cold``: our ``SubprocessBackend``, trials forked from the fork server or
  started as new interpreters;
- ``ray``: our ``RayBackend`` on the local Ray cluster of three nodes that the Ray tests
  share (``ray_nodes`` in conftest.py).

The trial saves its progress in its checkpoint folder (``--st_checkpoint_dir``, as Syne
Tune passes it) after each step, so a paused and resumed trial goes on where it was.
"""

import time

import pytest
from syne_tune.backend import PythonBackend
from syne_tune.backend.trial_status import Status
from syne_tune.config_space import choice, randint, uniform
from syne_tune.report import retrieve

from d2l_hpo.backends import SubprocessBackend
from d2l_hpo.backends._common import detached_copy

KINDS = ["python", "warm", "cold",
         pytest.param("ray", marks=pytest.mark.ray)]
pytestmark = pytest.mark.slow


def counting(steps: int, sleep: float = 0.2, fail: str = "no"):
    """Report ``step`` for steps ``next`` .. ``steps - 1``, where ``next`` is what the
    checkpoint folder says (0 when it holds nothing), saving the next step after each."""
    import argparse
    import json
    import os
    import sys
    import time
    from pathlib import Path

    from syne_tune import Reporter

    parser = argparse.ArgumentParser()
    parser.add_argument("--st_checkpoint_dir", required=True)
    folder = Path(parser.parse_known_args()[0].st_checkpoint_dir)
    saved = folder / "state.json"
    first = json.loads(saved.read_text())["next"] if saved.exists() else 0
    print(f"starting at step {first}", flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    if fail == "raise":
        raise ValueError("asked to fail")
    report = Reporter()
    for step in range(first, steps):
        time.sleep(sleep)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "state.tmp").write_text(json.dumps({"next": step + 1}))
        os.replace(folder / "state.tmp", saved)
        report(step=step, folder=str(folder))


SPACE = {"steps": randint(1, 100), "sleep": uniform(0, 1), "fail": choice(["no", "raise"])}


@pytest.fixture(params=KINDS)
def make(request, tmp_path):
    """``make(**options)``: a backend of this kind for ``counting``, writing under
    ``tmp_path``; every trial it started is stopped at the end of the test."""
    made = []

    def build(**options):
        kind = request.param
        if kind == "python":
            backend = PythonBackend(tune_function=detached_copy(counting), config_space=SPACE,
                                    **options)
        elif kind in ("warm", "cold"):
            backend = SubprocessBackend(counting, SPACE, warm_start=kind == "warm", **options)
        else:
            request.getfixturevalue("ray_nodes")  # conftest: shared with test_ray_backend.py
            from d2l_hpo.backends import RayBackend

            backend = RayBackend(address="auto", **options)
            backend.bind_objective(counting, SPACE)
        backend.set_path(results_root=str(tmp_path / f"runs{len(made)}"))
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.stop_all()
        if hasattr(backend, "stop_server"):
            backend.stop_server()


def config(steps, sleep=0.2, fail="no"):
    return {"steps": steps, "sleep": sleep, "fail": fail}


def statuses(backend, trial_ids):
    found, _ = backend.fetch_status_results(list(trial_ids))
    return {trial_id: status for trial_id, (_, status) in found.items()}


def wait_for(backend, trial_ids, wanted, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = statuses(backend, trial_ids)
        if all(now[i] in wanted for i in trial_ids):
            return now
        time.sleep(0.1)
    raise AssertionError(f"trials {trial_ids} not {wanted} after {timeout} s: {now}")


def reported_steps(backend, trial_id):
    return [r["step"] for r in retrieve(backend.stdout(trial_id))]


def wait_for_reports(backend, trial_id, count, timeout=60):
    deadline = time.time() + timeout
    while len(reported_steps(backend, trial_id)) < count:
        assert time.time() < deadline, backend.stdout(trial_id)
        time.sleep(0.05)


def test_trials_complete_with_every_report_once_and_in_order(make):
    backend = make()
    first = backend.start_trial(config(3, sleep=0.1))
    second = backend.start_trial(config(2, sleep=0.1))
    assert (first.trial_id, second.trial_id) == (0, 1)
    assert first.status == Status.in_progress
    assert wait_for(backend, [0, 1], {Status.completed}) == {0: Status.completed,
                                                             1: Status.completed}
    assert backend.busy_trial_ids() == []
    _, new = backend.fetch_status_results([0, 1])
    assert new == []  # every report was handed out once, while waiting
    assert reported_steps(backend, 0) == [0, 1, 2]
    assert reported_steps(backend, 1) == [0, 1]
    for trial_id in (0, 1):
        folder = backend.trial_path(trial_id)
        assert (folder / "std.out").is_file() and (folder / "std.err").is_file()
        assert "starting at step 0\n" in backend.stdout(trial_id)
        assert "a line on stderr\n" in backend.stderr(trial_id)
        # each trial has its own checkpoint folder, and that is the one it was given
        assert {r["folder"] for r in retrieve(backend.stdout(trial_id))} == {
            str(backend.checkpoint_trial_path(trial_id))}


def test_reports_are_fetched_as_they_are_made_sorted_by_time(make):
    backend = make()
    backend.start_trial(config(4, sleep=0.3))
    backend.start_trial(config(4, sleep=0.3))
    fetched, batches = [], 0
    deadline = time.time() + 60
    while len(fetched) < 8 and time.time() < deadline:
        _, new = backend.fetch_status_results([0, 1])
        stamps = [r["st_worker_timestamp"] for _, r in new]
        assert stamps == sorted(stamps)  # each batch in the order the reports were made
        fetched.extend(new)
        batches += bool(new)
        time.sleep(0.1)
    assert batches > 1  # handed out while the trials ran, not all at the end
    assert sorted((i, r["step"]) for i, r in fetched) == [(i, s) for i in (0, 1)
                                                           for s in range(4)]


def test_a_failing_trial_is_failed_with_its_error(make):
    backend = make()
    backend.start_trial(config(3, fail="raise"))
    assert wait_for(backend, [0], {Status.failed, Status.completed}) == {0: Status.failed}
    assert any("ValueError: asked to fail" in line for line in backend.stderr(0))
    assert backend.busy_trial_ids() == []


def test_a_stopped_trial_stops_at_once_and_reports_nothing_more(make):
    backend = make()
    backend.start_trial(config(100, sleep=0.2))
    wait_for_reports(backend, 0, 1)
    assert backend.busy_trial_ids() == [(0, Status.in_progress)]
    backend.stop_trial(0)
    assert statuses(backend, [0]) == {0: Status.stopped}
    assert backend.busy_trial_ids() == []
    lines = len(backend.stdout(0))
    time.sleep(1.5)  # it reported every 0.2 s while it ran
    assert len(backend.stdout(0)) <= lines + 1  # at most a line written as it was killed
    assert statuses(backend, [0]) == {0: Status.stopped}


def test_pause_and_resume_go_on_from_the_checkpoint(make):
    backend = make()
    backend.start_trial(config(12, sleep=0.25))
    wait_for_reports(backend, 0, 2)
    backend.pause_trial(0)
    assert statuses(backend, [0]) == {0: Status.paused}
    assert backend.busy_trial_ids() == []
    backend.resume_trial(0)
    # the new process runs: never 'failed' with the exit code of the one paused
    assert statuses(backend, [0]) == {0: Status.in_progress}
    assert backend.busy_trial_ids() == [(0, Status.in_progress)]
    assert wait_for(backend, [0], {Status.completed, Status.failed}) == {0: Status.completed}
    steps = reported_steps(backend, 0)
    assert steps[-1] == 11
    assert steps == sorted(set(steps))  # no step run twice: the second process went on
    starts = [line for line in backend.stdout(0) if line.startswith("starting at step")]
    assert len(starts) == 2 and starts[0] == "starting at step 0\n" and starts[1] != starts[0]
    assert backend.busy_trial_ids() == []


def test_a_completed_trial_resumed_with_a_new_config_goes_on(make):
    backend = make()
    backend.start_trial(config(2, sleep=0.1))
    wait_for(backend, [0], {Status.completed})
    backend.pause_trial(0)
    assert statuses(backend, [0]) == {0: Status.paused}
    backend.resume_trial(0, new_config=config(4, sleep=0.1))
    assert wait_for(backend, [0], {Status.completed, Status.failed}) == {0: Status.completed}
    assert reported_steps(backend, 0) == [0, 1, 2, 3]


def test_a_trial_starts_from_another_trials_checkpoint(make):
    backend = make()
    backend.start_trial(config(3, sleep=0.05))
    wait_for(backend, [0], {Status.completed})
    backend.start_trial(config(5, sleep=0.05), checkpoint_trial_id=0)
    backend.start_trial(config(2, sleep=0.05), checkpoint_trial_id=1)  # it saved nothing yet
    wait_for(backend, [1, 2], {Status.completed, Status.failed})
    assert reported_steps(backend, 1) == [3, 4]
    assert reported_steps(backend, 0) == [0, 1, 2]  # the source is left as it was
    assert backend.checkpoint_trial_path(1) != backend.checkpoint_trial_path(0)


def test_checkpoints_are_deleted_when_asked(make):
    backend = make(delete_checkpoints=True)
    backend.start_trial(config(2, sleep=0.05))
    backend.start_trial(config(100, sleep=0.1))
    wait_for(backend, [0], {Status.completed})
    wait_for_reports(backend, 1, 1)
    assert (backend.checkpoint_trial_path(0) / "state.json").is_file()
    backend.delete_checkpoint(0)
    assert not backend.checkpoint_trial_path(0).exists()
    backend.delete_checkpoint(0)  # a folder that is gone already is fine
    backend.stop_trial(1)  # delete_checkpoints=True: a stopped trial's checkpoint goes
    assert not backend.checkpoint_trial_path(1).exists()


def test_a_stopped_trial_writes_no_checkpoint_after_its_stop(make):
    # a trial that saves every few milliseconds: stop_trial returns once the trial has
    # stopped, so nothing it writes lands after the checkpoint is deleted (Ray's
    # cancel only asks; a fresh-clone run once found the folder back after the stop)
    backend = make(delete_checkpoints=True)
    for trial_id in range(3):
        backend.start_trial(config(100_000, sleep=0.002))
        wait_for_reports(backend, trial_id, 5)
        backend.stop_trial(trial_id)
        time.sleep(0.3)
        assert not backend.checkpoint_trial_path(trial_id).exists(), trial_id
