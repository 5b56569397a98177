"""SubprocessBackend (``d2l_hpo.backends.local``) under misuse, through real trial
processes: bytes that are not UTF-8, lines that imitate reports, processes a trial
leaves behind, GPU and checkpoint settings."""
import time

import pytest

from d2l_hpo.search.spaces import choice, uniform
from helpers import SPACE, first_version, quick

pytestmark = pytest.mark.slow


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
