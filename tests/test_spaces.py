"""Config spaces are checked against their objective before any trial starts."""
import pytest
from syne_tune.config_space import Float, Integer

from d2l_hpo import lenet_objective, synthetic_objective
from d2l_hpo.search.spaces import (ConfigSpaceError, LENET_INITIAL_CONFIG, choice,
                                   lenet_space, loguniform, randint, synthetic_space, uniform, validate_config,
                                   validate_config_space)
from helpers import quick


def test_the_lesson_space_and_initial_config():
    space = lenet_space(max_epochs=7)
    lr, bs = space["learning_rate"], space["batch_size"]
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (0.01, 1.0)
    assert "LogUniform" in type(lr.get_sampler()).__name__
    assert isinstance(bs, Integer) and (bs.lower, bs.upper) == (32, 256)
    assert space["max_epochs"] == 7
    assert LENET_INITIAL_CONFIG == {"learning_rate": 0.1, "batch_size": 128}
    validate_config_space(space, lenet_objective)
    validate_config_space(synthetic_space(), synthetic_objective)
    assert validate_config(LENET_INITIAL_CONFIG, space)["max_epochs"] == 7


def objective(learning_rate: float, batch_size: int, max_epochs: int, note: str = "x"):
    pass


def space(**changes):
    base = {"learning_rate": loguniform(0.01, 1), "batch_size": randint(32, 256),
            "max_epochs": 3}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def bad_float(lower, upper, log=False):
    domain = loguniform(0.1, 1) if log else Float(0.0, 1.0)
    domain.lower, domain.upper = lower, upper  # as a user could build it by hand
    return domain


def bad_int(lower, upper):
    domain = Integer(0, 1)
    domain.lower, domain.upper = lower, upper
    return domain


@pytest.mark.parametrize("changes, words", [
    ({"learning_rate": bad_float(1.0, 0.1)}, ["'learning_rate'", "lower bound 1.0", "upper bound 0.1"]),
    ({"learning_rate": bad_float(0.5, 0.5)}, ["'learning_rate'", "below upper"]),
    ({"learning_rate": bad_float(0.0, 1.0, log=True)}, ["'learning_rate'", "log-scale", "> 0"]),
    ({"batch_size": bad_int(256, 32)}, ["'batch_size'", "lower bound 256"]),
    ({"momentum": 0.9}, ["'momentum'", "objective() has no such argument"]),
    ({"max_epochs": None}, ["objective() needs 'max_epochs'", "no 'max_epochs'"]),
    ({"batch_size": loguniform(32.0, 256.0)}, ["'batch_size'", "declares int", "float"]),
    ({"max_epochs": "3"}, ["'max_epochs'", "declares int", "str"]),
    ({"batch_size": [32, 64]}, ["'batch_size'", "choice([32, 64])"]),
    ({"note": {"a": 1}}, ["'note'", "neither a range"]),
    ({"learning_rate": float("nan")}, ["'learning_rate'", "neither a range"]),
    ({"st_budget": 3}, ["'st_budget'", "reserved"]),
])
def test_each_bad_space_is_rejected_naming_the_parameter(changes, words):
    with pytest.raises(ConfigSpaceError) as info:
        validate_config_space(space(**changes), objective)
    for word in words:
        assert word in str(info.value)


def test_spaces_that_are_not_dicts_are_rejected():
    for bad in ({}, [("learning_rate", 0.1)], None):
        with pytest.raises(ConfigSpaceError, match="non-empty dict"):
            validate_config_space(bad, objective)


def test_choice_and_extra_kwargs_are_accepted():
    def takes_anything(learning_rate, **rest):
        pass

    validate_config_space({"learning_rate": choice([0.1, 0.2]), "anything": 1}, takes_anything)
    validate_config_space(space(note=choice(["a", "b"])), objective)


def test_a_fixed_config_outside_the_space_is_rejected():
    with pytest.raises(ConfigSpaceError, match="'batch_size'=1000 is outside"):
        validate_config({"learning_rate": 0.1, "batch_size": 1000}, space())
    with pytest.raises(ConfigSpaceError, match="'momentum' is not in the config space"):
        validate_config({"momentum": 0.1}, space())


@pytest.mark.parametrize("make, words", [
    (lambda: loguniform(0, 1), ["loguniform(0, 1)", "bounds > 0"]),
    (lambda: loguniform(1, 0.01), ["lower bound 1 must be below upper bound 0.01"]),
    (lambda: uniform(2.0, 2.0), ["uniform(2.0, 2.0)", "below upper"]),
    (lambda: randint(256, 32), ["randint(256, 32)", "lower bound 256"]),
    (lambda: randint(1, float("inf")), ["finite numbers"]),
    (lambda: choice([]), ["at least one value"]),
])
def test_the_range_constructors_explain_bad_bounds(make, words):
    with pytest.raises(ConfigSpaceError) as info:
        make()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("config, words", [
    ({"n": 2.5, "x": 0.5, "c": 1}, r"'n'=2.5 \(float\), but the space searches an integer"),
    ({"n": 2, "x": True, "c": 1}, r"'x'=True \(bool\), but the space searches a number"),
    ({"n": 2, "x": 0.5, "c": True}, r"'c'=True \(bool\) is not one of \[1, 2\]"),
    ({"n": 2, "x": "0.5", "c": 1}, r"'x'='0.5' \(str\)"),
    ({"n": 2, "x": float("nan"), "c": 1}, r"'x'=nan"),
])
def test_a_fixed_config_of_the_wrong_type_is_rejected_not_converted(config, words):
    space = {"n": randint(1, 4), "x": uniform(0, 1), "c": choice([1, 2])}
    with pytest.raises(ConfigSpaceError, match=words):
        validate_config(config, space)
    import numpy as np
    assert validate_config({"n": 2.0, "x": np.float32(1), "c": 2}, space) == \
        {"n": 2, "x": 1.0, "c": 2}


# --- moved from test_adversarial.py (misuse of this module) ---
def coded(code, x):
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=float(x) + len(code))


@pytest.mark.slow
def test_strings_that_look_like_numbers_read_back_as_written(results_dir):
    space = {"code": choice(["007", "08", ""]), "x": uniform(0, 1)}
    exp = quick(coded, results_dir, space=space, max_num_trials=5, name="codes",
                initial_config={"code": "007", "x": 0.5})
    codes = exp.trials["config_code"].tolist()
    assert codes[0] == "007" and all(isinstance(c, str) for c in codes), codes
    assert set(codes) <= {"007", "08", ""}
    assert exp.best_config["code"] in {"007", "08", ""}
    # a resume hands the values back to Syne Tune, which checks them against the choices
    again = quick(coded, results_dir, space=space, max_num_trials=7, name="codes",
                  resume=True)
    assert again.trials["config_code"].tolist()[:5] == codes and len(again.trials) == 7


def coded_for_epochs(code, x, epochs):
    from syne_tune import Reporter

    Reporter()(epoch=epochs, validation_error=float(x) + len(code))


def test_an_initial_config_must_give_every_searched_key_and_leave_constants(results_dir):
    space = {"x": uniform(0, 1), "code": choice(["a", "b"]), "epochs": 3}
    with pytest.raises(ValueError, match=r"initial_config lacks \['code'\]"):
        quick(coded_for_epochs, results_dir, space=space, initial_config={"x": 0.5})
    with pytest.raises(ValueError, match="'epochs'=5, but the config space fixes it to 3"):
        quick(coded_for_epochs, results_dir, space=space,
              initial_config={"x": 0.5, "code": "a", "epochs": 5})
    assert not results_dir.exists()
