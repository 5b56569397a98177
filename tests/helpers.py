"""Hand-made experiments for tests that need tables, not runs."""
import math

import pandas as pd

from d2l_hpo.results import build_experiment


def handmade_experiment(tmp_path, rows=None, trials=None, n_workers=2, mode="min",
                        scheduling="async", wallclock=10.0):
    trials = trials if trials is not None else pd.DataFrame({
        "trial_id": [0, 1, 2, 3],
        "status": ["completed", "completed", "failed", "completed"],
        "start": [0.0, 0.0, 4.0, 6.0],
        "end": [4.0, 6.0, 5.0, 10.0],
        "learning_rate": [0.1, 0.5, 0.9, 0.2],
        "batch_size": [64, 128, 256, 32],
    })
    rows = rows if rows is not None else pd.DataFrame({
        "trial_id": [0, 0, 1, 1, 2, 3, 3],
        "time": [2.0, 4.0, 3.0, 6.0, 4.5, 8.0, 10.0],
        "epoch": [1, 2, 1, 2, 1, 1, 2],
        "validation_error": [0.8, 0.5, 0.7, 0.4, math.nan, 0.6, 0.3],
    })
    settings = {"name": "handmade", "n_workers": n_workers, "scheduling": scheduling,
                "metric": "validation_error", "mode": mode, "wallclock": wallclock,
                "config_columns": ["learning_rate", "batch_size"]}
    return build_experiment(tmp_path, settings, trials, rows)
