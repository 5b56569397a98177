"""d2l_hpo: helpers for the d2l-style lessons on distributed hyperparameter search.

    import d2l_hpo
    exp = d2l_hpo.run_random_search(d2l_hpo.synthetic_objective,
                                    d2l_hpo.synthetic_space(), n_workers=4,
                                    max_num_trials=20, seed=0)
    d2l_hpo.plot_worker_timeline(exp)

    exp = d2l_hpo.run_search(d2l_hpo.synthetic_objective, d2l_hpo.synthetic_space(),
                             searcher="tpe", n_workers=4, max_num_trials=20, seed=0)

The package is grouped by layer, and imports only go down (import-linter checks it):
``run`` (one search call) uses ``backends`` (where trials run) and ``search`` (what to
try next), which use ``experiment`` (a run's tables) and ``lesson`` (objectives, data),
which use ``common``. The names below are loaded when first used, so that a trial
process, which imports ``d2l_hpo.lesson``, never loads the tuner.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> the module that defines it
_WHERE = {
    # run a search
    "run_search": "d2l_hpo.run.runner",
    "run_random_search": "d2l_hpo.run.runner",
    "searcher_sweep": "d2l_hpo.run.sweep",
    "sweep_summary": "d2l_hpo.run.sweep",
    "usable_cores": "d2l_hpo.common.system",
    "SEARCHERS": "d2l_hpo.search.registry",
    "EARLY_STOPPING": "d2l_hpo.search.registry",
    "sample_configs": "d2l_hpo.search.random",
    "rung_levels": "d2l_hpo.search.asha",
    "ASHA": "d2l_hpo.search.asha",
    # spaces
    "LENET_INITIAL_CONFIG": "d2l_hpo.search.spaces",
    "lenet_space": "d2l_hpo.search.spaces",
    "synthetic_space": "d2l_hpo.search.spaces",
    "validate_config_space": "d2l_hpo.search.spaces",
    "uniform": "d2l_hpo.search.spaces",
    "loguniform": "d2l_hpo.search.spaces",
    "randint": "d2l_hpo.search.spaces",
    "choice": "d2l_hpo.search.spaces",
    # what a lesson trains and checks
    "lenet_objective": "d2l_hpo.lesson.objectives",
    "synthetic_objective": "d2l_hpo.lesson.objectives",
    "synthetic_seconds": "d2l_hpo.lesson.objectives",
    "FashionMNISTInMemory": "d2l_hpo.lesson.data",
    "find_fashion_mnist": "d2l_hpo.lesson.data",
    "stage_fashion_mnist": "d2l_hpo.lesson.data",
    "budget": "d2l_hpo.lesson.budget",
    "by_budget": "d2l_hpo.lesson.budget",
    "claim": "d2l_hpo.lesson.claims",
    # an experiment and its analysis
    "Experiment": "d2l_hpo.experiment.results",
    "load_experiment": "d2l_hpo.experiment.results",
    "compare": "d2l_hpo.experiment.analysis",
    "epoch_seconds": "d2l_hpo.experiment.analysis",
    "gaps_after_last_report": "d2l_hpo.experiment.analysis",
    "ideal_makespan": "d2l_hpo.experiment.measures",
    "ideal_starts": "d2l_hpo.experiment.measures",
    "launch_gaps": "d2l_hpo.experiment.analysis",
    "time_to_reach": "d2l_hpo.experiment.analysis",
    "pending_overlap": "d2l_hpo.experiment.analysis",
    # figures: a data step and a drawing step each
    "trials_over_time": "d2l_hpo.plots",
    "learning_curves": "d2l_hpo.plots",
    "best_so_far": "d2l_hpo.plots",
    "worker_timeline": "d2l_hpo.plots",
    "speedup": "d2l_hpo.plots",
    "plot_best_so_far": "d2l_hpo.plots",
    "best_so_far_bands": "d2l_hpo.plots",
    "plot_searchers": "d2l_hpo.plots",
    "plot_learning_curves": "d2l_hpo.plots",
    "plot_speedup": "d2l_hpo.plots",
    "plot_sync_vs_async": "d2l_hpo.plots",
    "plot_trials_over_time": "d2l_hpo.plots",
    "plot_worker_timeline": "d2l_hpo.plots",
    # every error a user can meet
    "ClaimFailed": "d2l_hpo.lesson.claims",
    "ConfigSpaceError": "d2l_hpo.search.spaces",
    "CorruptExperimentError": "d2l_hpo.experiment.storage",
    "FashionMNISTNotFoundError": "d2l_hpo.lesson.data",
    "MetricNotReportedError": "d2l_hpo.run.runner",
    "MetricTypeError": "d2l_hpo.search.base",
    "ResultsNotSavedError": "d2l_hpo.run.recorder",
    "TooManyFailuresError": "d2l_hpo.run.runner",
}

# subpackages reached as attributes: d2l_hpo.benchmarks.tabular("fcnet-protein")
_MODULES = {"benchmarks": "d2l_hpo.benchmarks"}

__all__ = [*_WHERE, *_MODULES, "shutdown"]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'd2l_hpo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__():
    return sorted({*globals(), *__all__})


def shutdown() -> None:
    """Close the warm trial servers this process keeps between searches (they close by
    themselves when the interpreter exits). The next search starts a fresh one."""
    from d2l_hpo.backends._warm_pool import shutdown as close_servers

    close_servers()
