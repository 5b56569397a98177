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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from syne_tune.config_space import Categorical, Domain

from d2l_hpo.search.base import EarlyStopping, Problem
from d2l_hpo.search.registry import early_stopping_rule, searcher_class

# Seconds the tuner waits between looks at its busy workers when nothing wakes it
# earlier (Syne Tune's default is 5 s, see d2l_hpo.run.tuner)
POLL_INTERVAL = 0.05
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 120  # a folder name (file systems allow 255 bytes)


def default_name(objective_name: str, stamp: str) -> str:
    """A valid experiment name from a function's name (``<lambda>``, ``λfit``, ...)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", objective_name.replace("_", "-")).strip("-._")
    return f"{(base or 'objective')[:MAX_NAME_LENGTH - len(stamp) - 1]}-{stamp}"


def objective_code(objective) -> str | None:
    """A fingerprint of what a function does: its bytecode, constants, names and
    defaults, nested functions included, but not where it sits (file name, line
    numbers) nor its docstring, so that the same function defined in a new Jupyter
    kernel or a few lines lower has the same fingerprint. None for what is not a plain
    function."""
    code = getattr(objective, "__code__", None)
    if code is None:
        return None
    import hashlib

    digest = hashlib.md5()
    doc = getattr(objective, "__doc__", None)
    _digest_code(digest, code, skip_doc=doc is not None)
    digest.update(repr(getattr(objective, "__defaults__", None)).encode())
    digest.update(repr(sorted((getattr(objective, "__kwdefaults__", None) or {}).items())).encode())
    return digest.hexdigest()


def _digest_code(digest, code, skip_doc: bool = False) -> None:
    import types

    digest.update(code.co_code)
    digest.update(repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                        code.co_flags, code.co_names, code.co_varnames, code.co_freevars,
                        code.co_cellvars)).encode())
    for index, const in enumerate(code.co_consts):
        if isinstance(const, types.CodeType):
            _digest_code(digest, const)
        elif not (skip_doc and index == 0 and isinstance(const, str)):
            digest.update(repr(const).encode())


def space_description(config_space: dict[str, Any]) -> dict[str, Any]:
    """Each searched key's domain as plain JSON (type, bounds, log scale, choices): what
    a resumed run must search again."""
    from syne_tune.config_space import to_dict

    return json.loads(json.dumps({k: to_dict(v) for k, v in config_space.items()
                                  if isinstance(v, Domain)}, default=_plain_json))


def _plain_json(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{value!r} ({type(value).__name__}) is not JSON")


def describe_domain(description: dict[str, Any]) -> str:
    """A domain of ``space_description`` in a line: ``Float(lower=0, upper=1), LogUniform``."""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in (description.get("domain_kwargs") or {}).items())
    sampler = description.get("sampler_cls")
    return f"{description.get('domain_cls')}({kwargs})" + (f", {sampler}" if sampler else "")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(value):
    """A numpy integer as the int it holds; anything else (bools included) unchanged."""
    if isinstance(value, np.integer) and not isinstance(value, np.bool_):
        return int(value)
    return value


def _number(value):
    """A numpy integer or float as the Python number it holds; anything else unchanged."""
    if isinstance(value, (np.integer, np.floating)) and not isinstance(value, np.bool_):
        return value.item()
    return value


def _is_seconds(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 \
        and math.isfinite(value)


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
    config_columns: list[str] = field(default_factory=list)  # the searched keys
    space: dict[str, Any] = field(default_factory=dict)  # their domains (space_description)
    constants: dict[str, Any] = field(default_factory=dict)  # the space's fixed values
    # searched keys whose values are all strings: read back as strings ("007" stays "007")
    string_columns: list[str] = field(default_factory=list)
    initial_config: dict[str, Any] | None = None
    objective_code: str | None = None  # a fingerprint of the objective's code
    searcher: str = "random"  # a name in d2l_hpo.search.registry.SEARCHERS
    early_stopping: str | None = None  # None, or a name in EARLY_STOPPING ("asha")
    grace_period: int = 1  # ASHA's first rung (in levels of resource_attr)
    reduction_factor: float = 3  # ASHA keeps the best 1 / reduction_factor at a rung
    resource_attr: str = "epoch"  # the reported value that counts a trial's progress
    rungs: list[float] = field(default_factory=list)  # epochs where a trial can be stopped

    def __post_init__(self):
        """Raise an error naming the first setting that cannot work, with its value.
        (numpy integers and floats are taken as the numbers they hold; bools are not
        numbers here.)"""
        for label in ("n_workers", "max_num_trials", "max_failures", "seed"):
            setattr(self, label, _integer(getattr(self, label)))
        for label in ("max_wallclock_time", "max_trial_time"):
            setattr(self, label, _number(getattr(self, label)))
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
            if value is not None and not _is_seconds(value):
                raise ValueError(f"{label} must be a number of seconds > 0, got {value!r}")
        if self.max_num_trials is not None and (
                not _is_int(self.max_num_trials) or self.max_num_trials < 1):
            raise ValueError(
                f"max_num_trials must be an integer >= 1, got {self.max_num_trials!r}")
        if not _is_int(self.max_failures) or self.max_failures < 0:
            raise ValueError(f"max_failures must be an integer >= 0, got {self.max_failures!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**32):
            raise ValueError(
                f"seed must be None or an integer from 0 to 2**32 - 1, got {self.seed!r}")
        self._check_early_stopping()
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"name {self.name!r} must start with a letter or digit and hold only "
                "letters, digits, '.', '_' and '-'")
        if len(self.name) > MAX_NAME_LENGTH:
            raise ValueError(f"name is {len(self.name)} characters long; the most is "
                             f"{MAX_NAME_LENGTH}: {self.name[:40]}...")

    def _check_early_stopping(self) -> None:
        self.grace_period = _integer(self.grace_period)
        self.reduction_factor = _number(self.reduction_factor)
        strategy = searcher_class(self.searcher)  # a ValueError naming the choices
        early_stopping_rule(self.early_stopping)
        if not _is_int(self.grace_period) or self.grace_period < 1:
            raise ValueError(f"grace_period must be an integer >= 1 (epochs before a trial "
                             f"can be stopped), got {self.grace_period!r}")
        if isinstance(self.reduction_factor, bool) or not isinstance(
                self.reduction_factor, (int, float)) or not (
                math.isfinite(self.reduction_factor) and self.reduction_factor > 1):
            raise ValueError(f"reduction_factor must be a number > 1 (a rung keeps the best "
                             f"1 / reduction_factor), got {self.reduction_factor!r}")
        if not isinstance(self.resource_attr, str) or not self.resource_attr \
                or self.resource_attr.startswith("st_"):
            raise ValueError(f"resource_attr must be the name of a reported value (such as "
                             f"'epoch'), got {self.resource_attr!r}")
        if self.early_stopping is not None:
            self.stopping_rule().check(None, self.scheduling, strategy)

    def problem(self, config_space: dict[str, Any]) -> Problem:
        """What the search strategy and the stopping rule are told."""
        return Problem(config_space, self.metric, self.mode, self.seed or 0,
                       self.resource_attr)

    def stopping_rule(self) -> EarlyStopping | None:
        """The early-stopping rule these settings name, with their options."""
        if self.early_stopping is None:
            return None
        return early_stopping_rule(self.early_stopping, grace_period=self.grace_period,
                                   reduction_factor=self.reduction_factor)

    def check_search(self, config_space: dict[str, Any]) -> list[float]:
        """Check the searcher and the stopping rule against the space (a ``ValueError``
        naming what cannot work); the rungs of early stopping (none without it)."""
        rule = self.stopping_rule()
        if rule is None:
            return []
        problem = self.problem(config_space)
        rule.check(problem, self.scheduling, searcher_class(self.searcher))
        return rule.rungs(problem)

    @staticmethod
    def space_fields(config_space: dict[str, Any]) -> dict[str, Any]:
        """``config_columns``, ``space``, ``constants`` and ``string_columns`` of a
        config space."""
        return {"config_columns": [k for k, v in config_space.items() if isinstance(v, Domain)],
                "space": space_description(config_space),
                "constants": {k: v for k, v in config_space.items()
                              if not isinstance(v, Domain)},
                "string_columns": [k for k, v in config_space.items()
                                   if isinstance(v, Categorical)
                                   and all(isinstance(c, str) for c in v.categories)]}


@dataclass
class RunState:
    """What a run records about itself while it runs."""

    start_timestamp: float | None = None  # time.time() when its clock started
    wallclock: float = 0.0  # seconds on its clock (a resumed run goes on from there)
    finished: bool = False  # False while running, or when interrupted or killed
    random_draws: int = 0  # configurations the searcher drew so far
    search: dict[str, Any] = field(default_factory=dict)  # SearchStrategy.state(): a resume replays it
    resumed: int = 0  # how many times it was resumed
    # seconds from the call of run_random_search to the start of the clock (the
    # backend's warm-up: importing the objective's modules), summed over resumed calls
    setup_time: float = 0.0
    warm_server: str = ""  # the last call's fork server: "started", "reused" or ""
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
    from d2l_hpo.experiment.storage import EXPERIMENT_FILE

    return from_json(json.loads((Path(path) / EXPERIMENT_FILE).read_text()))
