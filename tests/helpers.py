"""Small objectives and a short search shared by the tests of several modules."""
from d2l_hpo import run_random_search
from d2l_hpo.search.spaces import uniform

SPACE = {"x": uniform(0.0, 1.0)}


def first_version(x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=1.0)


def fixed_version(x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=2.0)


def quick(objective, results_dir, space=SPACE, **kwargs):
    """Two trials on one worker, seed 0, no progress display (override any of them)."""
    args = dict(n_workers=1, max_num_trials=2, seed=0, results_dir=results_dir,
                progress=False)
    args.update(kwargs)
    return run_random_search(objective, space, **args)
