"""What to try next: Syne Tune's random search, seeded for real.

Syne Tune 0.16's ``RandomSearcher`` samples from numpy's global generator, so its
``random_seed`` does not fix the sequence of configurations; ``SeededRandomSearcher``
draws from its own generator, so the same seed gives the same configurations in the
same order, in sync and async mode, on any backend.
"""

from __future__ import annotations

import math

import numpy as np
from syne_tune.config_space import Domain, cast_config_values, postprocess_config
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.optimizer.schedulers.searchers.random_searcher import RandomSearcher


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

    def _value(self, result):
        value = result.get(self.metrics[0])
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def on_trial_result(self, trial, result):
        value = self._value(result)
        if value is None:
            return SchedulerDecision.CONTINUE
        if not math.isfinite(value):
            return SchedulerDecision.STOP
        return super().on_trial_result(trial, result)

    def on_trial_complete(self, trial, result):
        value = self._value(result)
        if value is not None and math.isfinite(value):
            super().on_trial_complete(trial, result)


def seeded_random_search(config_space, metric, mode, seed, initial_config=None,
                         max_num_trials=None) -> SeededRandomSearch:
    """Syne Tune's ``RandomSearch``, seeded for real (see ``SeededRandomSearch``)."""
    return SeededRandomSearch(config_space, metric, mode, seed,
                              [initial_config] if initial_config else None, max_num_trials)


def sample_configs(config_space, n: int, seed: int, initial_config=None) -> list[dict]:
    """The first ``n`` configurations ``run_random_search`` evaluates for ``seed``."""
    searcher = SeededRandomSearcher(
        config_space, points_to_evaluate=[initial_config] if initial_config else None,
        random_seed=seed)
    return [postprocess_config(cast_config_values(searcher.suggest(), config_space),
                               config_space) for _ in range(n)]
