"""d2l_hpo: helpers for the d2l-style lessons on distributed random search.

    import d2l_hpo
    exp = d2l_hpo.run_random_search(d2l_hpo.synthetic_objective,
                                    d2l_hpo.synthetic_space(), n_workers=4,
                                    max_num_trials=20, seed=0)
    d2l_hpo.plot_worker_timeline(exp)
"""

from d2l_hpo.analysis import (
    compare, epoch_seconds, gaps_after_last_report, ideal_makespan, ideal_starts, launch_gaps,
    time_to_reach,
)
from d2l_hpo.budget import budget, by_budget
from d2l_hpo.claims import ClaimFailed, claim
from d2l_hpo.data import (
    FashionMNISTInMemory, FashionMNISTNotFoundError, find_fashion_mnist, stage_fashion_mnist,
)
from d2l_hpo.objectives import lenet_objective, synthetic_objective
from d2l_hpo.plots import (
    plot_best_so_far, plot_learning_curves, plot_speedup, plot_sync_vs_async,
    plot_trials_over_time, plot_worker_timeline,
)
from d2l_hpo.results import Experiment, load_experiment
from d2l_hpo.recorder import ResultsNotSavedError
from d2l_hpo.runner import (
    MetricNotReportedError, TooManyFailuresError, run_random_search, sample_configs,
)
from d2l_hpo.searcher import MetricTypeError
from d2l_hpo.storage import CorruptExperimentError
from d2l_hpo.spaces import (
    LENET_INITIAL_CONFIG, ConfigSpaceError, lenet_space, synthetic_space,
    validate_config_space,
)

__version__ = "0.1.0"


def shutdown() -> None:
    """Close the warm trial servers this process keeps between searches (they close by
    themselves when the interpreter exits). The next search starts a fresh one."""
    from d2l_hpo.backends._warm_pool import shutdown as close_servers

    close_servers()


__all__ = [
    "budget", "by_budget", "claim", "compare", "epoch_seconds", "gaps_after_last_report",
    "ideal_makespan", "ideal_starts",
    "launch_gaps", "time_to_reach",
    "plot_speedup",
    "Experiment", "ConfigSpaceError", "FashionMNISTInMemory", "LENET_INITIAL_CONFIG",
    "find_fashion_mnist", "lenet_objective", "lenet_space", "load_experiment",
    "plot_best_so_far", "plot_learning_curves", "plot_sync_vs_async", "plot_trials_over_time",
    "plot_worker_timeline", "run_random_search", "sample_configs",
    "shutdown", "stage_fashion_mnist", "synthetic_objective", "synthetic_space",
    "validate_config_space",
    # every error a user can meet
    "ClaimFailed", "CorruptExperimentError", "FashionMNISTNotFoundError",
    "MetricNotReportedError", "MetricTypeError", "ResultsNotSavedError",
    "TooManyFailuresError",
]
