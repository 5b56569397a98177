"""Progress: a line per change in a log, and a notebook output that ends in its final
state (what GitHub and nbviewer show of a saved notebook)."""
import io
import json
import math
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from d2l_hpo.run.progress import LogProgress, ProgressState, in_notebook, progress_display



def test_a_log_gets_one_line_per_change_and_a_last_line_at_the_end():
    stream = io.StringIO()
    progress = LogProgress("demo", 3, "loss", stream=stream, clock=lambda: 12.0)
    states = [ProgressState(0, 0, 0, 2, math.nan)] * 50 + [
        ProgressState(1, 0, 0, 2, 0.5)] * 50 + [ProgressState(2, 1, 0, 0, 0.25)]
    for state in states:
        progress.update(state)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "demo: 0/3 trials completed, 0 failed, 2 running; best loss -",
        "demo: 1/3 trials completed, 0 failed, 2 running; best loss 0.5",
        "demo: 2/3 trials completed, 1 failed, 0 running; best loss 0.25",
        "demo: 2/3 trials completed, 1 failed, 0 running; best loss 0.25 (finished after 12 s)",
    ]


def test_outside_a_notebook_and_a_terminal_the_display_is_the_log_kind(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not in_notebook()
    assert isinstance(progress_display("x", 2, "loss"), LogProgress)


@pytest.mark.slow
def test_the_cli_writes_a_line_per_change_into_a_log(tmp_path):
    # stderr is a pipe here, as with `make run | tee log` or in CI
    done = subprocess.run(
        [sys.executable, "-m", "d2l_hpo", "run", "--workers", "2", "--trials", "3",
         "--epochs", "1", "--data-fraction", "0.05", "--name", "logged"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("logged: ")]
    assert lines[-1].startswith("logged: 3/3 trials completed") and "(finished after" in lines[-1]
    # first the set-up before the clock: a new process starts the trial server
    assert re.fullmatch(r"logged: set-up \d+\.\d s before the clock \(trial server "
                        r"started: imports\)", lines[0]), lines[0]
    assert "s of the budget" in lines[1]  # the CLI's default wall-clock budget
    body = [re.sub(r"; \d+/\d+ s of the budget", "", line) for line in lines[1:-1]]
    assert all(a != b for a, b in zip(body, body[1:])), "a line without a change: " + str(body)
    assert len(body) <= 3 * 3 + 1  # at most a start, a new best and an end per trial


@pytest.mark.slow
def test_a_saved_notebook_shows_the_final_state_of_its_search(tmp_path):
    # a real kernel runs a search; what is saved must read as the end, not 0/N
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "import d2l_hpo\n"
        "exp = d2l_hpo.run_random_search(d2l_hpo.synthetic_objective,\n"
        "    d2l_hpo.synthetic_space(max_epochs=2, epoch_seconds=0.05), n_workers=2,\n"
        "    max_num_trials=3, seed=0, name='shown')"))
    NotebookClient(nb, timeout=300, kernel_name="d2l-hpo",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [o for o in nb.cells[0].outputs if o.get("output_type") == "display_data"]
    assert len(shown) == 1, json.dumps(nb.cells[0].outputs)[:2000]
    text, html = shown[0]["data"]["text/plain"], shown[0]["data"]["text/html"]
    assert text.startswith("shown: 3/3 trials completed, 0 failed, 0 running") and "finished" in text
    assert '<progress value="3" max="3"' in html
