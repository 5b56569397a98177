"""The seam between ``run_random_search`` and where trials run.

Syne Tune's ``TrialBackend`` starts, stops and polls trials; the tuner needs nothing
more. ``run_random_search`` needs a little more to record an experiment faithfully,
and ``RunnerBackend`` says what, with a default for each, so that any plain Syne Tune
backend works too (``as_runner_backend`` wraps one):

- ``bind_objective``: the objective and config space of this run, and the id of its
  first trial (a resumed experiment numbers on after its last trial);
- ``warm_up``: prepare before the experiment's clock starts (import what trials import);
  ``warm_state`` says whether that was done now or kept from an earlier search;
- ``capacity``: how many trials it can run at once, if it knows;
- ``wait_for_change``: the tuner's sleep between polls, cut short when a trial ends;
- ``clock``: the experiment's clock (``time.time()``; a simulated backend's own);
- ``launch_time`` / ``end_time``: when the backend began starting a trial, and when the
  trial's process ended (on ``clock``), if it knows;
- ``trial_placement``: where a trial runs (node, process), once it runs there;
- ``end_leftovers``: stop trial processes a killed earlier run left on this machine.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any, Callable

from syne_tune.backend.trial_backend import TrialBackend

from d2l_hpo.common.signals import interrupts_held

LOCAL_NODE = platform.node() or "local"  # the node of trials that run on this machine
# in a report: which attempt of its trial made it (a trial runs again when its node dies);
# the recorder keeps the reports of the latest attempt only
ATTEMPT = "st_attempt"


@dataclass(frozen=True)
class Placement:
    """Where a trial runs or ran.

    :param node: the machine (for Ray, the first eight characters of the node id);
        ``""`` while not known
    :param pid: the process that runs it, or None
    :param started: when it began to run there (``time.time()``), or None
    :param attempt: 1, or 2 when it runs again after its node died
    :param rerun_reason: why it runs again from the start, if it does
    """

    node: str = ""
    pid: int | None = None
    started: float | None = None
    attempt: int = 1
    rerun_reason: str = ""


class RunnerBackend:
    """What ``run_random_search`` asks of a backend beyond Syne Tune's ``TrialBackend``,
    with the answers a backend that knows nothing more would give. Our backends mix it
    into their ``TrialBackend`` and override what they know better."""

    #: the node of a trial is known only once it runs (trials spread over machines)
    places_trials: bool = False
    #: its trials are replayed in simulated time (``clock``), not run
    simulates_time: bool = False
    #: the id of the first trial (a resumed experiment numbers on after its last trial)
    first_trial_id: int = 0

    def start_trial(self, config: dict[str, Any], checkpoint_trial_id: int | None = None):
        """Syne Tune's ``start_trial``, whole or not at all: it registers the trial id,
        then starts its process, then records the trial. A Ctrl-C or SIGTERM between
        those steps left an id without a process (the clean-up then failed with a
        ``KeyError`` and no word on how to resume) and could leave a forked trial
        running unseen, so the interrupt waits until the trial has started; the
        clean-up then stops it with the others."""
        with interrupts_held():
            return super().start_trial(config, checkpoint_trial_id=checkpoint_trial_id)

    def resume_trial(self, trial_id: int, new_config: dict | None = None):
        """Syne Tune's ``resume_trial``, whole or not at all (as ``start_trial``)."""
        with interrupts_held():
            return super().resume_trial(trial_id, new_config=new_config)

    def new_trial_id(self) -> int:
        """Syne Tune's ``TrialBackend`` numbers trials from 0; ours from ``first_trial_id``
        (this class comes first among a backend's bases, so this one is used)."""
        return self.first_trial_id + len(self.trial_ids)

    def bind_objective(self, objective: Callable, config_space: dict[str, Any],
             first_trial_id: int = 0) -> None:
        """Take this run's objective, space and first trial id (before any trial)."""
        if first_trial_id:
            raise TypeError(f"{type(self).__name__} cannot resume an experiment "
                            "(it always numbers its trials from 0)")

    def warm_up(self) -> None:
        """Prepare, before the experiment's clock starts; default: nothing to do."""

    def warm_state(self) -> str:
        """What ``warm_up`` found: ``"reused"`` (warm from an earlier search),
        ``"started"`` (prepared now) or ``""`` (nothing to prepare)."""
        return ""

    def capacity(self) -> int | None:
        """How many trials can run at once; None when unknown."""
        return None

    def wait_for_change(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds (less when a trial ends, if the backend can tell)."""
        time.sleep(timeout)

    def clock(self) -> float:
        """Now, in seconds, on the clock the experiment's times are measured by:
        ``time.time()``, or the simulated time of a backend that replays trials."""
        return time.time()

    def launch_time(self, trial_id: int) -> float | None:
        """When the backend began starting the trial; None when unknown."""
        return None

    def end_time(self, trial_id: int) -> float | None:
        """When the trial's process ended; None when unknown (the recorder then takes
        the moment it noticed)."""
        return None

    def end_leftovers(self, processes) -> list[int]:
        """Stop the trial processes of an earlier run of this experiment that outlived it
        (its tuner was killed with kill -9), given as ``(pid, started)`` pairs of trials
        that ran on this machine; return the pids stopped. Default: none (this backend
        leaves no process behind on this machine)."""
        return []

    def trial_placement(self, trial_id: int) -> Placement:
        """Where the trial runs; by default this machine, process unknown."""
        return Placement(node=LOCAL_NODE)


class _PlainBackend(RunnerBackend):
    """The defaults, for a Syne Tune backend that is not a ``RunnerBackend`` (its own
    ``new_trial_id`` numbers its trials)."""


def as_runner_backend(backend: TrialBackend) -> RunnerBackend:
    """``backend`` itself when it is a ``RunnerBackend``, else the defaults for it."""
    return backend if isinstance(backend, RunnerBackend) else _PlainBackend()
