"""ASHA, asynchronous successive halving (Li et al. 2020): Syne Tune's one-bracket ASHA
with the suggestions of a seeded strategy, and the same guard as ``GuardedScheduler``.

A trial reports the metric and the epoch (``resource_attr``) after each epoch. The
rungs are at ``grace_period * reduction_factor**k`` epochs below ``max_epochs``; at a
rung a trial goes on only if its metric is among the best ``1 / reduction_factor`` of
the trials that reached that rung so far, and is stopped (pruned) otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.optimizer.schedulers.asha import AsynchronousSuccessiveHalving

from d2l_hpo.common.status import DIVERGED, PRUNED
from d2l_hpo.search.base import (EarlyStopping, Problem, SearchStrategy, final_value, guard,
                                 reported_number)


def rung_levels(max_epochs: int, grace_period: int, reduction_factor: float) -> list[float]:
    """The epochs at which ASHA can stop a trial: ``grace_period * reduction_factor**k``
    below ``max_epochs`` (as Syne Tune's one-bracket ASHA places its rungs)."""
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    levels = (grace_period * reduction_factor ** k for k in range(count))
    return [level for level in levels if level < max_epochs]


def max_epochs(problem: Problem) -> int:
    """ASHA's ``max_t``: the space's constant ``max_epochs``, checked."""
    value = problem.config_space.get("max_epochs")
    if hasattr(value, "item") and not isinstance(value, bool):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            "early stopping needs the number of epochs as a constant 'max_epochs' in the "
            f"config space (it is ASHA's max_t), got {value!r}")
    return value


@dataclass(frozen=True)
class ASHA(EarlyStopping):
    """Stop poor trials at rungs; ``grace_period`` epochs before the first one, and a rung
    keeps the best ``1 / reduction_factor``."""

    grace_period: int = 1
    reduction_factor: float = 3
    name = "asha"
    statuses = (PRUNED, DIVERGED)

    def check(self, problem: Problem | None, scheduling: str,
              strategy: type[SearchStrategy]) -> None:
        if scheduling == "sync":
            raise ValueError(
                "early_stopping='asha' needs scheduling='async': ASHA decides about each "
                "trial as it reports, and Syne Tune 0.16 has no synchronous successive "
                "halving any more (it was removed with its synchronous schedulers)")
        if strategy.learns:
            raise ValueError(
                f"early_stopping='asha' works with searcher='random', not "
                f"'{strategy.name}': a searcher that learns would have to learn from trials "
                "stopped at different epochs, which this package does not offer (Syne Tune "
                "has BOHB and ASHABORE for that)")
        if problem is None:
            return
        top = max_epochs(problem)
        if self.grace_period >= top:
            raise ValueError(
                f"grace_period={self.grace_period} must be below max_epochs={top}: a trial "
                "can only be stopped before its last epoch")

    def scheduler(self, strategy: SearchStrategy, problem: Problem) -> SeededASHA:
        return SeededASHA(strategy, problem, max_t=max_epochs(problem),
                          grace_period=self.grace_period,
                          reduction_factor=self.reduction_factor)

    def rungs(self, problem: Problem) -> list[float]:
        return rung_levels(max_epochs(problem), self.grace_period, self.reduction_factor)

    def restore(self, scheduler: SeededASHA, kept_reports: list[dict]) -> None:
        scheduler.replay(kept_reports)


class SeededASHA(AsynchronousSuccessiveHalving):
    """Syne Tune's ASHA with one bracket (so the bracket of a new trial is no random
    choice), suggestions from ``strategy``. ``pruned`` maps each pruned trial to its
    epoch; a trial that reaches ``max_t`` ends by itself (completed). A NaN or infinite
    metric stops a trial (diverged) and a report without the metric passes."""

    statuses = ASHA.statuses

    def __init__(self, strategy: SearchStrategy, problem: Problem, max_t: int,
                 grace_period: int, reduction_factor: float):
        super().__init__(problem.config_space, metric=problem.metric,
                         do_minimize=(problem.mode == "min"), searcher=strategy,
                         time_attr=problem.resource_attr, max_t=max_t,
                         grace_period=grace_period, reduction_factor=reduction_factor,
                         brackets=1, random_seed=problem.seed)
        self.pruned: dict[int, float] = {}

    def pruned_at(self, trial_id: int) -> float | None:
        return self.pruned.get(trial_id)

    def _level(self, trial, result) -> float:
        level = reported_number(trial.trial_id, result, self.time_attr)
        if level is None:
            reported = sorted(k for k in result if not k.startswith("st_"))
            raise ValueError(
                f"trial {trial.trial_id} reported {reported} without '{self.time_attr}': "
                f"early stopping needs it in every report (Reporter()({self.time_attr}="
                f"epoch, {self.metric}=...)), or pass resource_attr= the name the "
                "objective reports")
        return level

    def on_trial_result(self, trial, result):
        decided = guard(trial.trial_id, result, self.metric)
        if decided is not None:
            return decided
        level = self._level(trial, result)
        if level >= self.max_t:
            return SchedulerDecision.CONTINUE  # its last epoch: it ends by itself
        decision = super().on_trial_result(trial, result)
        if decision == SchedulerDecision.STOP:
            self.pruned[trial.trial_id] = level
        return decision

    def on_trial_complete(self, trial, result):
        if final_value(trial.trial_id, result, self.metric) is not None \
                and self.time_attr in result:
            super().on_trial_complete(trial, result)
        else:
            self.trial_info.pop(trial.trial_id, None)

    def on_trial_remove(self, trial):
        self.trial_info.pop(trial.trial_id, None)

    def replay(self, reports: list[dict]) -> None:
        """Fill the rungs with the reports of trials an earlier run finished (a resume),
        in the order they were made, as if this scheduler had seen them."""
        sign = 1 if self.do_minimize else -1
        bracket = self.brackets[0]  # Syne Tune 0.16's rung bookkeeping (no public call)
        for report in reports:
            value, level = report.get(self.metric), report.get(self.time_attr)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in (value, level)):
                continue
            if not (math.isfinite(value) and math.isfinite(level)):
                continue
            bracket.on_result(trial_id=int(report["trial_id"]), cur_iter=level,
                              metrics={self.metric: sign * value})
