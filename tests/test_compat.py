"""What ``d2l_hpo.common.compat`` says we rely on in Syne Tune and Ray still holds: each
failure names the item to look at again after an upgrade."""
import contextlib
import importlib
import io
import json

import pytest

from d2l_hpo.common import compat


def test_the_versions_are_those_checked():
    import ray
    import syne_tune

    assert syne_tune.__version__.startswith(compat.SYNE_TUNE_CHECKED), (
        f"syne-tune {syne_tune.__version__}: d2l_hpo.common.compat was checked against "
        f"{compat.SYNE_TUNE_CHECKED}; check each item there, then update it")
    assert ray.__version__.startswith(compat.RAY_CHECKED), (
        f"ray {ray.__version__}: compat was checked against {compat.RAY_CHECKED}")


@pytest.mark.parametrize("name", ["ST_METRIC_TAG", "ST_WORKER_TIMESTAMP", "ST_WORKER_TIME",
                                  "ST_WORKER_ITER"])
def test_the_copied_constants_are_syne_tunes(name):
    import syne_tune.constants

    assert getattr(compat, name) == getattr(syne_tune.constants, name), (
        f"syne_tune.constants.{name} changed: update d2l_hpo.common.compat")


@pytest.mark.parametrize("where", list(compat.PRIVATE_REACHES))
def test_the_private_parts_we_use_are_there(where):
    module, _, name = where.partition(":")
    owner = importlib.import_module(module)
    owner = getattr(owner, name) if name else owner
    init = getattr(owner, "__init__", None)
    set_in_init = getattr(getattr(init, "__code__", None), "co_names", ())
    for attribute in compat.PRIVATE_REACHES[where]:
        # a method or constant is on the class or module; an attribute that __init__
        # sets is among the names its code stores
        assert hasattr(owner, attribute) or attribute in set_in_init, (
            f"{where}.{attribute} is gone: see d2l_hpo.common.compat for where it is used")


def test_our_light_reporter_writes_what_syne_tune_reads():
    from syne_tune.report import Reporter as SyneTuneReporter
    from syne_tune.report import retrieve

    from d2l_hpo.lesson.reporter import Reporter

    import numpy as np
    lines = {}
    for label, reporter in (("ours", Reporter()), ("syne_tune", SyneTuneReporter())):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            reporter(epoch=1, validation_error=np.float32(0.25))
            reporter(epoch=2, validation_error=0.125)
        lines[label] = retrieve(out.getvalue().splitlines())
    ours, theirs = lines["ours"], lines["syne_tune"]
    assert [sorted(r) for r in ours] == [sorted(r) for r in theirs]
    assert [(r["epoch"], r["validation_error"], r["st_worker_iter"]) for r in ours] == \
        [(1, 0.25, 0), (2, 0.125, 1)]
    with pytest.raises(ValueError, match="st_"):
        Reporter()(st_x=1)
    with pytest.raises(TypeError, match="cannot be reported"):
        Reporter()(x=object())
    json.dumps(ours)  # plain JSON
