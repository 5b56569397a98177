"""python -m d2l_hpo: run, plot, help, and its errors."""
import subprocess
import sys

import pytest

from d2l_hpo.__main__ import build_parser, main

pytestmark = pytest.mark.slow


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "d2l_hpo", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_run_writes_results_figures_and_summary_then_plot_redraws_them(tmp_path):
    done = run_cli("run", "--workers", "2", "--trials", "2", "--epochs", "1",
                   "--data-fraction", "0.1", "--name", "tiny", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "runs" / "tiny"
    files = {"results.csv", "trials.csv", "experiment.json", "summary.md",
             "trials_over_time.png", "best_so_far.png", "worker_timeline.png"}
    assert files <= {p.name for p in folder.iterdir()}
    summary = (folder / "summary.md").read_text()
    assert "best validation_error" in summary and "2 completed" in summary
    assert "tiny" in done.stdout and "worker_timeline.png" in done.stdout
    for png in folder.glob("*.png"):
        png.unlink()
    again = run_cli("plot", "tiny", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(list(folder.glob("*.png"))) == 3


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for flag in ["--workers", "--trials", "--max-wallclock-time", "--scheduling", "--epochs",
                 "--data-fraction", "--seed", "--name", "--results-dir", "--data",
                 "--early-stopping", "--grace-period", "--reduction-factor"]:
        assert flag in text


@pytest.mark.parametrize("args, words", [
    (["run", "--workers", "0"], "must be an integer >= 1"),
    (["run", "--data-fraction", "1.5"], "must be in (0, 1]"),
    (["run", "--scheduling", "fast"], "invalid choice: 'fast'"),
])
def test_bad_flags_are_refused_by_name(args, words, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(args)
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_plot_of_an_unknown_run_is_a_clear_error(tmp_path, capsys):
    assert main(["plot", "missing", "--results-dir", str(tmp_path)]) == 2
    assert "no experiment 'missing'" in capsys.readouterr().err


def test_missing_data_stops_run_before_any_trial(tmp_path, monkeypatch, capsys):
    from d2l_hpo.lesson import data

    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "_download", lambda root: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("D2L_HPO_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--results-dir", str(tmp_path / "runs")]) == 2
    assert "Fashion-MNIST was not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_early_stopping_from_the_command_line(tmp_path):
    done = run_cli("run", "--workers", "2", "--trials", "6", "--epochs", "3",
                   "--data-fraction", "0.02", "--name", "asha", "--early-stopping", "asha",
                   "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "runs" / "asha" / "summary.md").read_text()
    assert "early stopping: ASHA (grace period 1, reduction factor 3" in summary
    refused = run_cli("run", "--early-stopping", "asha", "--scheduling", "sync",
                      "--name", "sync-asha", cwd=tmp_path)
    assert refused.returncode == 2 and "needs scheduling='async'" in refused.stderr
    assert not (tmp_path / "runs" / "sync-asha").exists()
