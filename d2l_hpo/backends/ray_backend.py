"""Trials as Ray tasks: the same Syne Tune ``Tuner`` and scheduler, any number of machines.

Each trial is one Ray task that asks for ``cpus_per_trial`` CPUs (and
``gpus_per_trial`` GPUs), so Ray places it on a node with room for it and never
runs more trials on a node than its resources allow. While the task runs,
everything the objective prints (``Reporter`` lines included) is forwarded, in
order, to a small collector actor next to the tuner; the backend reads the
collector each time the tuner polls, so reports stream in as they are made and
end up in the trial's ``std.out`` / ``std.err`` files exactly as with the local
backend.

Ray reuses its worker processes, so a trial starts without paying for a new
interpreter and torch import; the worker is reset before each trial (thread
counts, random seeds, environment) and after it (logging handlers the trial
added). Stopping a trial kills its worker process, which frees its CPUs at once;
Ray starts a new worker for the next task.

Pausing a trial is stopping its task; resuming it submits a new task for the same
trial, which finds what the first one saved in the trial's checkpoint folder
(``TRIAL/checkpoints``, passed as ``--st_checkpoint_dir`` in ``sys.argv``, as Syne
Tune's local backend does). The folders are on the driver's disk: on a cluster of
several machines, they must be on a file system every node sees.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.backend.trial_status import Status, TrialResult
from syne_tune.report import retrieve

from d2l_hpo.backends._common import copy_checkpoint_folder, detached_copy, imported_modules
from d2l_hpo.backends.base import ATTEMPT, Placement, RunnerBackend

from d2l_hpo.backends import _ray_cluster as cluster
from d2l_hpo.backends._ray_cluster import local_only, ray, require_ray

# how long stopping or pausing a trial waits for Ray to have killed its worker
KILL_WAIT_S = 30.0

if ray is not None:  # the core install works without the ``ray`` extra
    from d2l_hpo.backends import _ray_worker  # what runs on the nodes

__all__ = ["RayBackend", "local_only"]


@dataclass
class _RayTrial:
    config: dict
    ref: Any = None
    attempt: int = 1  # 2 when it runs again from the start after its node died
    run: int = 0  # tasks submitted for it (a paused and resumed trial has several)
    status: str = Status.in_progress
    placement: dict = field(default_factory=dict)
    partial: dict = field(default_factory=lambda: {"out": "", "err": ""})
    lines: dict = field(default_factory=lambda: {"out": [], "err": []})
    metrics: list = field(default_factory=list)
    ended: float | None = None
    launched: float | None = None  # when the first attempt was submitted
    note: str = ""  # what happened to an earlier attempt


class RayBackend(RunnerBackend, TrialBackend):
    """Run each trial as a Ray task: on this machine, or on every node of a Ray cluster.

    ``run_random_search(objective, space, ..., backend=RayBackend())`` binds the
    objective; nothing else changes (scheduler, sync/async, tables, plots).

    :param address: ``None`` starts a Ray instance on this machine (bound to
        127.0.0.1) unless Ray is already initialised in this process;
        ``"auto"`` joins the cluster this machine belongs to (``ray start``);
        ``"ray://host:10001"`` connects through Ray Client; ``"host:6379"``
        joins the cluster whose head is there
    :param cpus_per_trial: CPUs Ray reserves for each trial (also its thread count); default 1
    :param gpus_per_trial: GPUs Ray reserves for each trial (it sets
        ``CUDA_VISIBLE_DEVICES``; fractions share a GPU); default 0
    :param retry_on_node_failure: run a trial again (once) when the node running it
        dies, instead of recording it as failed; default False
    :param num_cpus: CPUs of the Ray instance started when ``address`` is None;
        default: all of this machine's
    :param delete_checkpoints: delete a trial's checkpoint folder when it is stopped;
        default False
    """

    def __init__(self, address: str | None = None, cpus_per_trial: float = 1,
                 gpus_per_trial: float = 0, retry_on_node_failure: bool = False,
                 num_cpus: int | None = None, delete_checkpoints: bool = False):
        require_ray()
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"address must be None, 'auto', 'ray://host:port' or "
                             f"'host:port', got {address!r}")
        for label, value, low in (("cpus_per_trial", cpus_per_trial, 0),
                                  ("gpus_per_trial", gpus_per_trial, -1)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
                raise ValueError(f"{label} must be a number {'> 0' if low == 0 else '>= 0'}, "
                                 f"got {value!r}")
        if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
            raise ValueError(f"num_cpus must be an integer >= 1, got {num_cpus!r}")
        super().__init__(delete_checkpoints=bool(delete_checkpoints), pass_args_as_json=True)
        self.address, self.num_cpus = address, num_cpus
        self.places_trials = True  # a trial's node is known once Ray has placed it
        self.cpus_per_trial, self.gpus_per_trial = cpus_per_trial, gpus_per_trial
        self.retry_on_node_failure = bool(retry_on_node_failure)
        self.first_trial_id = 0  # a resumed experiment numbers on after its last trial
        self.objective_name = "objective"
        self.preload: list[str] = []
        self._blob: bytes | None = None
        self._trials: dict[int, _RayTrial] = {}
        self._root: Path | None = None
        self._collector = None
        self._remote = None
        self._token = uuid.uuid4().hex  # our events in the shared collector
        self._started_ray = False
        self._lock = threading.RLock()  # polling from another thread is safe

    # --- set-up ------------------------------------------------------------------
    def bind_objective(self, objective: Callable, config_space: dict[str, Any],
                       first_trial_id: int = 0) -> None:
        """Ship ``objective`` to the trials, numbered from ``first_trial_id`` on (called
        by ``run_random_search``; a resumed experiment numbers on after its last trial)."""
        import dill

        self._blob = dill.dumps(detached_copy(objective))
        self.objective_name = objective.__name__
        self.preload = imported_modules(objective)
        self.first_trial_id = int(first_trial_id)
        if self._collector is None:
            self.connect()  # warms up with the objective's imports
        else:
            self._warm_up()

    def connect(self) -> None:
        """Start or join Ray (once); clear errors for an address that does not answer."""
        if self._collector is not None:
            return
        if cluster.join(self.address, self.num_cpus):
            self._started_ray = True
        self._collector = cluster.shared_collector(self._token)
        self._remote = ray.remote(_ray_worker.run_trial).options(
            num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
            max_retries=0)  # retries are ours, so they show in the tables
        cluster.check_resources(self.cpus_per_trial, self.gpus_per_trial)
        self._warm_up()

    def _warm_up(self):
        cluster.warm_up(self.cpus_per_trial, self.gpus_per_trial, min(self.capacity(), 64),
                        self.preload)

    def capacity(self) -> int:
        """How many trials the cluster can run at once with these resources."""
        require_ray()
        if not ray.is_initialized():
            self.connect()
        return cluster.slots(self.cpus_per_trial, self.gpus_per_trial)

    def shutdown(self) -> None:
        """Stop the Ray instance this backend started (a cluster it joined stays up)."""
        self._collector = None  # shared by this driver's backends: it ends with Ray
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            cluster.forget()
        self._started_ray = False

    def __getstate__(self):
        # the Tuner pickles itself (and us) with dill; Ray handles are not picklable there
        state = dict(self.__dict__)
        state["_collector"] = state["_remote"] = state["_lock"] = None
        state["_trials"] = {i: _RayTrial(**{**t.__dict__, "ref": None})
                            for i, t in self._trials.items()}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # --- the TrialBackend seam ---------------------------------------------------
    def set_path(self, results_root: str | None = None, tuner_name: str | None = None):
        self._root = Path(results_root) if results_root else None

    def entrypoint_path(self) -> Path:
        return Path(f"{self.objective_name}.py")

    def set_entrypoint(self, entry_point: str):
        raise NotImplementedError("RayBackend runs a function; bind it with bind_objective")

    def trial_path(self, trial_id: int) -> Path:
        if self._root is None:  # no results folder given: a temporary one
            self._root = Path(tempfile.mkdtemp(prefix="d2l_hpo-ray-"))
        return self._root / str(trial_id)

    def checkpoint_trial_path(self, trial_id: int) -> Path:
        """The trial's own checkpoint folder (its ``--st_checkpoint_dir``)."""
        return self.trial_path(trial_id) / "checkpoints"

    def copy_checkpoint(self, src_trial_id: int, tgt_trial_id: int):
        """Start ``tgt_trial_id`` from what ``src_trial_id`` saved (nothing, if it saved
        nothing)."""
        copy_checkpoint_folder(self.checkpoint_trial_path(src_trial_id),
                               self.checkpoint_trial_path(tgt_trial_id))

    def delete_checkpoint(self, trial_id: int):
        shutil.rmtree(self.checkpoint_trial_path(trial_id), ignore_errors=True)

    def _schedule(self, trial_id: int, config: dict[str, Any]):
        # a new trial, or a paused one resumed (a new task, same folders)
        if self._blob is None:
            raise RuntimeError("no objective: call bind_objective(objective, config_space) "
                               "or pass the backend to run_random_search")
        self.connect()
        path = self.trial_path(trial_id)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(config))
        for name in ("std.out", "std.err"):  # there from the start, as locally
            (path / name).touch()
        trial = self._trials.get(trial_id) or _RayTrial(config=dict(config))
        trial.config = dict(config)
        self._trials[trial_id] = trial
        self._submit(trial_id, trial)

    def launch_time(self, trial_id: int) -> float | None:
        """When this backend submitted the trial's (first) task (``time.time()``)."""
        trial = self._trials.get(trial_id)
        return None if trial is None else trial.launched

    def end_time(self, trial_id: int) -> float | None:
        """When the trial's task ended (as its worker stamped it), if it has."""
        trial = self._trials.get(trial_id)
        return None if trial is None or trial.status == Status.in_progress else trial.ended

    def _submit(self, trial_id: int, trial: _RayTrial):
        if trial.launched is None:
            trial.launched = time.time()
        threads = max(1, int(self.cpus_per_trial))
        for stream in ("out", "err"):  # an unfinished line of the task before ends here
            if trial.partial[stream]:
                self._add_text(trial_id, trial, stream, "\n")
        trial.run += 1  # what an earlier task of this trial still sends is dropped
        trial.status, trial.ended, trial.placement = Status.in_progress, None, {}
        trial.ref = self._remote.remote(self._token, trial_id, trial.run, self._blob,
                                        trial.config, self._collector, threads,
                                        str(self.checkpoint_trial_path(trial_id)))

    def _end_task(self, trial_id: int, status: str):
        # the trial is ``status`` from now on, whatever it was (as the local backend's
        # ``stop``/``pause`` files say): a completed trial paused can be resumed
        trial = self._trials[trial_id]
        if trial.status == Status.in_progress:
            ray.cancel(trial.ref, force=True)  # kills its worker: the CPUs are free at once
            # cancel only asks: until the worker is gone it still runs the objective, and
            # a checkpoint it writes would land after the tuner deleted the folder (seen
            # in a fresh-clone run); the task's result is ready once it has ended
            ray.wait([trial.ref], timeout=KILL_WAIT_S)
            trial.ended = time.time()
        trial.status = status

    def _stop_trial(self, trial_id: int, result: dict | None):
        self._end_task(trial_id, Status.stopped)

    def _pause_trial(self, trial_id: int, result: dict | None):
        # the task ends; resume_trial submits a new one, which finds the checkpoint
        self._end_task(trial_id, Status.paused)

    def _resume_trial(self, trial_id: int):
        pass  # resume_trial then calls _schedule, which submits the trial's next task

    def busy_trial_ids(self) -> list[tuple[int, str]]:
        self._update()
        return [(i, t.status) for i, t in self._trials.items() if t.status == Status.in_progress]

    def _all_trial_results(self, trial_ids: list[int]) -> list[TrialResult]:
        self._update()
        results = []
        for trial_id in trial_ids:
            trial = self._trials[trial_id]
            end = datetime.fromtimestamp(trial.ended) if trial.ended else datetime.now()
            results.append(self._trial_dict[trial_id].add_results(
                metrics=list(trial.metrics), status=trial.status, training_end_time=end))
        return results

    def stdout(self, trial_id: int) -> list[str]:
        self._update()
        return list(self._trials[trial_id].lines["out"])

    def stderr(self, trial_id: int) -> list[str]:
        self._update()
        return list(self._trials[trial_id].lines["err"])

    def placement(self, trial_id: int) -> dict:
        """Where the trial runs or ran (Ray node id, host, worker id, process id, when it
        started there), and ``note``: why it ran a second time, if it did."""
        trial = self._trials.get(trial_id)
        return {**trial.placement, "note": trial.note} if trial else {}

    def trial_placement(self, trial_id: int) -> Placement:
        """The same, for the recorder: the node's first eight characters, as tables show it."""
        self._update()
        trial = self._trials.get(trial_id)
        if trial is None:
            return Placement()
        where = trial.placement
        return Placement(node=(where.get("node") or "")[:8], pid=where.get("pid"),
                         started=where.get("time"), attempt=trial.attempt,
                         rerun_reason=trial.note)

    # --- polling -----------------------------------------------------------------
    def wait_for_change(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less if a trial's task ends meanwhile (the
        tuner calls this instead of a fixed sleep)."""
        with self._lock:
            refs = [t.ref for t in self._trials.values()
                    if t.status == Status.in_progress and t.ref is not None]
        if refs:
            ray.wait(refs, num_returns=1, timeout=timeout)
        else:
            time.sleep(timeout)

    def _update(self):
        with self._lock:
            self._poll()

    def _poll(self):
        if self._collector is None:
            return
        running = {t.ref: i for i, t in self._trials.items()
                   if t.status == Status.in_progress and t.ref is not None}
        done = []
        if running:  # tasks first, then the lines: a finished task's lines are all there
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
        for kind, trial_id, run, payload in ray.get(
                self._collector.drain.remote(self._token)):
            trial = self._trials.get(trial_id)
            if trial is None or run != trial.run:
                continue  # the last words of a task lost, stopped or paused
            if kind == "start":
                trial.placement = payload
            elif kind == "text":
                self._add_text(trial_id, trial, *payload)
            elif kind == "end" and trial.status == Status.in_progress:
                trial.ended = payload[0]
        for ref in done:
            trial_id = running[ref]
            trial = self._trials[trial_id]
            for stream in ("out", "err"):  # a last line without newline
                if trial.partial[stream]:
                    self._add_text(trial_id, trial, stream, "\n")
            try:
                ok = ray.get(ref)
            except ray.exceptions.RayError as err:
                self._lost(trial_id, trial, err)
                continue
            trial.status = Status.completed if ok else Status.failed
            trial.ended = trial.ended or time.time()

    def _add_text(self, trial_id: int, trial: _RayTrial, stream: str, text: str):
        text = trial.partial[stream] + text
        cut = text.rfind("\n") + 1
        trial.partial[stream] = text[cut:]
        if not cut:
            return
        lines = text[:cut].splitlines(keepends=True)
        trial.lines[stream].extend(lines)
        if stream == "out":  # every attempt's reports, each saying which attempt made it
            trial.metrics.extend({**report, ATTEMPT: trial.attempt} for report in retrieve(lines))
        path = self.trial_path(trial_id)
        if path is not None:
            with open(path / f"std.{stream}", "a") as log:
                log.write("".join(lines))

    def _lost(self, trial_id: int, trial: _RayTrial, err: Exception):
        """The task died without returning: its process crashed, or its node went away."""
        node = trial.placement.get("node") or ""
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not node:  # it died before it said where it ran: Ray's error may say
            named = re.search(r"node[ _]?id[:= ]+([0-9a-f]{16,})", str(err), re.IGNORECASE)
            if named:
                node = trial.placement["node"] = named.group(1)
        # Ray says NodeDiedError at once; the cluster's node list notices seconds later
        if isinstance(err, ray.exceptions.NodeDiedError) or (
                node and node not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}):
            where = (f"node {node[:8]}, host {trial.placement.get('host')}" if node
                     else "before the trial reported which node it was on")
            what = f"the Ray node running this trial ({where}) died"
            if self.retry_on_node_failure and trial.attempt == 1:
                trial.note = f"{what}; running the trial again (attempt 2)"
                self._add_text(trial_id, trial, "err", f"d2l_hpo: {trial.note}\n")
                trial.attempt += 1  # the reports of the lost attempt no longer count
                self._submit(trial_id, trial)
                return
        else:
            what = "the trial's Ray worker process died"
        self._add_text(trial_id, trial, "err", f"{what}: {type(err).__name__}: {first_line}\n")
        trial.status, trial.ended = Status.failed, time.time()

    def __str__(self):
        where = self.address or "local Ray instance"
        return f"RayBackend({self.objective_name} on {where})"
