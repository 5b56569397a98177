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

if __package__:  # imported by the fork server (warm trials): the package is loaded
    from d2l_hpo.backends._common import call_objective, die_with_parent, set_thread_budget
else:  # run as a script by a new interpreter: its folder is sys.path[0]; stay light
    from _common import call_objective, die_with_parent, set_thread_budget


def _arg(name: str) -> str:
    return sys.argv[sys.argv.index(f"--{name}") + 1]


def main() -> None:
    """Run the trial, then end the process at once.

    A normal interpreter exit with torch loaded takes about a second, and the worker
    would sit idle for it (``benchmarks/README.md`` has the numbers). So after the
    objective returns (or raises, traceback printed) we flush and ``os._exit``;
    objectives close their own files (``with`` blocks), as they should anyway.
    """
    code = 0
    try:
        _run_trial()
    except SystemExit as stop:  # sys.exit(n) inside the objective keeps its code
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        if code and not isinstance(stop.code, int):  # sys.exit("why"): keep the why
            print(f"SystemExit: {stop.code}", file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _run_trial() -> None:
    die_with_parent()
    config_file = Path(_arg("st_config_json_filename"))
    trial_dir = config_file.parent
    try:
        config = json.loads(config_file.read_text())
        runtime = config.pop("_d2l_hpo", {})
        # a fair share of the cores, set before the objective imports torch/numpy
        set_thread_budget(int(runtime.get("threads", 1)))
        root = Path(config.pop("tune_function_root"))
        expected_hash = config.pop("tune_function_hash")
        blob = (root / "tune_function.dill").read_bytes()
        if hashlib.md5(blob).hexdigest() != expected_hash:
            raise RuntimeError("the stored objective changed after the experiment started")
        import dill

        call_objective(dill.loads(blob), config)
    finally:
        # the exact end of the trial; the backend reads it instead of guessing.
        # Written under another name first: the tuner may read it at any moment.
        # (storage.write_atomically does this too, but a cold trial must not import
        # the package: see the imports at the top)
        tmp = trial_dir / f".end.{os.getpid()}"
        tmp.write_text(str(time.time()))
        os.replace(tmp, trial_dir / "end")


if __name__ == "__main__":
    main()
