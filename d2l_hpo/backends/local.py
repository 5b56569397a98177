"""Trials as local subprocesses: Syne Tune's ``PythonBackend``, with four changes.

- The objective keeps its default argument values (``PythonBackend`` drops them,
  so every argument would have to be in the config space).
- The configuration reaches the trial as JSON, so ints, floats and strings keep
  their types and strings may contain spaces.
- Each trial gets a fair share of the CPU threads (``threads_per_trial``) through
  ``OMP_NUM_THREADS``/``D2L_HPO_THREADS`` before it imports anything.
- Trials start warm (``warm_start=True``, the default on Linux): a fork server imports
  what the objective imports (torch, d2l, ...) once, and each trial is a fresh fork of
  it instead of a new interpreter that imports everything again (see
  ``_forkserver.py``); the server stays warm for the next search in the same process
  (see ``_warm_pool.py``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from syne_tune.backend import PythonBackend
from syne_tune.backend.python_backend.python_backend import file_md5
from syne_tune.backend.local_backend import LocalBackend
from syne_tune.backend.trial_status import Status
from syne_tune.constants import ST_CHECKPOINT_DIR, ST_CONFIG_JSON_FNAME_ARG
from syne_tune.util import dump_json_with_numpy

from d2l_hpo.backends import _warm_pool
from d2l_hpo.backends._common import (check_gpu_settings, copy_checkpoint_folder,
                                     detached_copy, imported_modules)
from d2l_hpo.backends._processes import (ENTRY_POINT, _alive, _read_lines, _ReportReader,
                                        count_gpus, kill_leftover_trials)
from d2l_hpo.backends.base import LOCAL_NODE, Placement, RunnerBackend

__all__ = ["SubprocessBackend", "count_gpus", "kill_leftover_trials"]

FORK_ANSWER_TIMEOUT = 60  # seconds a fork server may take to answer with a trial's pid


class _ForkedTrial:
    """What LocalBackend needs of a trial's process (``pid``, ``poll``, ``kill``), for a
    process forked by the fork server, which writes its exit code to ``exit-PID`` (a
    resumed trial's new process never reads the exit code of the one it replaces)."""

    def __init__(self, pid: int, trial_dir: Path, server: subprocess.Popen):
        self.pid, self.trial_dir, self.server = pid, trial_dir, server
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            exit_file = self.trial_dir / f"exit-{self.pid}"
            if exit_file.exists():
                self.returncode = int(exit_file.read_text())
            elif self.server is not None and self.server.poll() is not None \
                    and not _alive(self.pid):
                self.returncode = -9  # the fork server died, and the trial with it
        return self.returncode

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the trial leads its own group
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __getstate__(self):  # the Tuner pickles the backend, and us with it
        return {**self.__dict__, "server": None}


class SubprocessBackend(RunnerBackend, PythonBackend):
    """Run each trial of ``objective`` in a fresh local Python process.

    :param objective: the function to tune; imports inside its body
    :param config_space: its configuration space
    :param threads_per_trial: CPU threads each trial may use; default 1
    :param rotate_gpus: give each trial its own GPU when there are several; default True
    :param warm_start: fork trials from a process that has imported what the objective
        imports (kept warm for the next search in this process); False starts a new
        interpreter per trial; default: True on Linux, False elsewhere (forking after
        importing torch is not safe there), and False with ``D2L_HPO_START=fresh``
    :param first_trial_id: the id of the first trial (a resumed experiment numbers on
        after its last trial); default 0
    :param delete_checkpoints: delete a trial's checkpoint folder when it is stopped
        (as Syne Tune's ``LocalBackend``); default False
    :param num_gpus_per_trial: GPUs each trial gets when GPUs are rotated; default 1
    :param gpus_to_use: use only these GPUs (indices into the machine's GPUs);
        default: all of them
    """

    def __init__(self, objective: Callable, config_space: dict[str, Any],
                 threads_per_trial: int = 1, rotate_gpus: bool = True,
                 warm_start: bool | None = None, first_trial_id: int = 0,
                 delete_checkpoints: bool = False, num_gpus_per_trial: int = 1,
                 gpus_to_use: list[int] | None = None):
        check_gpu_settings(num_gpus_per_trial, gpus_to_use)
        detached = detached_copy(objective)
        super().__init__(tune_function=detached, config_space=config_space,
                         rotate_gpus=rotate_gpus, delete_checkpoints=bool(delete_checkpoints))
        self.num_gpus_per_trial = int(num_gpus_per_trial)
        self.gpus_to_use = None if gpus_to_use is None else [int(g) for g in gpus_to_use]
        self.entry_point = str(ENTRY_POINT)
        self.pass_args_as_json = True
        self.threads_per_trial = int(threads_per_trial)
        self.warm_start = _warm_pool.fork_is_safe() if warm_start is None else bool(warm_start)
        self.bind_objective(objective, config_space, first_trial_id)
        self._server: _warm_pool.WarmServer | None = None
        self._launched: dict[int, float] = {}  # trial id -> when _schedule began
        self._read: dict[int, _ReportReader] = {}  # trial id -> its reports read so far
        self._cleaned: set[int] = set()  # ended trial processes whose group was killed

    def bind_objective(self, objective: Callable, config_space: dict[str, Any],
             first_trial_id: int = 0) -> None:
        """Run ``objective`` from trial ``first_trial_id`` on."""
        self.tune_function = detached_copy(objective)
        self.config_space = config_space
        self.preload = imported_modules(objective)
        source = getattr(getattr(objective, "__code__", None), "co_filename", "")
        self.watch = [source] if os.path.isfile(source) else []  # its own file
        self.first_trial_id = int(first_trial_id)
        self._function_saved = False  # the next trial writes it (a resume: over the old)

    def __getstate__(self):
        return {**self.__dict__, "_server": None}

    # --- the fork server ---------------------------------------------------------------
    def start_server(self) -> None:
        """Take a warm fork server for the objective's modules from the pool, or start
        one (it imports in the background until the first trial)."""
        if self._server is None or not self._server.alive():
            if self._server is not None:
                self._server.close()
            self._server = _warm_pool.acquire(self.preload, self.watch)

    def warm_state(self) -> str:
        """``"reused"``: this search's fork server was kept warm from an earlier one;
        ``"started"``: it was started for it; ``""``: trials start cold."""
        if not self.warm_start or self._server is None:
            return ""
        return "reused" if self._server.reused else "started"

    def wait_for_change(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less if a forked trial ends meanwhile (the
        tuner calls this instead of a fixed sleep, so a freed worker gets its next
        trial at once)."""
        notify = self._server.notify if self._server is not None else None
        if notify is None:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([notify], [], [], timeout)
        if ready:
            try:
                os.read(notify, 4096)
            except (BlockingIOError, OSError):
                pass

    def warm_up(self) -> None:
        """Have a fork server that has imported the objective's modules: a pooled one,
        or a new one waited for (``run_random_search`` calls this before the
        experiment's clock starts)."""
        if self.warm_start:
            self.start_server()
            try:
                self._server.wait_until_ready()
            except OSError:  # it died importing: the first trial tries again, else cold
                pass
            except BaseException:  # Ctrl-C while it imports: no server left behind
                self._server.close()
                self._server = None
                raise

    def _fork(self, argv: list[str], trial_dir: Path, env: dict) -> _ForkedTrial | None:
        self.start_server()
        try:
            self._server.wait_until_ready()
            request = {"argv": argv, "trial_dir": str(trial_dir), "env": env,
                       "cwd": os.getcwd(), "stdout": str(trial_dir / "std.out"),
                       "stderr": str(trial_dir / "std.err"),
                       "threads": self.threads_per_trial}
            process = self._server.process
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            answered, _, _ = select.select([process.stdout], [], [], FORK_ANSWER_TIMEOUT)
            if not answered:
                raise OSError("the fork server did not answer")
            return _ForkedTrial(int(process.stdout.readline()), trial_dir, process)
        except (OSError, ValueError):  # the server died or hangs: this trial starts cold
            server, self._server = self._server, None
            server.close()  # the next trial gets a new one
            return None

    def stop_server(self) -> None:
        """Done with the fork server: back to the pool for the next search (or closed,
        when it is not healthy)."""
        if self._server is not None:
            server, self._server = self._server, None
            _warm_pool.release(server)

    def stop_all(self):
        super().stop_all()
        for trial_id in list(self.trial_subprocess):  # what cold trials left running
            self._kill_leftovers(trial_id)
        self.stop_server()

    def set_path(self, results_root: str | None = None, tuner_name: str | None = None):
        # PythonBackend warns when the folder exists; ours is created on purpose
        LocalBackend.set_path(self, results_root=results_root, tuner_name=tuner_name)

    def end_leftovers(self, processes) -> list[int]:
        return kill_leftover_trials(processes)

    def _prepare_for_schedule(self, num_gpus=None):
        if self.rotate_gpus and self.num_gpus is None:
            if num_gpus is None:
                num_gpus = count_gpus()
            missing = [g for g in self.gpus_to_use or () if g >= num_gpus]
            if missing:
                raise ValueError(f"gpus_to_use={self.gpus_to_use} names GPUs this machine "
                                 f"does not have: it has {num_gpus} (indices 0 to "
                                 f"{num_gpus - 1})" if num_gpus else
                                 f"gpus_to_use={self.gpus_to_use}, but this machine has no GPU")
        super()._prepare_for_schedule(num_gpus=num_gpus)

    def launch_time(self, trial_id: int) -> float | None:
        """When this backend began starting the trial (``time.time()``)."""
        return self._launched.get(trial_id)

    def end_time(self, trial_id: int) -> float | None:
        """When the trial's process ended, as the trial itself wrote it (``end``)."""
        try:
            return float((self.trial_path(trial_id) / "end").read_text())
        except (OSError, ValueError):
            return None

    def stdout(self, trial_id: int) -> list[str]:
        """The trial's output lines (bytes that are not UTF-8 read as U+FFFD)."""
        return _read_lines(self.trial_path(trial_id) / "std.out")

    def stderr(self, trial_id: int) -> list[str]:
        """The trial's error output lines (bytes that are not UTF-8 read as U+FFFD)."""
        return _read_lines(self.trial_path(trial_id) / "std.err")

    def reports(self, trial_id: int) -> list[dict]:
        """The trial's reports so far, read from the new part of its ``std.out`` only (a
        trial that prints a lot costs the tuner nothing on later polls). A line that
        imitates a report but is not one (not JSON, no time stamp) is skipped and
        counted in ``malformed_reports``."""
        reader = self._read.get(trial_id)
        if reader is None:
            reader = self._read[trial_id] = _ReportReader(self.trial_path(trial_id) / "std.out")
        return reader.read()

    def malformed_reports(self, trial_id: int) -> int:
        reader = self._read.get(trial_id)
        return reader.malformed if reader is not None else 0

    def _all_trial_results(self, trial_ids):
        # LocalBackend's, with the reports read by self.reports (new bytes only; bytes
        # that are not UTF-8 and lines that only look like reports do not end the run)
        results = []
        for trial_id in trial_ids:
            status = self._read_status(trial_id)
            if status != Status.in_progress:
                self._deallocate_gpu(trial_id)
                self._kill_leftovers(trial_id)
            if (self.trial_path(trial_id) / "end").exists():
                end = self._read_time_stamp(trial_id=trial_id, name="end")
            else:
                end = datetime.now()
                if self._is_process_done(trial_id=trial_id):
                    self._write_time_stamp(trial_id=trial_id, name="end")
            results.append(self._trial_dict[trial_id].add_results(
                metrics=list(self.reports(trial_id)), status=status, training_end_time=end))
        return results

    def _kill_leftovers(self, trial_id: int) -> None:
        """Once a trial has ended, kill what it left running in its process group (a
        forked trial's group is killed by the fork server already)."""
        process = self.trial_subprocess.get(trial_id)
        if isinstance(process, subprocess.Popen) and process.pid not in self._cleaned:
            self._cleaned.add(process.pid)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def copy_checkpoint(self, src_trial_id: int, tgt_trial_id: int):
        """Start ``tgt_trial_id`` from what ``src_trial_id`` saved (nothing, if it saved
        nothing)."""
        copy_checkpoint_folder(self.checkpoint_trial_path(src_trial_id),
                               self.checkpoint_trial_path(tgt_trial_id))

    def trial_placement(self, trial_id: int) -> Placement:
        process = self.trial_subprocess.get(trial_id)
        return Placement(node=LOCAL_NODE, pid=getattr(process, "pid", None),
                         started=self._launched.get(trial_id))

    def _schedule(self, trial_id: int, config: dict[str, Any]):
        # what PythonBackend._schedule and LocalBackend._schedule do, with the
        # process started by the fork server. A resumed trial runs as a new process
        # in the same folder: its first launch stays its start, and the end of the
        # process it replaces is not its end.
        self._launched.setdefault(trial_id, time.time())
        if not self._function_saved:  # the objective bound now, never an earlier run's
            self.save_tune_function(self.tune_function)
            self._function_saved = True
        config = {**config, "_d2l_hpo": {"threads": self.threads_per_trial},
                  "tune_function_root": str(self.tune_function_path),
                  "tune_function_hash": file_md5(str(self.tune_function_path /
                                                     "tune_function.dill"))}
        self._prepare_for_schedule()
        trial_dir = self.trial_path(trial_id)
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "end").unlink(missing_ok=True)
        config_file = trial_dir / "config.json"
        dump_json_with_numpy(config, str(config_file))
        argv = [self.entry_point, f"--{ST_CONFIG_JSON_FNAME_ARG}", str(config_file),
                f"--{ST_CHECKPOINT_DIR}", str(self.checkpoint_trial_path(trial_id))]
        env = dict(os.environ)
        self._allocate_gpu(trial_id, env)
        for name in ("std.out", "std.err"):  # the tuner may read them at once
            (trial_dir / name).touch()
        process = self._fork(argv, trial_dir, env) if self.warm_start else None
        if process is None:
            with open(trial_dir / "std.out", "a") as out, open(trial_dir / "std.err", "a") as err:
                process = subprocess.Popen([self.binary, *argv], stdout=out, stderr=err, env=env,
                                           start_new_session=True)  # a group of its own
        self.trial_subprocess[trial_id] = process
        self._busy_trial_id_candidates.add(trial_id)

    def __str__(self):
        return f"SubprocessBackend({self.tune_function.__name__})"


