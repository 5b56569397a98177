"""The settings of a run, checked before anything starts, and its state while it runs;
both are kept in the experiment's ``experiment.json``.

``RunSettings`` holds what the caller chose (workers, budget, metric, seed, ...) and
checks each value as it is made, with an error that names the setting, the value it
got and what would do. ``RunState`` holds what the run itself records (when it began,
its wall-clock time, whether it finished, how many random draws it made, ...). The
file is one flat JSON object with the fields of both, as ``Experiment.settings``
shows it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syne_tune.config_space import Domain

# Seconds the tuner waits between looks at its busy workers when nothing wakes it
# earlier (Syne Tune's default is 5 s, see d2l_hpo.tuner)
POLL_INTERVAL = 0.05
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class RunSettings:
    """What a run was asked to do (see ``run_random_search`` for each parameter)."""

    name: str
    n_workers: int
    scheduling: str = "async"
    metric: str = "validation_error"
    mode: str = "min"
    seed: int | None = None
    max_num_trials: int | None = None
    max_wallclock_time: float | None = None
    max_trial_time: float | None = None
    max_failures: int = 3
    objective: str = "objective"
    backend: str = "SubprocessBackend"
    poll_interval: float = POLL_INTERVAL
    config_columns: list[str] = field(default_factory=list)  # the searched keys
    constants: dict[str, Any] = field(default_factory=dict)  # the space's fixed values
    initial_config: dict[str, Any] | None = None

    def __post_init__(self):
        """Raise an error naming the first setting that cannot work, with its value."""
        if not _is_int(self.n_workers) or self.n_workers < 1:
            raise ValueError(f"n_workers must be an integer >= 1, got {self.n_workers!r}")
        if self.scheduling not in ("async", "sync"):
            raise ValueError(f"scheduling must be 'async' or 'sync', got {self.scheduling!r}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if not isinstance(self.metric, str) or not self.metric or self.metric.startswith("st_"):
            raise ValueError(
                f"metric must be the name the objective reports, got {self.metric!r}")
        if self.max_wallclock_time is None and self.max_num_trials is None:
            raise ValueError(
                "give a budget: max_wallclock_time (seconds), max_num_trials, or both")
        for label in ("max_wallclock_time", "max_trial_time"):
            value = getattr(self, label)
            if value is not None and (not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"{label} must be a number of seconds > 0, got {value!r}")
        if self.max_num_trials is not None and (
                not _is_int(self.max_num_trials) or self.max_num_trials < 1):
            raise ValueError(
                f"max_num_trials must be an integer >= 1, got {self.max_num_trials!r}")
        if not _is_int(self.max_failures) or self.max_failures < 0:
            raise ValueError(f"max_failures must be an integer >= 0, got {self.max_failures!r}")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"name {self.name!r} may hold only letters, digits, '.', '_' and '-'")

    @staticmethod
    def space_fields(config_space: dict[str, Any]) -> dict[str, Any]:
        """``config_columns`` and ``constants`` of a config space."""
        return {"config_columns": [k for k, v in config_space.items() if isinstance(v, Domain)],
                "constants": {k: v for k, v in config_space.items()
                              if not isinstance(v, Domain)}}


@dataclass
class RunState:
    """What a run records about itself while it runs."""

    start_timestamp: float | None = None  # time.time() when its clock started
    wallclock: float = 0.0  # seconds on its clock (a resumed run goes on from there)
    finished: bool = False  # False while running, or when interrupted or killed
    random_draws: int = 0  # configurations drawn at random so far (a resume skips them)
    resumed: int = 0  # how many times it was resumed
    abandoned: list[int] = field(default_factory=list)  # trials redone under new ids
    messages: list[str] = field(default_factory=list)  # what it said while running


def to_json(settings: RunSettings, state: RunState) -> str:
    """``experiment.json``: one flat object with the fields of both."""
    return json.dumps({**dataclasses.asdict(settings), **dataclasses.asdict(state)}, indent=1)


def from_json(data: dict[str, Any]) -> tuple[RunSettings, RunState]:
    """Settings and state from ``experiment.json`` (fields a file lacks keep their
    defaults; unknown ones are ignored)."""
    def pick(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in data.items() if k in names}
    return RunSettings(**pick(RunSettings)), RunState(**pick(RunState))


def read_settings(path: Path) -> tuple[RunSettings, RunState]:
    """The settings and state of the experiment in folder ``path``."""
    from d2l_hpo.storage import EXPERIMENT_FILE

    return from_json(json.loads((Path(path) / EXPERIMENT_FILE).read_text()))
