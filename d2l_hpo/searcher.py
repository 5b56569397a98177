"""What to try next, and whether to go on: Syne Tune's random search, seeded for real,
and its asynchronous successive halving (ASHA) with the same searcher inside.

Syne Tune 0.16's ``RandomSearcher`` samples from numpy's global generator, so its
``random_seed`` does not fix the sequence of configurations; ``SeededRandomSearcher``
draws from its own generator, so the same seed gives the same configurations in the
same order, in sync and async mode, on any backend, with or without early stopping.
"""

from __future__ import annotations

import math

import numpy as np
from syne_tune.config_space import Domain, cast_config_values, postprocess_config
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.optimizer.schedulers.asha import AsynchronousSuccessiveHalving
from syne_tune.optimizer.schedulers.searchers.random_searcher import RandomSearcher


class MetricTypeError(TypeError):
    """A trial reported the metric (or the epoch that early stopping counts) as
    something other than a real number: a string, a bool, a list, ..."""


def reported_number(trial_id, result: dict, key: str) -> float | None:
    """The value ``key`` of a trial's report when it is a real number (NaN and infinity
    included); None when the report lacks it or gives null.

    :raises MetricTypeError: any other value (``"0.5"``, ``True``, ``[0.5]``): the run
        would go on as if nothing were wrong while tables read some of them back as
        numbers and early stopping ignores them, so it stops with the trial, the key and
        the value's type named
    """
    value = result.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise MetricTypeError(
        f"trial {trial_id} reported {key}={value!r}, a {type(value).__name__}; report a "
        f"real number: Reporter()({key}=float(value)) (a tensor: value.item())")


class SeededRandomSearcher(RandomSearcher):
    """Random search whose configurations depend only on ``random_seed``.

    Syne Tune 0.16's ``RandomSearcher`` samples from numpy's global generator, so
    its ``random_seed`` does not fix the sequence. This one draws from its own
    generator, and suggests nothing after ``max_suggestions`` configurations.
    """

    def __init__(self, config_space, points_to_evaluate=None, random_seed=None,
                 max_suggestions=None):
        super().__init__(config_space, points_to_evaluate=points_to_evaluate,
                         random_seed=random_seed)
        self.rng = np.random.RandomState(self.random_seed)
        self.max_suggestions = max_suggestions
        self.num_suggested = 0
        self.num_random = 0  # configurations drawn from rng so far

    def _draw(self) -> dict:
        self.num_random += 1
        return {k: v.sample(random_state=self.rng) if isinstance(v, Domain) else v
                for k, v in self.config_space.items()}

    def skip_draws(self, n: int) -> None:
        """Advance the sequence past ``n`` draws (those of an earlier, resumed run)."""
        for _ in range(n):
            for v in self.config_space.values():
                if isinstance(v, Domain):
                    v.sample(random_state=self.rng)

    def suggest(self) -> dict | None:
        if self.max_suggestions is not None and self.num_suggested >= self.max_suggestions:
            return None  # the Tuner then waits for the running trials and stops
        config = self._next_points_to_evaluate()
        if config is None:
            config = self._draw()
        self.num_suggested += 1
        return config


class SeededRandomSearch(RandomSearch):
    """Syne Tune's ``RandomSearch`` with a ``SeededRandomSearcher`` inside, which also

    - stops a trial as soon as it reports a NaN or infinite metric (it diverged:
      more epochs will not bring it back), and
    - lets a report without the metric pass (the runner says so at the end)
      instead of failing the whole experiment with a ``KeyError``.
    """

    def __init__(self, config_space, metric, mode, seed, points_to_evaluate=None,
                 max_num_trials=None):
        super().__init__(config_space, metrics=[metric], do_minimize=(mode == "min"),
                         random_seed=seed)
        self.searcher = SeededRandomSearcher(config_space, points_to_evaluate=points_to_evaluate,
                                             random_seed=seed, max_suggestions=max_num_trials)

    def on_trial_result(self, trial, result):
        value = reported_number(trial.trial_id, result, self.metrics[0])
        if value is None:
            return SchedulerDecision.CONTINUE
        if not math.isfinite(value):
            return SchedulerDecision.STOP
        return super().on_trial_result(trial, result)

    def on_trial_complete(self, trial, result):
        value = reported_number(trial.trial_id, result, self.metrics[0])
        if value is not None and math.isfinite(value):
            super().on_trial_complete(trial, result)


class _Suggestions:
    """What ASHA asks of its searcher (suggest; hear about results and errors), answered
    by a ``SeededRandomSearcher``: random search ignores the results."""

    def __init__(self, searcher: SeededRandomSearcher):
        self.searcher = searcher

    def suggest(self):
        return self.searcher.suggest()

    def on_trial_result(self, *args, **kwargs):
        pass

    def on_trial_error(self, *args, **kwargs):
        pass

    def __getattr__(self, name):  # skip_draws, num_random, ... of the seeded searcher
        searcher = self.__dict__.get("searcher")
        if searcher is None:  # being unpickled
            raise AttributeError(name)
        return getattr(searcher, name)


def rung_levels(max_epochs: int, grace_period: int, reduction_factor: float) -> list[float]:
    """The epochs at which ASHA can stop a trial: ``grace_period * reduction_factor**k``
    below ``max_epochs`` (as Syne Tune's one-bracket ASHA places its rungs)."""
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    levels = (grace_period * reduction_factor ** k for k in range(count))
    return [level for level in levels if level < max_epochs]


class SeededASHA(AsynchronousSuccessiveHalving):
    """Syne Tune's asynchronous successive halving with one bracket, its configurations
    from a ``SeededRandomSearcher`` (so the same seed gives the same configurations, in
    the same order, as ``SeededRandomSearch``).

    A trial reports ``metric`` and ``resource_attr`` (the epoch) after each epoch.
    The rungs are at ``grace_period * reduction_factor**k`` epochs below ``max_t``;
    at a rung, a trial goes on only if its metric is among the best
    ``1 / reduction_factor`` of the trials that reached that rung so far, and is
    stopped (pruned) otherwise. ``pruned`` maps each pruned trial to its epoch.
    A trial that reaches ``max_t`` ends by itself (completed). As in
    ``SeededRandomSearch``, a NaN or infinite metric stops a trial (diverged) and a
    report without the metric passes.

    The only other random choice in Syne Tune's ASHA is the bracket of a new trial
    (from numpy's global generator); with one bracket there is nothing to choose, and
    the choice uses this scheduler's own generator anyway.
    """

    def __init__(self, config_space, metric, mode, seed, max_t, grace_period,
                 reduction_factor, resource_attr, points_to_evaluate=None,
                 max_num_trials=None):
        searcher = SeededRandomSearcher(config_space, points_to_evaluate=points_to_evaluate,
                                        random_seed=seed, max_suggestions=max_num_trials)
        super().__init__(config_space, metric=metric, do_minimize=(mode == "min"),
                         searcher=_Suggestions(searcher), time_attr=resource_attr,
                         max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=1, random_seed=seed)
        self.rng = np.random.RandomState(seed)
        self.pruned: dict[int, float] = {}

    def rung_levels(self) -> list[float]:
        """The epochs at which trials can be stopped, ascending."""
        return sorted(level for level, _ in self.brackets[0].rungs if level < self.max_t)

    def on_trial_add(self, trial):
        sizes = np.array([len(b.rungs) for b in self.brackets], dtype=float)
        weights = np.exp(sizes - sizes.max())
        self.trial_info[trial.trial_id] = self.brackets[
            self.rng.choice(len(self.brackets), p=weights / weights.sum())]

    def _level(self, trial, result) -> float:
        level = reported_number(trial.trial_id, result, self.time_attr)
        if level is None:
            raise ValueError(
                f"trial {trial.trial_id} reported {sorted(k for k in result if not k.startswith('st_'))} "
                f"without '{self.time_attr}': early stopping needs it in every report "
                f"(Reporter()({self.time_attr}=epoch, {self.metric}=...)), or pass "
                "resource_attr= the name the objective reports")
        return level

    def on_trial_result(self, trial, result):
        value = reported_number(trial.trial_id, result, self.metric)
        if value is None:
            return SchedulerDecision.CONTINUE
        if not math.isfinite(value):
            return SchedulerDecision.STOP
        level = self._level(trial, result)
        if level >= self.max_t:
            return SchedulerDecision.CONTINUE  # its last epoch: it ends by itself
        decision = super().on_trial_result(trial, result)
        if decision == SchedulerDecision.STOP:
            self.pruned[trial.trial_id] = level
        return decision

    def on_trial_complete(self, trial, result):
        value = reported_number(trial.trial_id, result, self.metric)
        if value is not None and math.isfinite(value) and self.time_attr in result:
            super().on_trial_complete(trial, result)
        else:
            self.trial_info.pop(trial.trial_id, None)

    def on_trial_remove(self, trial):
        self.trial_info.pop(trial.trial_id, None)

    def replay(self, reports: list[dict]) -> None:
        """Fill the rungs with the reports of trials an earlier run finished (a resume),
        in the order they were made, as if this scheduler had seen them."""
        sign = 1 if self.do_minimize else -1
        for report in reports:
            value, level = report.get(self.metric), report.get(self.time_attr)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in (value, level)):
                continue
            if not (math.isfinite(value) and math.isfinite(level)):
                continue
            self.brackets[0].on_result(trial_id=int(report["trial_id"]), cur_iter=level,
                                       metrics={self.metric: sign * value})


def seeded_random_search(config_space, metric, mode, seed, initial_config=None,
                         max_num_trials=None) -> SeededRandomSearch:
    """Syne Tune's ``RandomSearch``, seeded for real (see ``SeededRandomSearch``)."""
    return SeededRandomSearch(config_space, metric, mode, seed,
                              [initial_config] if initial_config else None, max_num_trials)


def sample_configs(config_space, n: int, seed: int, initial_config=None) -> list[dict]:
    """The first ``n`` configurations ``run_random_search`` evaluates for ``seed``
    (``initial_config`` first, when given), checked as ``run_random_search`` checks them."""
    from d2l_hpo.spaces import validate_config, validate_config_space

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0 (how many configurations), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    validate_config_space(config_space)
    if initial_config is not None:
        initial_config = validate_config(initial_config, config_space)
    searcher = SeededRandomSearcher(
        config_space, points_to_evaluate=[initial_config] if initial_config else None,
        random_seed=int(seed))
    return [postprocess_config(cast_config_values(searcher.suggest(), config_space),
                               config_space) for _ in range(int(n))]
