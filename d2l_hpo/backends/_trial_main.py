"""Entry point of one trial process: load the objective, call it with its config.

Started by ``SubprocessBackend`` as
``python _trial_main.py --st_config_json_filename CONFIG --st_checkpoint_dir DIR``.
The config arrives as JSON, so every value keeps its type.
"""

import hashlib
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path


def _arg(name: str) -> str:
    return sys.argv[sys.argv.index(f"--{name}") + 1]


def main() -> None:
    """Run the trial, then end the process at once.

    A normal interpreter exit with torch loaded took about 1.1 s here (measured:
    0.06 s with ``os._exit``), and the worker would sit idle for it. So after the
    objective returns (or raises, traceback printed) we flush and ``os._exit``;
    objectives close their own files (``with`` blocks), as they should anyway.
    """
    code = 0
    try:
        _run_trial()
    except SystemExit as stop:  # sys.exit(n) inside the objective keeps its code
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "D2L_HPO_THREADS")


def fresh_state(threads: int) -> None:
    """In a process that ran (or forked from) other code: what a newly started trial
    interpreter would have: random seeds from entropy and the trial's thread budget
    (environment variables, and torch's setting when torch is already imported)."""
    import random

    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.seed()
        torch.set_num_threads(threads)


def _die_with_parent() -> None:
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


def _run_trial() -> None:
    _die_with_parent()
    config_file = Path(_arg("st_config_json_filename"))
    trial_dir = config_file.parent
    try:
        config = json.loads(config_file.read_text())
        runtime = config.pop("_d2l_hpo", {})
        # a fair share of the cores, set before the objective imports torch/numpy
        threads = str(runtime.get("threads", 1))
        for var in THREAD_VARIABLES:
            os.environ[var] = threads
        if "torch" in sys.modules:  # a warm trial: torch read the variables already
            sys.modules["torch"].set_num_threads(int(threads))
        root = Path(config.pop("tune_function_root"))
        expected_hash = config.pop("tune_function_hash")
        blob = (root / "tune_function.dill").read_bytes()
        if hashlib.md5(blob).hexdigest() != expected_hash:
            raise RuntimeError("the stored objective changed after the experiment started")
        import dill

        objective = dill.loads(blob)
        accepted = objective.__code__.co_varnames[
            : objective.__code__.co_argcount + objective.__code__.co_kwonlyargcount]
        if not objective.__code__.co_flags & 0x08:  # no **kwargs: pass what it takes
            config = {k: v for k, v in config.items() if k in accepted}
        objective(**config)
    finally:
        # the exact end of the trial; the backend reads it instead of guessing.
        # Written under another name first: the tuner may read it at any moment.
        tmp = trial_dir / f".end.{os.getpid()}"
        tmp.write_text(str(time.time()))
        os.replace(tmp, trial_dir / "end")


if __name__ == "__main__":
    main()
