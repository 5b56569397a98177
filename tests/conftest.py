import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture(autouse=True)
def _no_user_data_env(monkeypatch):
    # tests decide for themselves where data comes from
    monkeypatch.delenv("SYNETUNE_FOLDER", raising=False)
    yield
