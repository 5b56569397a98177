"""The search seam (``d2l_hpo.search``): every registered strategy is reproducible with
its seed, learns (or not) from finished trials told in trial-id order, and a restored
strategy goes on exactly as the uninterrupted one; names are checked before any work."""
import json
import math

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
    batch's results told before the next one is suggested (in reverse order: the
    strategy must not care)."""
    configs = []
    for first in range(start, start + n, batch):
        ids = list(range(first, min(first + batch, start + n)))
        if reseed is not None:
            np.random.seed(reseed + first)  # numpy's global generator must not matter
        batch_configs = [strategy.suggest() for _ in ids]
        for trial_id, config in reversed(list(zip(ids, batch_configs))):
            strategy.on_trial_complete(trial_id, {k: config[k] for k in ("x", "n")},
                                       loss(config))
        configs += batch_configs
    return configs


def test_the_registry_names_every_strategy_and_refuses_others():
    assert {"random", "tpe", "rea", "bore"} <= set(SEARCHERS)
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


def test_points_come_first_and_the_budget_stops_suggestions():
    strategy = searcher_class("tpe")(SPACE, 0, points=[{"x": 0.5, "n": 3, "c": 5}],
                                     max_suggestions=3)
    got = [strategy.suggest() for _ in range(4)]
    assert got[0] == {"x": 0.5, "n": 3, "c": 5} and got[3] is None
    assert len(strategy.drawn) == 2  # the point was not drawn


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
