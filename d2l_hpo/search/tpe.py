"""TPE (tree-structured Parzen estimator, Bergstra et al. 2011): density models of the
good and the bad configurations seen so far; it suggests where good is likely."""

from syne_tune.config_space import Domain

from d2l_hpo.search.base import SearchStrategy


class TPE(SearchStrategy):
    name = "tpe"
    summary = "models where good and bad results lie, suggests where good ones are likely"
    # statsmodels' KDE draws from numpy's global generator (this strategy's own, see
    # SearchStrategy) and warns that it will draw fresh entropy after January 2028;
    # test_search's reproducibility tests fail when it does
    # statsmodels also divides by zero in its kernel for a choice when all the good
    # points share one value (num_levels - 1 = 0: tables whose keys are all choices)
    ignore_warnings = ("After 0.17 or January 2028", "divide by zero encountered in divide")
    # ... and then logs a warning for each candidate whose score became infinite
    ignore_log_messages = ("candidate has non finite acquisition function value",)

    def make_searcher(self, config_space, seed):
        from syne_tune.optimizer.schedulers.searchers.kde import KernelDensityEstimator

        # Syne Tune fits its first model once the best 15% hold more points than there
        # are searched keys: about 20 results for two keys, more than a lesson runs.
        # One point more than the keys fits the first model after about 6 results.
        searched = sum(isinstance(v, Domain) for v in config_space.values())
        return KernelDensityEstimator(config_space, random_seed=seed,
                                      num_min_data_points=searched + 1)
