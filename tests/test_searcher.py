"""The seeded searchers (fast tier, in-process trials): what they do with reports that
are not numbers, and what sample_configs accepts."""
import pytest

import d2l_hpo
from d2l_hpo.search.spaces import ConfigSpaceError, loguniform, randint


def reports(x: float, max_epochs: int, value: str, report=None):
    for epoch in range(1, max_epochs + 1):
        loss = (x - 0.3) ** 2 + 1 / epoch
        report(epoch=epoch, loss={"str": str(loss), "bool": loss < 0.5, "list": [loss],
                                  "number": loss, "nan-string": "nan"}[value])


SPACE = {"x": loguniform(0.06, 1.0), "max_epochs": 3, "value": "number"}


@pytest.mark.parametrize("early_stopping", [None, "asha"])
@pytest.mark.parametrize("value, kind", [("str", "str"), ("bool", "bool"), ("list", "list"),
                                         ("nan-string", "str")])
def test_a_metric_that_is_not_a_real_number_stops_the_run_naming_trial_key_and_type(
        in_process, results_dir, value, kind, early_stopping):
    with pytest.raises(d2l_hpo.MetricTypeError,
                       match=rf"trial 0 reported loss=.* a {kind}; report a real number"):
        d2l_hpo.run_random_search(reports, {**SPACE, "value": value}, n_workers=1,
                                  max_num_trials=3, metric="loss", seed=0,
                                  early_stopping=early_stopping, backend=in_process,
                                  results_dir=results_dir, progress=False, name="bad")
    # the run's tables are kept, the trial that made the report interrupted, not completed
    exp = d2l_hpo.load_experiment(results_dir / "bad")
    assert exp.trials["status"].tolist() == ["interrupted"]


def test_an_epoch_that_is_not_a_number_is_named_too(in_process, results_dir):
    def epoch_as_text(x: float, max_epochs: int, report=None):
        report(epoch="1", loss=x)

    with pytest.raises(d2l_hpo.MetricTypeError, match=r"reported epoch='1', a str"):
        d2l_hpo.run_random_search(epoch_as_text, {"x": loguniform(0.1, 1), "max_epochs": 3},
                                  n_workers=1, max_num_trials=2, metric="loss", seed=0,
                                  early_stopping="asha", backend=in_process,
                                  results_dir=results_dir, progress=False)


def test_numbers_pass_as_before(in_process, results_dir):
    exp = d2l_hpo.run_random_search(reports, SPACE, n_workers=1, max_num_trials=3,
                                    metric="loss", seed=0, backend=in_process,
                                    results_dir=results_dir, progress=False)
    assert set(exp.trials["status"]) == {"completed"} and len(exp.results) == 9


@pytest.mark.parametrize("args, error, words", [
    (dict(n=-1), ValueError, "n must be an integer >= 0"),
    (dict(n=2.5), ValueError, "n must be an integer >= 0"),
    (dict(seed=-3), ValueError, "seed must be an integer"),
    (dict(initial_config={"x": 5.0, "epochs": 3}), ConfigSpaceError, r"'x'=5.0 is outside"),
    (dict(initial_config={"x": 0.5, "epochs": 2.5}), ConfigSpaceError,
     "searches an integer there"),
    (dict(config_space={"x": [1, 2]}), ConfigSpaceError, "write choice"),
])
def test_sample_configs_makes_the_checks_the_search_makes(args, error, words):
    call = {"config_space": {"x": loguniform(0.01, 1.0), "epochs": randint(1, 3)},
            "n": 3, "seed": 0, **args}
    with pytest.raises(error, match=words):
        d2l_hpo.sample_configs(**call)
    assert d2l_hpo.sample_configs({"x": loguniform(0.01, 1.0)}, 0, seed=0) == []
