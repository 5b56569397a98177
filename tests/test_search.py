"""The search seam (``d2l_hpo.search``): every registered strategy is reproducible with
its seed, learns (or not) from finished trials told in trial-id order, and a restored
strategy goes on exactly as the uninterrupted one; names are checked before any work."""
import json
import math
import warnings

import numpy as np
import pytest

import d2l_hpo
from d2l_hpo.search.base import SearchStrategy
from d2l_hpo.search.registry import SEARCHERS, early_stopping_rule, searcher_class
from d2l_hpo.search.spaces import loguniform, randint

SPACE = {"x": loguniform(1e-3, 1.0), "n": randint(1, 100), "c": 5}
LEARNING = [name for name in SEARCHERS if searcher_class(name).learns]


def loss(config) -> float:
    """A smooth function with its minimum at x = 0.05, n = 60."""
    return (math.log10(config["x"] / 0.05)) ** 2 + ((config["n"] - 60) / 40) ** 2


def drive(strategy: SearchStrategy, n: int, batch: int = 2, start: int = 0,
          reseed: int | None = None) -> list[dict]:
    """Suggest ``n`` configurations in batches of ``batch`` (a synchronous run), each
    trial started as soon as it is suggested (the batch's earlier ones are running when
    the next is drawn) and each batch's results told before the next one is suggested
    (in reverse order: the strategy must not care)."""
    configs = []
    for first in range(start, start + n, batch):
        ids = list(range(first, min(first + batch, start + n)))
        if reseed is not None:
            np.random.seed(reseed + first)  # numpy's global generator must not matter
        batch_configs = []
        for trial_id in ids:
            batch_configs.append(strategy.suggest())
            strategy.on_trial_start(trial_id, searched(batch_configs[-1]))
        for trial_id, config in reversed(list(zip(ids, batch_configs))):
            strategy.on_trial_complete(trial_id, searched(config), loss(config))
            strategy.on_trial_end(trial_id)
        configs += batch_configs
    return configs


def searched(config) -> dict:
    return {k: config[k] for k in ("x", "n")}


def test_the_registry_names_every_strategy_and_refuses_others():
    assert {"random", "tpe", "rea", "bore", "optuna_tpe", "optuna_tpe_no_liar"} <= set(SEARCHERS)
    for name in SEARCHERS:
        cls = searcher_class(name)
        assert issubclass(cls, SearchStrategy) and cls.name == name and cls.summary
    assert LEARNING and "random" not in LEARNING
    with pytest.raises(ValueError, match="searcher must be 'random', 'tpe'.* got 'grid'"):
        searcher_class("grid")
    with pytest.raises(ValueError, match="early_stopping must be None or 'asha', got 'hb'"):
        early_stopping_rule("hb")
    assert early_stopping_rule(None) is None


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_the_same_seed_gives_the_same_suggestions(name):
    cls = searcher_class(name)
    first = drive(cls(SPACE, 7), 16, reseed=1)
    assert first == drive(cls(SPACE, 7), 16, reseed=2)
    assert first != drive(cls(SPACE, 8), 16)
    assert all(c["c"] == 5 for c in first)  # constants pass through


@pytest.mark.parametrize("name", LEARNING)
def test_a_learning_strategy_uses_the_results(name):
    cls = searcher_class(name)
    informed = drive(cls(SPACE, 3), 16)
    blind = cls(SPACE, 3)  # told nothing: it can only draw at random
    assert informed != [blind.suggest() for _ in range(16)]


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_results_are_told_in_trial_id_order_whatever_order_they_arrive_in(name):
    cls = searcher_class(name)
    a, b = cls(SPACE, 5), cls(SPACE, 5)
    configs = [a.suggest() for _ in range(8)]
    assert configs == [b.suggest() for _ in range(8)]
    for trial_id, config in enumerate(configs):  # as the tuner starts them
        a.on_trial_start(trial_id, searched(config))
        b.on_trial_start(trial_id, searched(config))
    for trial_id in range(8):
        a.on_trial_complete(trial_id, configs[trial_id], loss(configs[trial_id]))
    for trial_id in reversed(range(8)):
        b.on_trial_complete(trial_id, configs[trial_id], loss(configs[trial_id]))
    assert [a.suggest() for _ in range(6)] == [b.suggest() for _ in range(6)]


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_a_restored_strategy_goes_on_as_the_uninterrupted_one(name):
    cls = searcher_class(name)
    whole = drive(cls(SPACE, 11), 16)
    first = cls(SPACE, 11)
    drive(first, 8)
    state = json.loads(json.dumps(first.state()))  # as experiment.json keeps it
    resumed = cls(SPACE, 11)
    resumed.restore(state)
    assert drive(resumed, 8, start=8) == whole[8:]
    if name == "random":  # random search keeps only how many it drew
        assert state["observed"] == [] and len(state["drawn"]) == 8


def distance(a: dict, b: dict) -> float:
    """As ``pending_overlap`` measures it: each key on [0, 1] (x on its log scale)."""
    return max(abs(math.log(a["x"] / b["x"])) / math.log(1e3), abs(a["n"] - b["n"]) / 99)


def test_optunas_constant_liar_sends_a_worker_away_from_the_running_trials():
    """With nothing running (one trial at a time) Optuna's TPE draws the same with and
    without its constant liar; with trials running and none ending, the liar's
    suggestions keep away from them and the other's come back near them. Optuna is
    told which trials run, which finished with what, and which ended without a result."""
    from optuna.trial import TrialState

    liar, blind = searcher_class("optuna_tpe")(SPACE, 1), searcher_class("optuna_tpe_no_liar")(SPACE, 1)
    assert drive(liar, 20, batch=1) == drive(blind, 20, batch=1)
    nearest = {}
    for label, strategy in (("liar", liar), ("blind", blind)):
        running = []
        for trial_id in range(100, 108):
            config = strategy.suggest()
            if running:
                nearest.setdefault(label, []).append(min(distance(config, r) for r in running))
            strategy.on_trial_start(trial_id, searched(config))
            running.append(config)
    assert np.mean(nearest["liar"]) > 2 * np.mean(nearest["blind"]), nearest
    assert sum(d <= 0.05 for d in nearest["liar"]) < sum(d <= 0.05 for d in nearest["blind"])
    study = liar.searcher.study
    assert [t.state for t in study.trials[20:]] == [TrialState.RUNNING] * 8
    liar.on_trial_complete(100, searched(liar.running[100]), 0.5)
    liar.on_trial_end(100)
    liar.on_trial_end(101)  # ended without a result: failed, diverged or stopped
    liar.suggest()  # what ended is told at the next draw, in trial-id order
    assert [t.state for t in study.trials[20:22]] == [TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[20].value == 0.5 and study.trials[22].state == TrialState.RUNNING
    liar.on_trial_start(200, {"x": 0.1, "n": 5})  # started without a draw: not Optuna's
    liar.on_trial_complete(200, {"x": 0.1, "n": 5}, 0.1)
    liar.on_trial_end(200)
    liar.suggest()
    assert len(study.trials) == 30 and 200 not in liar.searcher.trials


def test_points_come_first_and_the_budget_stops_suggestions():
    strategy = searcher_class("tpe")(SPACE, 0, points=[{"x": 0.5, "n": 3, "c": 5}],
                                     max_suggestions=3)
    got = [strategy.suggest() for _ in range(4)]
    assert got[0] == {"x": 0.5, "n": 3, "c": 5} and got[3] is None
    assert len(strategy.drawn) == 2  # the point was not drawn


def test_tpe_on_choices_all_good_points_share_says_nothing(caplog):
    """On the tables every hyperparameter is a choice; when the good configurations all
    share one value of a choice, statsmodels' kernel divides by zero (its number of
    levels minus one), and Syne Tune then logs every candidate whose score became
    infinite: lesson 07 printed those by the hundred. The strategy silences both and
    still suggests."""
    from syne_tune.config_space import choice

    space = {"act": choice(["relu", "tanh", "sigmoid"]), "width": choice([16, 32, 64, 128])}
    strategy, configs = searcher_class("tpe")(space, 1), []  # seed 1: both happen
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for trial_id in range(40):
            config = strategy.suggest()
            configs.append(config)
            strategy.on_trial_start(trial_id, config)
            strategy.on_trial_complete(trial_id, config, 0.1 if config["act"] == "relu" else 1.0)
            strategy.on_trial_end(trial_id)
    assert not [w for w in caught if "divide by zero" in str(w.message)]
    assert not [r for r in caplog.records if "non finite" in r.getMessage()]
    assert len(strategy.observed) == 39  # each result is told at the next draw
    assert sum(c["act"] == "relu" for c in configs[20:]) > 10  # the model took the hint


def test_a_failed_trial_is_never_told():
    strategy = searcher_class("rea")(SPACE, 0)
    config = strategy.suggest()
    strategy.on_trial_complete(0, config, 1.0)
    strategy.on_trial_error(0)
    strategy.suggest()
    assert strategy.observed == [] and strategy.pending == {}


def test_search_settings_are_refused_before_any_work(results_dir):
    space = d2l_hpo.synthetic_space(max_epochs=3, epoch_seconds=0.01)
    run = dict(n_workers=1, max_num_trials=1, results_dir=results_dir, progress=False)
    with pytest.raises(ValueError, match="searcher must be"):
        d2l_hpo.run_search(d2l_hpo.synthetic_objective, space, searcher="TPE", **run)
    with pytest.raises(ValueError, match="works with searcher='random', not 'bore'"):
        d2l_hpo.run_search(d2l_hpo.synthetic_objective, space, searcher="bore",
                           early_stopping="asha", **run)
    with pytest.raises(TypeError, match="run_search"):
        d2l_hpo.run_random_search(d2l_hpo.synthetic_objective, space, searcher="tpe", **run)
    assert not results_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNING)
def test_sync_async_and_resumed_runs_with_one_seed_suggest_the_same(name, results_dir):
    """Real runs: a synchronous run twice, one resumed after 4 trials, and with one worker
    asynchronous against synchronous, each with the same seed."""
    space = d2l_hpo.synthetic_space(max_epochs=2, epoch_seconds=0.01)
    columns = ["config_learning_rate", "config_batch_size"]

    def configs(run_name, **kwargs):
        args = dict(searcher=name, n_workers=2, scheduling="sync", max_num_trials=14,
                    seed=4, results_dir=results_dir, name=run_name, progress=False)
        exp = d2l_hpo.run_search(d2l_hpo.synthetic_objective, space, **{**args, **kwargs})
        return exp.trials.sort_values("trial_id")[columns].to_dict("records")

    sync = configs("sync")
    assert configs("again") == sync
    configs("resumed", max_num_trials=4)
    assert configs("resumed", resume=True) == sync
    one_worker = configs("async-1", n_workers=1, scheduling="async")
    assert configs("sync-1", n_workers=1) == one_worker
    random = d2l_hpo.sample_configs(space, 14, seed=4)
    assert [c["learning_rate"] for c in random] != [c[columns[0]] for c in sync]


class RecordsRunning(searcher_class("random")):
    """Random search that notes, at each draw, which trials it was told are running."""

    seen: list = []

    def _draw(self):
        RecordsRunning.seen.append(sorted(self.running))
        RecordsRunning.last = self
        return super()._draw()


def ends_badly(x: float, kind: str, report=None):
    for epoch in (1, 2):
        if kind == "raise" and epoch == 2:
            raise FloatingPointError("exploded")
        report(epoch=epoch, loss=float("nan") if kind == "nan" else x)


def test_the_strategy_is_told_which_trials_run_and_when_each_ends(
        in_process, results_dir, monkeypatch):
    """A searcher that accounts for running trials (lesson 07) needs them; Syne Tune
    tells a searcher nothing of them. Every way a trial ends (completed, failed,
    diverged and stopped) takes it off the strategy's running trials."""
    monkeypatch.setitem(SEARCHERS, "records", "test_search:RecordsRunning")
    monkeypatch.setattr(RecordsRunning, "seen", [])
    space = {"x": loguniform(0.01, 1.0), "kind": d2l_hpo.choice(["ok", "raise", "nan"])}
    exp = d2l_hpo.run_search(ends_badly, space, n_workers=2, max_num_trials=8,
                             metric="loss", seed=1, backend=in_process, searcher="records",
                             results_dir=results_dir, progress=False, max_failures=8)
    statuses = set(exp.trials["status"])
    assert {"completed", "failed", "diverged"} <= statuses, statuses
    seen = RecordsRunning.seen
    assert seen[0] == [] and len(seen) == 8
    # when a worker asks, the other one's trial is the only one running
    assert all(len(running) <= 1 for running in seen)
    assert any(running for running in seen)
    assert RecordsRunning.last.running == {}  # nothing left once the run has ended
