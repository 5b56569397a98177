"""Optuna's TPE behind the same seam, with and without its *constant liar*.

Syne Tune 0.16's model-based searchers (TPE, BORE, REA) learn from finished trials only:
asked while other trials run, they do not know those trials exist, so several workers
that ask at nearly the same time can be handed nearly the same configuration. Optuna's
``TPESampler`` can count the trials still running as if they had ended badly (its
``constant_liar``, on by default since Optuna 5), which sends the next suggestion away
from them. Both are here, so that a lesson can run one against the other on the same
problem with the same helpers:

- ``optuna_tpe``: Optuna's TPE with the constant liar (Optuna's default);
- ``optuna_tpe_no_liar``: the same sampler with ``constant_liar=False``.

Optuna asks for one trial at a time (``study.ask``) and is told its value later
(``study.tell``); Syne Tune's scheduler suggests a configuration, then the tuner starts
it as trial ``trial_id``. The adapter pairs them: the configuration a draw asked for is
the next trial to start (``on_trial_start``, in order). A trial that ends without a
result (failed, diverged, stopped) is told to Optuna as failed, so it no longer counts
as running. Results and failures reach Optuna at the next draw, in trial-id order, as
the other strategies' results do (a synchronous run is repeatable).

Reproducible: the sampler is seeded and draws from its own generator. Resumable: the
state is the list of what was done to the study (asked, paired, told, failed), replayed
into a fresh one; trials that were running when the run stopped are told as failed.
"""

from __future__ import annotations

from typing import Any

from syne_tune.config_space import Categorical, Domain, Float, Integer, is_log_space

from d2l_hpo.search.base import SearchStrategy


def _distribution(name: str, domain: Domain):
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)

    if isinstance(domain, Categorical):
        return CategoricalDistribution(list(domain.categories))
    if isinstance(domain, Float):
        return FloatDistribution(domain.lower, domain.upper, log=is_log_space(domain))
    if isinstance(domain, Integer):
        return IntDistribution(domain.lower, domain.upper, log=is_log_space(domain))
    raise ValueError(f"'{name}': Optuna's TPE takes uniform, loguniform, randint and choice "
                     f"ranges here, got {domain}")


class _OptunaAdapter:
    """Optuna's ask/tell as the searcher calls of Syne Tune's schedulers, with every
    change to the study logged (``log``) so that a fresh adapter can replay it."""

    def __init__(self, config_space: dict[str, Any], seed: int, constant_liar: bool):
        try:
            import optuna
        except ImportError as error:  # a clear word instead of a traceback in a worker
            raise ImportError(
                "the searchers 'optuna_tpe' and 'optuna_tpe_no_liar' need Optuna 5, a "
                "dependency of d2l-hpo: pip install 'optuna==5.*'") from error
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.distributions = {k: _distribution(k, v) for k, v in config_space.items()
                              if isinstance(v, Domain)}
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=constant_liar,
                                             n_startup_trials=len(self.distributions) + 1)
        self.study = optuna.create_study(sampler=sampler, direction="minimize")
        self.asked: list = []  # asked, not yet paired with a trial id (oldest first)
        self.trials: dict[int, Any] = {}  # trial id -> Optuna trial, until told
        self.log: list[list] = []

    def enqueue(self, params: dict) -> None:
        """Have the next ask return ``params`` (a configuration given to try first)."""
        self.study.enqueue_trial(params)
        self.log.append(["enqueue", params])

    def suggest(self) -> dict:
        trial = self.study.ask(self.distributions)
        self.asked.append(trial)
        self.log.append(["ask"])
        return dict(trial.params)

    def start(self, trial_id: int) -> None:
        if self.asked:  # a trial started without a draw (none known) is not Optuna's
            self.trials[trial_id] = self.asked.pop(0)
            self.log.append(["start", trial_id])

    def on_trial_complete(self, trial_id: int, config: dict, metric: float) -> None:
        trial = self.trials.pop(trial_id, None)
        if trial is not None:
            self.study.tell(trial, metric)
            self.log.append(["tell", trial_id, metric])

    def fail(self, trial_id: int) -> None:
        from optuna.trial import TrialState

        trial = self.trials.pop(trial_id, None)
        if trial is not None:
            self.study.tell(trial, state=TrialState.FAIL)
            self.log.append(["fail", trial_id])

    def replay(self, log: list[list], finished: set[int]) -> None:
        """Do to this study what ``log`` says was done; the trials that were still
        running, except those in ``finished`` (their results wait to be told), are told
        as failed: they will not report to this study."""
        for event in log:
            kind, *args = event
            if kind == "enqueue":
                self.enqueue(args[0])
            elif kind == "ask":
                self.suggest()
            elif kind == "start":
                self.start(int(args[0]))
            elif kind == "tell":
                self.on_trial_complete(int(args[0]), {}, float(args[1]))
            elif kind == "fail":
                self.fail(int(args[0]))
        for trial_id in sorted(set(self.trials) - finished):  # running when it stopped
            self.fail(trial_id)
        self.asked.clear()


class OptunaTPE(SearchStrategy):
    name = "optuna_tpe"
    summary = ("Optuna's TPE; it counts running trials as bad results (its constant liar), "
               "so workers that ask at the same time are sent apart")
    constant_liar = True

    def __init__(self, *args, **kwargs):
        self.failed: set[int] = set()  # ended without a result, not told yet
        super().__init__(*args, **kwargs)

    def make_searcher(self, config_space, seed):
        return _OptunaAdapter(config_space, seed, self.constant_liar)

    def suggest(self, **kwargs) -> dict | None:
        # a configuration given to try first goes through Optuna too (enqueued, then
        # asked), so that it is paired with its trial and its result told like any other
        if self.max_suggestions is not None and self.num_suggested >= self.max_suggestions:
            return None
        if self.points:
            point = self.points.pop(0)
            self.searcher.enqueue({k: v for k, v in point.items() if k not in self.constants})
        config = self._draw()
        if config is not None:
            self.num_suggested += 1
        return config

    def on_trial_start(self, trial_id, config):
        super().on_trial_start(trial_id, config)
        self.searcher.start(int(trial_id))

    def on_trial_end(self, trial_id):
        super().on_trial_end(trial_id)
        if int(trial_id) not in self.pending:  # no result to tell: Optuna hears it failed
            self.failed.add(int(trial_id))

    def _tell_pending(self) -> None:
        for trial_id in sorted(set(self.pending) | self.failed):
            if trial_id in self.pending:
                config, value = self.pending.pop(trial_id)
                self._tell(trial_id, config, value)
            else:
                self.searcher.fail(trial_id)
        self.failed.clear()

    def state(self) -> dict[str, Any]:
        return {"drawn": list(self.drawn), "log": [list(e) for e in self.searcher.log],
                "pending": [[i, c, v] for i, (c, v) in sorted(self.pending.items())],
                "failed": sorted(self.failed)}

    def restore(self, state: dict[str, Any]) -> None:
        for i, c, v in state.get("pending", []):
            self.pending[int(i)] = (dict(c), float(v))
        self.searcher.replay(state.get("log", []), finished=set(self.pending))
        self.drawn = list(state.get("drawn", []))
        self.failed = {int(i) for i in state.get("failed", [])}


class OptunaTPENoLiar(OptunaTPE):
    name = "optuna_tpe_no_liar"
    summary = ("Optuna's TPE without its constant liar: like Syne Tune's searchers, it "
               "knows nothing of the trials still running")
    constant_liar = False
