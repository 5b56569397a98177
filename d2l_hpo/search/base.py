"""The seam every search strategy plugs into.

A *search strategy* decides what to try next. Syne Tune already has the algorithms
(random search, TPE, REA, BORE, BoTorch): a strategy here names one of its searchers in
``make_searcher``, and ``SearchStrategy`` adds what a course run needs of every one of
them, written once:

- **reproducible**: the same seed gives the same suggestions. Syne Tune 0.16's
  searchers draw their random configurations from numpy's global generator (``Domain
  .sample()`` without a ``random_state``), so each call into the searcher runs with
  numpy's global state swapped for this strategy's own;
- **the same in sync and async runs**: a searcher learns from a finished trial only
  when it is asked for its next suggestion, and the trials that finished since the
  last one are given to it in trial-id order, not in the order they happened to end
  (so a synchronous run, whose batch has ended by then, is repeatable; an
  asynchronous run with more than one worker sees what had finished at that moment,
  which depends on timing);
- **resumable**: ``state()`` is the list of what the searcher was told and when it
  drew; ``restore()`` replays it into a fresh searcher, so a resumed run suggests what
  the uninterrupted run would have (random search replays only its draws);
- **a budget**: no suggestion after ``max_suggestions``.

The *scheduler* decides whether a running trial goes on; ``GuardedScheduler`` (every
trial runs to its end) is here, early stopping rules (``asha``) have their own files.
Both stop a trial that reports a NaN or infinite metric (it diverged) and let a report
without the metric pass; ``reported_number`` is that guard.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from syne_tune.config_space import Domain, remove_constant_and_cast
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

from d2l_hpo.common.status import DIVERGED


class MetricTypeError(TypeError):
    """A trial reported the metric (or the epoch that early stopping counts) as
    something other than a real number: a string, a bool, a list, ..."""


def reported_number(trial_id, result: dict, key: str) -> float | None:
    """The value ``key`` of a trial's report when it is a real number (NaN and infinity
    included); None when the report lacks it or gives null.

    :raises MetricTypeError: any other value (``"0.5"``, ``True``, ``[0.5]``): the run
        would go on as if nothing were wrong while tables read some of them back as
        numbers and early stopping ignores them, so it stops with the trial, the key and
        the value's type named
    """
    value = result.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise MetricTypeError(
        f"trial {trial_id} reported {key}={value!r}, a {type(value).__name__}; report a "
        f"real number: Reporter()({key}=float(value)) (a tensor: value.item())")


def guard(trial_id, result: dict, metric: str) -> str | None:
    """The decision about a report before any scheduler's own: go on when it lacks the
    metric (the run says so at the end), stop when the metric is NaN or infinite (the
    trial diverged: more epochs will not bring it back); None when the scheduler decides."""
    value = reported_number(trial_id, result, metric)
    if value is None:
        return SchedulerDecision.CONTINUE
    if not math.isfinite(value):
        return SchedulerDecision.STOP
    return None


def final_value(trial_id, result: dict, metric: str) -> float | None:
    """The metric a finished trial ended with, when it is a finite number (a searcher
    learns from it); None otherwise."""
    value = reported_number(trial_id, result, metric)
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Problem:
    """What every strategy and stopping rule is told about the search."""

    config_space: dict[str, Any]
    metric: str = "validation_error"
    mode: str = "min"
    seed: int = 0
    resource_attr: str = "epoch"  # the reported value that counts a trial's epochs


def searcher_seed(seed: int) -> int:
    """The seed of a Syne Tune searcher's own generator: another stream than the one its
    random configurations come from (``seed`` itself), so the two do not move in step."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0] % (2**31 - 1))


class _DropLogMessages(logging.Filter):
    """Drops the log records whose message starts with one of ``messages``."""

    def __init__(self, messages: tuple[str, ...]):
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.messages and record.getMessage().startswith(self.messages))


class SearchStrategy(ABC):
    """What to try next: one of Syne Tune's searchers, made reproducible and resumable.

    A subclass sets ``name`` (its registry key), ``learns`` (False for a strategy that
    ignores results) and ``summary``, and implements ``make_searcher``. Syne Tune's
    schedulers call ``suggest``, ``on_trial_result``, ``on_trial_complete`` and
    ``on_trial_error`` on it, as on any searcher.
    """

    name: ClassVar[str] = ""
    learns: ClassVar[bool] = True  # uses the results of finished trials
    summary: ClassVar[str] = ""
    # warnings of the searcher's libraries that say nothing a user can act on (regexes)
    ignore_warnings: ClassVar[tuple[str, ...]] = ()
    # log records (by the start of their message) the searcher writes while it runs that
    # a user cannot act on, dropped
    ignore_log_messages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config_space: dict[str, Any], seed: int, points=(),
                 max_suggestions: int | None = None):
        self.config_space = config_space
        self.constants = {k: v for k, v in config_space.items() if not isinstance(v, Domain)}
        self.points = [dict(p) for p in points]  # tried first, in order
        self.max_suggestions = max_suggestions
        self.num_suggested = 0
        self.searcher = self.make_searcher(config_space, searcher_seed(seed))
        self._numpy_state = np.random.RandomState(seed).get_state()
        self.drawn: list[int] = []  # per drawn configuration: observations the searcher had
        self.observed: list[list] = []  # [trial_id, config, value], in the order told
        self.pending: dict[int, tuple[dict, float]] = {}  # finished, not told yet
        self.running: dict[int, dict] = {}  # started, not ended: what a searcher that
        # accounts for pending evaluations (a constant liar, fantasies) must know

    @abstractmethod
    def make_searcher(self, config_space: dict[str, Any], seed: int):
        """A Syne Tune searcher over ``config_space`` seeded with ``seed``, without
        ``points_to_evaluate`` (this class tries those first itself)."""

    # --- what Syne Tune's schedulers call on a searcher -------------------------------
    def suggest(self, **kwargs) -> dict | None:
        if self.max_suggestions is not None and self.num_suggested >= self.max_suggestions:
            return None  # the Tuner then waits for the running trials and stops
        config = self.points.pop(0) if self.points else self._draw()
        if config is not None:
            self.num_suggested += 1
        return config

    def on_trial_result(self, *args, **kwargs) -> None:
        """Intermediate reports: these strategies learn from finished trials only."""

    def on_trial_complete(self, trial_id: int, config: dict, metric: float) -> None:
        """``metric`` as the searcher minimises it (a max-mode metric comes negated)."""
        if self.learns:
            self.pending[int(trial_id)] = (_plain_config(config), float(metric))

    def on_trial_error(self, trial_id: int, *args) -> None:
        self.pending.pop(int(trial_id), None)

    # --- what GuardedScheduler adds: which trials are running --------------------------
    def on_trial_start(self, trial_id: int, config: dict) -> None:
        """Trial ``trial_id`` started with ``config`` (its searched keys)."""
        self.running[int(trial_id)] = _plain_config(config)

    def on_trial_end(self, trial_id: int) -> None:
        """Trial ``trial_id`` is no longer running: completed, failed, stopped (diverged,
        pruned, out of time) or paused. Its result, if any, came by ``on_trial_complete``."""
        self.running.pop(int(trial_id), None)

    # --- the template ------------------------------------------------------------------
    @contextlib.contextmanager
    def _own_numpy_random(self):
        """numpy's global generator holds this strategy's state while the searcher runs
        (and the ``ignore_warnings`` are not shown)."""
        outside = np.random.get_state()
        np.random.set_state(self._numpy_state)
        quiet = _DropLogMessages(self.ignore_log_messages)
        root = logging.getLogger()  # Syne Tune's KDE logs through the root logger
        root.addFilter(quiet)
        try:
            with warnings.catch_warnings():
                for message in self.ignore_warnings:
                    warnings.filterwarnings("ignore", message=message)
                yield
        finally:
            root.removeFilter(quiet)
            self._numpy_state = np.random.get_state()
            np.random.set_state(outside)

    def _tell_pending(self) -> None:
        for trial_id in sorted(self.pending):
            config, value = self.pending.pop(trial_id)
            self._tell(trial_id, config, value)

    def _tell(self, trial_id: int, config: dict, value: float) -> None:
        self.observed.append([trial_id, config, value])
        with self._own_numpy_random():
            self.searcher.on_trial_complete(trial_id, dict(config), value)

    def _draw(self) -> dict | None:
        self._tell_pending()
        self.drawn.append(len(self.observed))
        with self._own_numpy_random():
            config = self.searcher.suggest()
        # a searcher that mutates what it was told (REA) leaves the constants out
        return None if config is None else {**self.constants, **config}

    def state(self) -> dict[str, Any]:
        """What a resumed run needs to go on as this one would have (plain JSON)."""
        return {"drawn": list(self.drawn), "observed": [list(o) for o in self.observed],
                "pending": [[i, c, v] for i, (c, v) in sorted(self.pending.items())]}

    def restore(self, state: dict[str, Any]) -> None:
        """Bring a fresh strategy to where ``state`` left off: each draw made again with
        the searcher told, before it, what it had been told then."""
        observed = [(int(i), dict(c), float(v)) for i, c, v in state.get("observed", [])]
        told = 0
        for before in state.get("drawn", []):
            while told < min(before, len(observed)):
                self._tell(*observed[told])
                told += 1
            self.drawn.append(len(self.observed))
            with self._own_numpy_random():
                self.searcher.suggest()
        for item in observed[told:]:
            self._tell(*item)
        for i, c, v in state.get("pending", []):
            self.pending[int(i)] = (dict(c), float(v))


def _plain_config(config: dict) -> dict:
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}


class GuardedScheduler(SingleFidelityScheduler):
    """Every trial runs all its epochs, except one that reports a NaN or infinite metric
    (it diverged: stopped at once); a report without the metric passes (the run says so
    at the end) instead of failing the experiment with a ``KeyError``."""

    statuses: ClassVar[tuple[str, ...]] = (DIVERGED,)  # beyond completed, failed, ...

    def __init__(self, strategy: SearchStrategy, problem: Problem):
        super().__init__(problem.config_space, metrics=[problem.metric],
                         do_minimize=(problem.mode == "min"), searcher=strategy,
                         random_seed=problem.seed)

    def pruned_at(self, trial_id: int) -> float | None:
        """The epoch at which early stopping stopped the trial; None: it did not."""
        return None

    def on_trial_result(self, trial, result):
        return guard(trial.trial_id, result, self.metrics[0]) or SchedulerDecision.CONTINUE

    def on_trial_complete(self, trial, result):
        value = final_value(trial.trial_id, result, self.metrics[0])
        if value is not None:
            config = remove_constant_and_cast(trial.config, self.config_space)
            self.searcher.on_trial_complete(trial.trial_id, config,
                                            self.metric_multiplier * value)
        self.searcher.on_trial_end(trial.trial_id)

    # Syne Tune tells a searcher nothing of trials while they run; the strategy is told
    # when each starts and ends
    def on_trial_add(self, trial):
        super().on_trial_add(trial)
        self.searcher.on_trial_start(
            trial.trial_id, remove_constant_and_cast(trial.config, self.config_space))

    def on_trial_error(self, trial):
        super().on_trial_error(trial)
        self.searcher.on_trial_end(trial.trial_id)

    def on_trial_remove(self, trial):
        super().on_trial_remove(trial)
        self.searcher.on_trial_end(trial.trial_id)


class EarlyStopping(ABC):
    """A rule that stops poor trials before their last epoch (``asha``)."""

    name: ClassVar[str] = ""
    statuses: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def check(self, problem: Problem | None, scheduling: str,
              strategy: type[SearchStrategy]) -> None:
        """Raise ``ValueError`` naming what cannot work, before anything starts
        (``problem`` None: the settings alone, before the space is known)."""

    @abstractmethod
    def scheduler(self, strategy: SearchStrategy, problem: Problem):
        """The Syne Tune scheduler that applies the rule, suggestions from ``strategy``;
        it has ``pruned_at(trial_id)`` and ``statuses`` as ``GuardedScheduler`` does."""

    def rungs(self, problem: Problem) -> list[float]:
        """The epochs at which a trial can be stopped (kept with the experiment)."""
        return []

    def restore(self, scheduler, kept_reports: list[dict]) -> None:
        """Show a resumed run's scheduler the reports of the trials it keeps."""
