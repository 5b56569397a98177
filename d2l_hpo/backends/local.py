"""Trials as local subprocesses: Syne Tune's ``PythonBackend``, with three changes.

- The objective keeps its default argument values (``PythonBackend`` drops them,
  so every argument would have to be in the config space).
- The configuration reaches the trial as JSON, so ints, floats and strings keep
  their types and strings may contain spaces.
- Each trial gets a fair share of the CPU threads (``threads_per_trial``) through
  ``OMP_NUM_THREADS``/``D2L_HPO_THREADS`` before it imports anything.
"""

from __future__ import annotations

import subprocess
import types
from pathlib import Path
from typing import Any, Callable

from syne_tune.backend import PythonBackend
from syne_tune.backend.local_backend import LocalBackend

ENTRY_POINT = Path(__file__).with_name("_trial_main.py")


def count_gpus() -> int:
    """GPUs listed by ``nvidia-smi`` (0 without it). Syne Tune's own detection
    leaves a file ``std.out`` in the current directory; this one writes nothing."""
    try:
        listed = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len(listed.stdout.splitlines()) if listed.returncode == 0 else 0


def check_self_contained(function: Callable) -> None:
    """Raise ValueError when ``function`` cannot be shipped to a worker on its own."""
    code = getattr(function, "__code__", None)
    if code is None:
        raise TypeError(f"objective must be a Python function, got {function!r}")
    if code.co_freevars:
        raise ValueError(
            f"objective {function.__name__}() uses variables from an enclosing function "
            f"({', '.join(code.co_freevars)}); define it at top level and "
            "pass such values through the config space")


def detached_copy(function: Callable) -> types.FunctionType:
    """``function`` without its module globals (imports must be inside it), defaults kept."""
    check_self_contained(function)
    copy = types.FunctionType(function.__code__, {}, function.__name__, function.__defaults__)
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


class SubprocessBackend(PythonBackend):
    """Run each trial of ``objective`` in a fresh local Python process.

    :param objective: the function to tune; imports inside its body
    :param config_space: its configuration space
    :param threads_per_trial: CPU threads each trial may use; default 1
    :param rotate_gpus: give each trial its own GPU when there are several; default True
    """

    def __init__(self, objective: Callable, config_space: dict[str, Any],
                 threads_per_trial: int = 1, rotate_gpus: bool = True):
        detached = detached_copy(objective)
        super().__init__(tune_function=detached, config_space=config_space,
                         rotate_gpus=rotate_gpus)
        self.tune_function = detached
        self.entry_point = str(ENTRY_POINT)
        self.pass_args_as_json = True
        self.threads_per_trial = int(threads_per_trial)
        self.first_trial_id = 0  # a resumed experiment numbers on after its last trial

    def new_trial_id(self) -> int:
        return self.first_trial_id + len(self.trial_ids)

    def set_path(self, results_root: str | None = None, tuner_name: str | None = None):
        # PythonBackend warns when the folder exists; ours is created on purpose
        LocalBackend.set_path(self, results_root=results_root, tuner_name=tuner_name)

    def _prepare_for_schedule(self, num_gpus=None):
        if self.rotate_gpus and self.num_gpus is None and num_gpus is None:
            num_gpus = count_gpus()
        super()._prepare_for_schedule(num_gpus=num_gpus)

    def _schedule(self, trial_id: int, config: dict[str, Any]):
        config = {**config, "_d2l_hpo": {"threads": self.threads_per_trial}}
        super()._schedule(trial_id=trial_id, config=config)

    def __str__(self):
        return f"SubprocessBackend({self.tune_function.__name__})"
