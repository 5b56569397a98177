"""What a search checks before it starts and says when trials fail or report nothing
(``d2l_hpo.run.checks``): the cause named, with what to do."""
import functools

import pytest

from helpers import quick


class Model:
    def fit(self, x):
        from syne_tune import Reporter

        Reporter()(validation_error=float(x))


def with_offset(x, offset):
    from syne_tune import Reporter

    Reporter()(validation_error=float(x) + offset)


def test_a_bound_method_or_a_partial_is_refused_up_front(results_dir):
    with pytest.raises(TypeError, match="bound method.*top-level function"):
        quick(Model().fit, results_dir)
    with pytest.raises(TypeError, match="functools.partial or a callable object"):
        quick(functools.partial(with_offset, offset=1.0), results_dir)
    assert not results_dir.exists()


def helper(x):
    return x


def uses_a_module_global(x):
    from syne_tune import Reporter

    Reporter()(validation_error=helper(x))  # helper is not shipped with the objective


def reports_a_tensor(x):
    import torch
    from syne_tune import Reporter

    Reporter()(epoch=1, validation_error=torch.tensor(float(x)))


def imports_a_missing_module(x):
    import a_module_that_is_not_installed

    a_module_that_is_not_installed.train(x)


@pytest.mark.slow
def test_too_many_failures_name_the_error_not_a_missing_report(results_dir):
    from d2l_hpo.run.runner import TooManyFailuresError

    with pytest.raises(TooManyFailuresError) as info:
        quick(imports_a_missing_module, results_dir, max_num_trials=5, max_failures=1,
              name="missing")
    text = str(info.value)
    assert "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'" in text
    assert "into a package the trials can import" in text
    assert "without reporting" not in text


@pytest.mark.slow
def test_errors_name_the_cause_when_no_trial_reported(results_dir):
    from d2l_hpo.run.runner import MetricNotReportedError

    with pytest.raises(MetricNotReportedError) as info:
        quick(uses_a_module_global, results_dir, max_failures=5, name="global")
    text = str(info.value)
    assert "every trial failed (2)" in text and "NameError: name 'helper'" in text
    assert "put imports and helper functions inside the objective" in text
    with pytest.raises(MetricNotReportedError) as info:
        quick(reports_a_tensor, results_dir, max_failures=5, name="tensor")
    assert "reported 'validation_error', but never as a number" in str(info.value)
    assert "validation_error=float(value)" in str(info.value)


def sleeps_then_reports(x):
    import time

    from syne_tune import Reporter

    time.sleep(30)
    Reporter()(epoch=1, validation_error=float(x))


@pytest.mark.slow
def test_errors_name_the_cause_when_trials_ran_out_of_time(results_dir):
    from d2l_hpo.run.runner import MetricNotReportedError

    with pytest.raises(MetricNotReportedError, match="every trial ran past max_trial_time=1"):
        quick(sleeps_then_reports, results_dir, max_trial_time=1, name="slow-trials")
    with pytest.raises(MetricNotReportedError,
                       match="the budget ran out before any trial reported 'validation_error'"):
        quick(sleeps_then_reports, results_dir, max_num_trials=None, max_wallclock_time=2,
              name="short-budget")
