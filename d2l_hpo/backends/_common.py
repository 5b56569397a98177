"""What both backends do with an objective: check that it can travel alone, find what
it imports, give a trial its thread budget and fresh random seeds, and call it with the
configuration values it accepts.

Standard library only: a trial started as a new interpreter runs ``_trial_main.py`` as
a script and loads this file next to it, without importing the package (and torch
with it) before the objective asks for it.
"""

from __future__ import annotations

import dis
import inspect
import os
import sys
import types
from typing import Any, Callable

# read by torch, numpy's BLAS and lenet_objective when they start their thread pools
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "D2L_HPO_THREADS")


def check_self_contained(function: Callable) -> None:
    """Raise when ``function`` cannot be shipped to a worker on its own."""
    if isinstance(function, types.MethodType):
        raise TypeError(
            f"objective {function.__qualname__} is a bound method: each trial would call it "
            "without its object ('missing self'). Define the objective as a top-level "
            "function and pass what the object holds through the config space")
    if not isinstance(function, types.FunctionType):
        raise TypeError(
            f"objective must be a function defined with def (or a lambda), got "
            f"{type(function).__name__} {function!r}; a functools.partial or a callable "
            "object cannot be shipped to the trials: write a top-level function and put "
            "fixed values into the config space as constants")
    code = function.__code__
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


def imported_modules(function: Callable) -> list[str]:
    """The modules ``function`` may import in its body, in order, nested functions
    included: ``import torch`` gives ``torch``; ``from d2l import torch`` gives ``d2l``
    and ``d2l.torch`` (which may turn out to be a name, not a module)."""
    names, codes = [], [function.__code__]
    while codes:
        code = codes.pop()
        module = None
        for ins in dis.get_instructions(code):
            if ins.opname == "IMPORT_NAME":
                module = ins.argval
                candidates = [module]
            elif ins.opname == "IMPORT_FROM" and module:  # may be a submodule
                candidates = [f"{module}.{ins.argval}"]
            else:
                continue
            names.extend(c for c in candidates if c not in names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def set_thread_budget(threads: int) -> None:
    """Let this process use ``threads`` CPU threads: the variables libraries read when
    they start, and torch's own setting when torch is loaded already."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    if "numpy" in sys.modules and threads > 1:  # its BLAS started with one thread
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        threadpool_limits(int(threads), user_api="blas")


def fresh_state(threads: int) -> None:
    """In a process that ran (or forked from) other code: what a newly started trial
    interpreter would have: random seeds from entropy and the trial's thread budget."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()
    set_thread_budget(threads)


def call_objective(objective: Callable, config: dict[str, Any]):
    """Call ``objective`` with the values of ``config`` it accepts (all of them when it
    takes ``**kwargs``); the space may hold constants a trial does not need."""
    code = objective.__code__
    if not code.co_flags & inspect.CO_VARKEYWORDS:
        accepted = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        config = {k: v for k, v in config.items() if k in accepted}
    return objective(**config)


def check_gpu_settings(num_gpus_per_trial: Any, gpus_to_use: Any) -> None:
    """Raise for GPU settings Syne Tune's ``LocalBackend`` would take and then trip on."""
    if isinstance(num_gpus_per_trial, bool) or not isinstance(num_gpus_per_trial, int) \
            or num_gpus_per_trial < 1:
        raise ValueError(f"num_gpus_per_trial must be an integer >= 1, got {num_gpus_per_trial!r}")
    if gpus_to_use is not None:
        if isinstance(gpus_to_use, (str, bytes)) or not hasattr(gpus_to_use, "__iter__"):
            raise ValueError(f"gpus_to_use must be a list of GPU indices, got {gpus_to_use!r}")
        gpus = list(gpus_to_use)
        if not gpus or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus):
            raise ValueError(f"gpus_to_use must be a non-empty list of GPU indices >= 0, "
                             f"got {gpus_to_use!r}")
        if len(set(gpus)) != len(gpus):
            raise ValueError(f"gpus_to_use lists a GPU twice: {gpus_to_use!r}")


def copy_checkpoint_folder(source, target) -> None:
    """Make ``target`` a copy of the checkpoint folder ``source`` (empty when ``source``
    does not exist: the trial saved nothing)."""
    import shutil

    shutil.rmtree(target, ignore_errors=True)
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        os.makedirs(target, exist_ok=True)


def die_with_parent() -> None:
    """Linux: be killed when the tuner dies, even by kill -9, so no trial outlives it."""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the tuner died before we got here
            os._exit(1)
    except (OSError, AttributeError):
        pass  # not Linux: the runner kills leftovers when the experiment resumes
