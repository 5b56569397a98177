"""Early stopping (``early_stopping="asha"``) through real trial processes: pruned trials
stop at rungs, completed ones run every epoch, the configurations are those of plain
random search with the same seed, fewer epochs are spent, nothing is left running,
bad settings are refused before any work, and an interrupted run resumes."""
import json
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import d2l_hpo
from conftest import pooled_server_pids
from d2l_hpo import load_experiment, run_random_search
from d2l_hpo.search.spaces import randint

MAX_EPOCHS = 9
SPACE = d2l_hpo.synthetic_space(max_epochs=MAX_EPOCHS, epoch_seconds=0.04)
CONFIG = ["config_learning_rate", "config_batch_size", "config_num_layers"]
RUNGS = {1, 3}  # grace period 1, reduction factor 3, below max_epochs 9


def search(results_dir, name, **kwargs):
    args = dict(n_workers=2, max_num_trials=12, seed=3, results_dir=results_dir,
                name=name, progress=False)
    args.update(kwargs)
    return run_random_search(d2l_hpo.synthetic_objective, SPACE, **args)


def epochs_reported(exp):
    return exp.results.groupby("trial_id")["epoch"].apply(list).to_dict()


def trial_processes():
    """Our trial processes and fork servers still running under this process (but
    not the fork servers kept warm for the next search)."""
    left = []
    for process in psutil.Process().children(recursive=True):
        if process.pid in pooled_server_pids():
            continue
        try:
            command = " ".join(process.cmdline())
            if process.status() != psutil.STATUS_ZOMBIE and (
                    "_forkserver" in command or "_trial_main" in command):
                left.append(command)
        except psutil.Error:
            pass
    return left


@pytest.mark.slow
def test_asha_prunes_at_rungs_on_the_same_configurations_and_spends_fewer_epochs(
        results_dir):
    plain = search(results_dir, "plain")
    asha = search(results_dir, "asha", early_stopping="asha", grace_period=1,
                  reduction_factor=3)
    # the same configurations in the same order: the lesson compares like with like
    assert asha.trials[CONFIG].to_dict("records") == plain.trials[CONFIG].to_dict("records")
    statuses = asha.trials.set_index("trial_id")["status"]
    assert set(statuses) <= {"completed", "pruned"} and "pruned" in set(statuses)
    assert set(plain.trials["status"]) == {"completed"}
    reported = epochs_reported(asha)
    for trial_id, status in statuses.items():
        if status == "completed":  # every epoch
            assert reported[trial_id] == list(range(1, MAX_EPOCHS + 1)), trial_id
        else:  # stopped exactly at a rung, and the table says which
            stopped_at = asha.trials.set_index("trial_id").loc[trial_id, "stopped_at"]
            assert stopped_at in RUNGS, (trial_id, stopped_at)
            assert reported[trial_id] == list(range(1, int(stopped_at) + 1)), trial_id
    assert plain.trials["stopped_at"].isna().all()
    assert plain.epochs_spent == 12 * MAX_EPOCHS
    assert asha.epochs_spent == sum(len(r) for r in reported.values()) < plain.epochs_spent
    assert asha.summary()["pruned"] == (statuses == "pruned").sum()
    assert trial_processes() == []
    # the report and the figures say what happened
    from d2l_hpo.report import write_report
    write_report(asha)
    summary = (asha.path / "summary.md").read_text()
    assert (f"early stopping: ASHA (grace period 1, reduction factor 3); "
            f"{(statuses == 'pruned').sum()} trials pruned; {asha.epochs_spent} epochs "
            "spent in all") in summary


def test_bad_early_stopping_settings_are_refused_before_any_work(results_dir):
    cases = [
        (dict(early_stopping="hyperband"), "early_stopping must be None or 'asha'"),
        (dict(early_stopping="asha", grace_period=0), "grace_period must be an integer >= 1"),
        (dict(early_stopping="asha", grace_period=MAX_EPOCHS),
         f"grace_period={MAX_EPOCHS} must be below max_epochs={MAX_EPOCHS}"),
        (dict(early_stopping="asha", reduction_factor=1), "reduction_factor must be a number > 1"),
        (dict(early_stopping="asha", scheduling="sync"), "Syne Tune 0.16 has no synchronous"),
        (dict(early_stopping="asha", resource_attr="step"),
         "counts epochs by the reported value 'step', but synthetic_objective() never names it"),
    ]
    for kwargs, words in cases:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            search(results_dir, "bad", **kwargs)
    with pytest.raises(ValueError, match="constant 'max_epochs'"):
        run_random_search(d2l_hpo.synthetic_objective,
                          {**SPACE, "max_epochs": randint(2, 9)}, n_workers=1,
                          max_num_trials=1, early_stopping="asha", results_dir=results_dir,
                          name="bad")
    assert not results_dir.exists()


INTERRUPTED = textwrap.dedent("""
    import sys
    import d2l_hpo
    space = d2l_hpo.synthetic_space(max_epochs=9, epoch_seconds=0.15)
    d2l_hpo.run_random_search(d2l_hpo.synthetic_objective, space, n_workers=2,
                              max_num_trials=10, seed=5, name="asha", early_stopping="asha",
                              results_dir=sys.argv[1], progress=False)
""")


def finished_trials(folder) -> int:
    try:
        text = (folder / "trials.csv").read_text()
    except OSError:
        return 0
    return text.count(",completed,") + text.count(",pruned,")


@pytest.mark.slow
def test_an_interrupted_asha_run_resumes_with_its_rungs(tmp_path):
    runner = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(tmp_path)],
                              stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "asha"
    deadline = time.time() + 120
    while finished_trials(folder) < 3 and time.time() < deadline:
        time.sleep(0.1)
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=60)
    assert "resume=True" in err
    before = load_experiment(folder)
    kept = before.trials[before.trials["status"].isin(["completed", "pruned"])]
    assert len(kept) >= 3 and "interrupted" in set(before.trials["status"])
    with pytest.raises(ValueError, match="its early_stopping was 'asha', now None"):
        run_random_search(d2l_hpo.synthetic_objective,
                          d2l_hpo.synthetic_space(max_epochs=9, epoch_seconds=0.15),
                          n_workers=2, max_num_trials=10, name="asha", results_dir=tmp_path,
                          resume=True, progress=False)
    exp = run_random_search(d2l_hpo.synthetic_objective,
                            d2l_hpo.synthetic_space(max_epochs=9, epoch_seconds=0.15),
                            n_workers=2, max_num_trials=10, name="asha", results_dir=tmp_path,
                            resume=True, progress=False, early_stopping="asha")
    finished = exp.trials[exp.trials["status"].isin(["completed", "pruned"])]
    assert len(finished) == 10
    # the kept trials are as they were; the rest ran now, pruned at rungs or completed
    old = kept.set_index("trial_id")[["status", "stopped_at"]]
    new = exp.trials.set_index("trial_id").loc[old.index, ["status", "stopped_at"]]
    assert old.fillna(0).equals(new.fillna(0))
    assert set(exp.trials["stopped_at"].dropna()) <= RUNGS
    configs = [json.dumps(c, sort_keys=True)
               for c in finished[CONFIG].round(8).to_dict("records")]
    assert len(set(configs)) == 10  # none twice
    assert trial_processes() == []


def test_plots_and_summary_show_pruned_trials(tmp_path):
    import math

    import matplotlib.pyplot as plt
    import pandas as pd

    from d2l_hpo.plots import STATUS_COLORS, learning_curves, plot_learning_curves
    from d2l_hpo.report import write_report
    from d2l_hpo.experiment.results import build_experiment

    trials = pd.DataFrame({"trial_id": [0, 1], "status": ["completed", "pruned"],
                           "start": [0.0, 0.0], "end": [3.0, 1.0], "worker": [0, 1],
                           "config_x": [0.1, 0.2], "stopped_at": [math.nan, 1]})
    rows = pd.DataFrame({"trial_id": [0, 0, 0, 1], "time": [1.0, 2.0, 3.0, 1.0],
                         "epoch": [1, 2, 3, 1], "validation_error": [0.5, 0.4, 0.3, 0.8]})
    settings = {"name": "pruned", "n_workers": 2, "scheduling": "async",
                "metric": "validation_error", "mode": "min", "wallclock": 3.0,
                "config_columns": ["x"], "constants": {"max_epochs": 3},
                "early_stopping": "asha", "grace_period": 1, "reduction_factor": 3,
                "rungs": [1]}
    exp = build_experiment(tmp_path, settings, trials, rows)
    assert exp.rungs == [1] and exp.epochs_spent == 4
    assert {t: list(c["epoch"]) for t, c in learning_curves(exp).items()} == {0: [1, 2, 3],
                                                                             1: [1]}
    ax = plot_learning_curves(exp)
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    assert colours == {"completed (1)": STATUS_COLORS["completed"],
                       "pruned (1)": STATUS_COLORS["pruned"]}
    # the pruned curve lies under the completed one, and no mark covers it
    pruned, completed = (next(line for line in ax.get_lines() if line.get_label() == label)
                         for label in ("pruned (1)", "completed (1)"))
    assert pruned.get_zorder() < completed.get_zorder()
    assert not [line for line in ax.get_lines() if line.get_color() == "black"]
    plt.close("all")
    write_report(exp)
    summary = (tmp_path / "summary.md").read_text()
    assert "- trials: 2 (1 completed, 1 pruned)" in summary
    assert "1 trials pruned; 4 epochs spent in all" in summary
