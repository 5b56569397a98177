"""The settings kept in experiment.json (fast tier): the objective's fingerprint and the
space's domains, which a resume compares."""
import textwrap

from d2l_hpo.run.settings import objective_code, space_description
from d2l_hpo.search.spaces import choice, loguniform, randint, uniform

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
