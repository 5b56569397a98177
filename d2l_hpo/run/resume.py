"""Resuming an interrupted experiment: what it keeps, what it runs again, and how much
budget it has left.

Finished trials (``status.FINISHED``) keep their rows and reports. Trials that were
running when the run stopped run again first, under new ids (their old ids are
``abandoned``: their folders stay, but they are no longer part of the experiment);
then the seeded sequence goes on where it stopped. The clock goes on from the last
thing the earlier run recorded, even after a ``kill -9``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from d2l_hpo.backends.base import LOCAL_NODE
from d2l_hpo.experiment.results import build_experiment
from d2l_hpo.run.settings import RunSettings, RunState, describe_domain, from_json
from d2l_hpo.common.status import FINISHED
from d2l_hpo.experiment.storage import config_column, plain, read_tables

# settings a resumed run must share with the run it continues
MUST_MATCH = ("n_workers", "scheduling", "metric", "mode", "config_columns", "constants",
              "searcher", "early_stopping", "grace_period", "reduction_factor", "resource_attr")


@dataclass
class ResumePlan:
    """What a resumed run starts from."""

    settings: RunSettings  # the earlier run's, with this call's budget
    state: RunState  # the earlier run's, its clock where it stopped
    kept_trials: list[dict] = field(default_factory=list)  # rows of finished trials
    kept_reports: list[dict] = field(default_factory=list)  # their reports
    redo: list[dict] = field(default_factory=list)  # configurations to run again first
    next_trial_id: int = 0
    # (pid, started) of this machine's trial processes the earlier run may have left
    # running (killed with kill -9): the backend stops them before the run goes on
    leftovers: list[tuple] = field(default_factory=list)

    @property
    def trials_left(self) -> int | None:
        budget = self.settings.max_num_trials
        return None if budget is None else budget - len(self.kept_trials)

    @property
    def time_left(self) -> float | None:
        budget = self.settings.max_wallclock_time
        return None if budget is None else budget - self.state.wallclock

    @property
    def nothing_left(self) -> bool:
        return (self.trials_left is not None and self.trials_left <= 0) or (
            self.time_left is not None and self.time_left <= 0)


def plan_resume(path: Path, settings: RunSettings) -> ResumePlan:
    """How to go on with the experiment in ``path``, asked for with ``settings``.

    :raises ValueError: a setting differs from the earlier run's, or the seed does
    """
    data, trials, results = read_tables(path)
    old, state = from_json(data)
    # the clock goes on from the last thing that happened, even after a kill -9
    state.wallclock = build_experiment(path, dict(data), trials.copy(), results.copy()).wallclock
    for key in MUST_MATCH:
        if getattr(old, key) != getattr(settings, key):
            raise ValueError(
                f"cannot resume '{settings.name}': its {key} was {getattr(old, key)!r}, "
                f"now {getattr(settings, key)!r}; resume with the same settings, or start a "
                "new name")
    _check_same_space(old, settings)
    if settings.seed is not None and settings.seed != old.seed:
        raise ValueError(f"cannot resume '{settings.name}' with seed={settings.seed}: it ran "
                         f"with seed={old.seed}")
    leftovers = []
    if len(trials) and "pid_started" in trials:  # trial processes that outlived a killed run
        left = trials[~trials["status"].isin(FINISHED) & trials["node"].isin([LOCAL_NODE])]
        leftovers = list(zip(left["pid"], left["pid_started"]))
    finished = trials[trials["status"].isin(FINISHED)] if len(trials) else trials
    redo = trials[~trials["status"].isin(FINISHED)] if len(trials) else trials
    keep_ids = set(finished["trial_id"]) if len(finished) else set()
    reports = results[results["trial_id"].isin(keep_ids)] if len(results) else results
    redo_ids = [int(i) for i in redo["trial_id"]] if len(redo) else []
    next_id = max([int(trials["trial_id"].max()) + 1 if len(trials) else 0,
                   *[i + 1 for i in state.abandoned]])
    state.abandoned = sorted({*state.abandoned, *redo_ids})
    state.resumed += 1
    state.messages = []  # what this run says
    if old.objective_code and settings.objective_code and \
            old.objective_code != settings.objective_code:
        state.messages.append(
            f"The objective changed since the earlier run: trials from {next_id} on run "
            f"the objective given now ({settings.objective}); trials "
            f"{sorted(int(i) for i in keep_ids) or 'none'} keep what the earlier code reported.")
    merged = dataclasses.replace(
        settings, seed=old.seed, initial_config=old.initial_config)
    return ResumePlan(
        settings=merged, state=state,
        kept_trials=finished.to_dict("records") if len(finished) else [],
        kept_reports=reports.to_dict("records") if len(reports) else [],
        redo=[{**settings.constants,
               **{c: plain(r[config_column(c)]) for c in settings.config_columns}}
              for r in redo.to_dict("records")] if len(redo) else [],
        next_trial_id=next_id, leftovers=leftovers)


def _check_same_space(old: RunSettings, new: RunSettings) -> None:
    """Refuse to mix two spaces in one experiment: every searched key must have the same
    domain (type, bounds, log scale, choices) as in the earlier run. (An experiment
    written before domains were recorded is compared by its keys and constants only.)"""
    if not old.space:
        return
    for key in new.config_columns:
        before, now = old.space.get(key), new.space.get(key)
        if before != now:
            raise ValueError(
                f"cannot resume '{new.name}': its config space searched '{key}' over "
                f"{describe_domain(before) if before else 'nothing'}, now over "
                f"{describe_domain(now) if now else 'nothing'}; resume with the same space, "
                "or start a new name")


def points_to_evaluate(plan: ResumePlan | None, initial_config: dict[str, Any] | None) -> list:
    """The configurations to run before random ones: the trials to redo, and the initial
    configuration unless an earlier run got to start it."""
    first = [initial_config] if initial_config else []
    if plan is None:
        return first
    return plan.redo + (first if plan.next_trial_id == 0 else [])
