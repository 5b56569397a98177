"""The settings kept in experiment.json (fast tier): the objective's fingerprint and the
space's domains, which a resume compares."""
import json
import textwrap

import numpy as np
import pytest

from d2l_hpo.run.settings import default_name, objective_code, space_description
from d2l_hpo.search.spaces import choice, loguniform, randint, uniform
from helpers import first_version, quick

SOURCE = textwrap.dedent('''
    def objective(learning_rate, batch_size, report=None):
        """Train and report."""
        import math
        def loss(epoch):
            return (math.log(learning_rate) + 2) ** 2 + batch_size / 1000 / epoch
        for epoch in range(1, 3):
            report(epoch=epoch, validation_error=loss(epoch))
''')


def define(source, filename, blank_lines=0):
    names = {}
    exec(compile("\n" * blank_lines + source, filename, "exec"), names)
    return names["objective"]


def test_the_objective_fingerprint_ignores_where_the_function_sits():
    here = define(SOURCE, "/tmp/ipykernel_111/1234.py")
    # the same cell in a new Jupyter kernel (another file name), three lines lower
    elsewhere = define(SOURCE, "/tmp/ipykernel_999/5678.py", blank_lines=3)
    redocumented = define(SOURCE.replace("Train and report.", "Trains."), "x.py")
    assert objective_code(here) == objective_code(elsewhere) == objective_code(redocumented)


def test_the_objective_fingerprint_changes_with_what_the_function_does():
    base = objective_code(define(SOURCE, "a.py"))
    for change in (("+ 2", "+ 3"), ("range(1, 3)", "range(1, 4)"),
                   ("validation_error=", "loss="), ("/ 1000 /", "/ 100 /"),
                   ("report=None", "report=print")):
        assert objective_code(define(SOURCE.replace(*change), "a.py")) != base, change


def test_the_space_description_tells_domains_apart():
    spaces = [{"x": uniform(0, 1)}, {"x": uniform(0, 2)}, {"x": loguniform(0.1, 1)},
              {"x": loguniform(0.1, 2)}, {"x": randint(0, 1)}, {"x": choice([0, 1])},
              {"x": choice([0, 2])}]
    described = [space_description({**s, "constant": 3}) for s in spaces]
    assert all(list(d) == ["x"] for d in described)
    assert len({repr(d) for d in described}) == len(spaces)
    assert space_description({"x": uniform(0, 1)}) == space_description({"x": uniform(0, 1)})


# --- moved from test_adversarial.py (misuse of this module) ---
@pytest.mark.parametrize("bad", [dict(seed=-1), dict(seed=1.5), dict(seed="abc"),
                                 dict(seed=True), dict(max_num_trials=True),
                                 dict(max_failures=True), dict(n_workers=2.0),
                                 dict(max_wallclock_time=float("nan")),
                                 dict(name="x" * 300), dict(name="../escape")])


def test_bad_settings_are_refused_before_any_folder_exists(results_dir, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        quick(first_version, results_dir, **bad)
    assert not results_dir.exists()


@pytest.mark.slow
def test_numpy_integers_work_as_settings_and_are_stored_as_json(results_dir):
    exp = quick(first_version, results_dir, seed=np.int64(5), n_workers=np.int64(2),
                max_num_trials=np.int32(2))
    stored = json.loads((exp.path / "experiment.json").read_text())
    assert stored["seed"] == 5 and stored["n_workers"] == 2
    assert len(exp.trials) == 2


@pytest.mark.slow
def test_results_dir_with_a_tilde_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    exp = quick(first_version, "~/my-runs", name="home")
    assert exp.path == tmp_path / "home" / "my-runs" / "home"
    assert not (tmp_path / "~").exists()  # not a folder named "~" here
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="a-file is a file"):
        quick(first_version, tmp_path / "a-file" / "runs")


@pytest.mark.slow
def test_default_names_are_valid_for_lambdas_and_non_ascii_functions(results_dir):
    assert default_name("<lambda>", "20261128-1") == "lambda-20261128-1"
    assert default_name("λfit_model", "1") == "fit-model-1"
    assert default_name("λ", "1") == "objective-1"
    exp = quick(lambda x: __import__("syne_tune").Reporter()(validation_error=float(x)),
                results_dir)
    assert exp.name.startswith("lambda-")
    assert len(exp.trials) == 2
    # the name it printed for a resume is one that resume accepts
    again = quick(lambda x: __import__("syne_tune").Reporter()(validation_error=float(x)),
                  results_dir, name=exp.name, resume=True, max_num_trials=3)
    assert len(again.trials) == 3
