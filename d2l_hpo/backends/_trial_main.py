"""Entry point of one trial process: load the objective, call it with its config.

Started by ``SubprocessBackend`` as
``python _trial_main.py --st_config_json_filename CONFIG --st_checkpoint_dir DIR``.
The config arrives as JSON, so every value keeps its type.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path


def _arg(name: str) -> str:
    return sys.argv[sys.argv.index(f"--{name}") + 1]


def main() -> None:
    config_file = Path(_arg("st_config_json_filename"))
    trial_dir = config_file.parent
    try:
        config = json.loads(config_file.read_text())
        runtime = config.pop("_d2l_hpo", {})
        # a fair share of the cores, set before the objective imports torch/numpy
        threads = str(runtime.get("threads", 1))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "D2L_HPO_THREADS"):
            os.environ[var] = threads
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
        # the exact end of the trial; the backend reads it instead of guessing
        (trial_dir / "end").write_text(str(time.time()))


if __name__ == "__main__":
    main()
