"""d2l_hpo.claim: a ✓ line when the run bears a statement out, a ✗ line when it does
not, and under nbval a ✗ fails its cell."""
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from d2l_hpo.lesson.claims import ClaimFailed, ENV_VAR, claim


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_a_claim_that_holds_prints_a_check_mark_and_the_evidence(interactive, capsys):
    assert claim("async keeps workers busier", np.float64(0.78) > 0.43, "78% against 43%") is None
    assert capsys.readouterr().out == "✓ async keeps workers busier — 78% against 43%\n"


def test_a_claim_that_fails_interactively_prints_a_cross_and_the_lesson_goes_on(
        interactive, capsys):
    claim("sync is faster", False, "90 s against 50 s")  # no exception
    assert capsys.readouterr().out == "✗ sync is faster — 90 s against 50 s\n"


def test_a_claim_that_fails_in_strict_mode_raises_after_printing_its_line(monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, "strict")
    with pytest.raises(ClaimFailed, match="sync is faster — 90 s against 50 s"):
        claim("sync is faster", False, "90 s against 50 s")
    assert capsys.readouterr().out.startswith("✗ sync is faster")
    claim("async is faster", True, "50 s against 90 s")  # holds: no error


@pytest.mark.parametrize("args, error, words", [
    (("", True, "x"), ValueError, "non-empty string"),
    (("s", True, 3.0), TypeError, "evidence"),
    (("s", np.array([True, False]), "x"), TypeError, "True or False"),
])
def test_a_malformed_claim_is_refused_before_it_prints(args, error, words, capsys):
    with pytest.raises(error, match=words):
        claim(*args)
    assert capsys.readouterr().out == ""


NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
               "outputs": [], "source": "import d2l_hpo\n"
                                        "d2l_hpo.claim('one is more than two', 1 > 2, '1 vs 2')"}],
    "metadata": {"kernelspec": {"display_name": "Python (d2l-hpo)", "language": "python",
                                "name": "d2l-hpo"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.mark.slow
@pytest.mark.parametrize("holds", [False, True])
def test_under_nbval_a_claim_that_does_not_hold_fails_its_cell(holds):
    # a real nbval run with a real kernel, started the way make test starts it (from the
    # repository, whose conftest.py turns claims strict); the notebook lives in a
    # throw-away folder inside the repository for the length of the test
    nb = json.loads(json.dumps(NOTEBOOK))
    if holds:
        nb["cells"][0]["source"] = nb["cells"][0]["source"].replace("1 > 2", "2 > 1")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    with tempfile.TemporaryDirectory(dir=ROOT / "tests", prefix=".nbval-") as folder:
        path = Path(folder) / "lesson.ipynb"
        path.write_text(json.dumps(nb))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", str(path.relative_to(ROOT)), "--nbval-lax",
             "--nbval-current-env", "-p", "no:cacheprovider"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    if holds:
        assert done.returncode == 0, done.stdout[-3000:]
    else:
        assert done.returncode == 1, done.stdout[-3000:]
        assert "ClaimFailed" in done.stdout and "✗ one is more than two — 1 vs 2" in done.stdout


@pytest.mark.parametrize("holds", ["False", "no", "", math.nan, [0], [], 0, 1, 0.0, None,
                                   np.array([True])])
def test_only_a_real_boolean_decides_a_claim(holds, capsys):
    with pytest.raises(TypeError, match="must be True or False"):
        claim("s", holds, "x")
    assert capsys.readouterr().out == ""


def test_numpy_booleans_decide_a_claim(interactive, capsys):
    claim("a", np.bool_(True), "x")
    claim("b", np.float64(1.0) > 2, "y")
    assert capsys.readouterr().out.splitlines() == ["✓ a — x", "✗ b — y"]
