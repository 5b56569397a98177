"""REA (regularized evolution, Real et al. 2019): a population of the latest results;
each new configuration mutates one value of the best of a few sampled members."""

from d2l_hpo.search.base import SearchStrategy


class REA(SearchStrategy):
    name = "rea"
    summary = "mutates the best of a few members of the latest results"
    # Syne Tune's defaults (100 and 10) would make it random search for the first 100
    # trials, more than a lesson runs
    population_size = 10
    sample_size = 3

    def make_searcher(self, config_space, seed):
        from syne_tune.optimizer.schedulers.searchers.regularized_evolution import (
            RegularizedEvolution,
        )

        return RegularizedEvolution(config_space, random_seed=seed,
                                    population_size=self.population_size,
                                    sample_size=self.sample_size)
