"""What a search checks about its objective before it starts, and what it says when no
trial reported the metric or too many failed."""

from __future__ import annotations

from syne_tune.backend.trial_backend import TrialBackend

from d2l_hpo.backends._common import check_self_contained
from d2l_hpo.backends.base import RunnerBackend
from d2l_hpo.common.status import CUT_SHORT, DIVERGED, FAILED, STOPPED, TIMEOUT
from d2l_hpo.experiment.results import Experiment
from d2l_hpo.experiment.storage import check_names
from d2l_hpo.search.spaces import validate_config_space


class TooManyFailuresError(RuntimeError):
    """More trials failed than ``max_failures`` allows; the experiment stopped."""


class MetricNotReportedError(RuntimeError):
    """No trial reported the metric the search optimises."""


def check_objective(objective, config_space, backend, metric: str) -> None:
    if backend is not None and not isinstance(backend, TrialBackend):
        raise TypeError(f"backend must be a Syne Tune TrialBackend, got {type(backend).__name__}")
    if backend is None or isinstance(backend, RunnerBackend):  # we ship it to the trials
        check_self_contained(objective)
    validate_config_space(config_space, objective if callable(objective) else None)
    check_names(config_space, metric)


def check_reports(objective, resource_attr: str) -> None:
    """Early stopping reads ``resource_attr`` in every report: refuse an objective whose
    code never names it (a report through ``**values`` is found at run time instead)."""
    code = getattr(objective, "__code__", None)
    if code is None:
        return
    names, codes = set(), [code]
    while codes:
        current = codes.pop()
        for const in current.co_consts:
            if isinstance(const, str):
                names.add(const)
            elif isinstance(const, tuple):
                names.update(c for c in const if isinstance(c, str))
            elif hasattr(const, "co_consts"):
                codes.append(const)
        names.update(current.co_names)
    if resource_attr not in names and not code.co_flags & 0x08:  # 0x08: it takes **kwargs
        raise ValueError(
            f"early stopping counts epochs by the reported value '{resource_attr}', but "
            f"{getattr(objective, '__name__', 'the objective')}() never names it: report it "
            f"after each epoch (Reporter()({resource_attr}=epoch, ...)), or pass "
            "resource_attr= the name it reports")


def check_metric_reported(exp: Experiment) -> None:
    """Raise ``MetricNotReportedError`` with the cause when no trial reported the metric."""
    column = exp.results[exp.metric] if exp.metric in exp.results else None
    if column is not None and column.notna().any():
        return
    raise MetricNotReportedError(
        why_nothing_was_reported(exp, column)
        + f" Results are in {exp.path}")


def hint_for(error: str) -> str:
    """What to do about a trial's error, when it is a usual mistake."""
    if "NameError" in error or "ModuleNotFoundError" in error:
        return ("\nEach trial runs the objective on its own, without the notebook's or "
                "script's other names: put imports and helper functions inside the "
                "objective, or into a package the trials can import.")
    return ""


def why_nothing_was_reported(exp: Experiment, column) -> str:
    statuses = exp.trials["status"].tolist()
    ids = exp.trials["trial_id"].tolist()
    if statuses and all(s == FAILED for s in statuses):
        last = exp.trials["error"].iloc[-1] or "(no error output)"
        return f"every trial failed ({len(ids)}), so none reported '{exp.metric}'. The " \
               f"last error:\n{last}{hint_for(last)}\n"
    if statuses and all(s == TIMEOUT for s in statuses):
        return (f"every trial ran past max_trial_time={exp.settings.get('max_trial_time')} s "
                f"before reporting '{exp.metric}'; allow more time per trial.")
    if statuses and all(s in CUT_SHORT for s in statuses):
        return (f"the budget ran out before any trial reported '{exp.metric}' (wall-clock "
                f"{exp.wallclock:.1f} s); give a larger max_wallclock_time.")
    if statuses and all(s == DIVERGED for s in statuses):
        return (f"every trial diverged: '{exp.metric}' was NaN or infinite from its first "
                "report; try smaller learning rates.")
    if column is not None:  # reported, but never as a number
        return (f"the trials reported '{exp.metric}', but never as a number (it was "
                f"written as null): report a Python float, e.g. {exp.metric}=float(value) "
                "for a tensor or numpy value.")
    done = [i for i, s in zip(ids, statuses) if s != STOPPED]
    other = sorted(c for c in exp.results.columns
                   if c not in ("trial_id", "time", "worker_time", exp.metric))
    return (f"no trial reported '{exp.metric}' (trials {done}); "
            + (f"they reported only {other}. " if other else "they reported nothing. ")
            + f"Call Reporter()({exp.metric}=...) in the objective, or pass metric= the name "
            "it reports.")
