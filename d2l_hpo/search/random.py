"""Random search: every configuration drawn independently of all results, so it
parallelises with no change (the lessons' strategy)."""

import numpy as np
from syne_tune.optimizer.schedulers.searchers.random_searcher import RandomSearcher

from d2l_hpo.search.base import SearchStrategy


class RandomSearch(SearchStrategy):
    name = "random"
    learns = False
    summary = "each configuration drawn at random, independently of all results"

    def make_searcher(self, config_space, seed):
        return RandomSearcher(config_space, random_seed=seed)


def sample_configs(config_space, n: int, seed: int, initial_config=None) -> list[dict]:
    """The first ``n`` configurations random search evaluates for ``seed``
    (``initial_config`` first, when given), checked as ``run_random_search`` checks them."""
    from syne_tune.config_space import cast_config_values, postprocess_config

    from d2l_hpo.search.spaces import validate_config, validate_config_space

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0 (how many configurations), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    validate_config_space(config_space)
    if initial_config is not None:
        initial_config = validate_config(initial_config, config_space)
    strategy = RandomSearch(config_space, int(seed),
                            points=[initial_config] if initial_config else ())
    return [postprocess_config(cast_config_values(strategy.suggest(), config_space),
                               config_space) for _ in range(int(n))]
