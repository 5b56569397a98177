"""BORE (Bayesian optimisation by density-ratio estimation, Tiao et al. 2021): a
classifier learns which configurations land in the best quarter; it suggests where
that classifier is most sure."""

from d2l_hpo.search.base import SearchStrategy


class BORE(SearchStrategy):
    name = "bore"
    summary = "a classifier of 'among the best quarter' picks the next configuration"

    def make_searcher(self, config_space, seed):
        from syne_tune.optimizer.schedulers.searchers.bore import Bore

        return Bore(config_space, random_seed=seed)
