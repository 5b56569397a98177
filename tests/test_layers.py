"""The package's layers: the import-linter contracts of pyproject.toml hold, and a real
trial process that imports what ``lenet_objective`` imports loads no tuner, runner,
search code or Syne Tune (whose package loads its ``Tuner``)."""
import subprocess
import sys
from pathlib import Path

import pytest

import d2l_hpo

ROOT = Path(__file__).resolve().parents[1]
# what a trial must never load: the run machinery and Syne Tune's tuner and schedulers


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def loaded_modules(batch_size: int, learning_rate: float = 0.1):
    """Imports every module lenet_objective imports (torch and d2l included), then
    reports how many modules the trial process holds and fails naming any it must not."""
    import sys

    from d2l_hpo.backends._common import imported_modules
    from d2l_hpo.lesson.objectives import lenet_objective
    from d2l_hpo.lesson.reporter import Reporter

    for name in imported_modules(lenet_objective):
        try:
            __import__(name)
        except ImportError:  # "from d2l import torch as d2l" lists d2l.torch: a name
            pass
    forbidden = ("d2l_hpo.run", "d2l_hpo.search", "d2l_hpo.experiment", "d2l_hpo.plots",
                 "syne_tune")
    found = [m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden)]
    if found:
        names = list(sys.modules)
        i = names.index(found[0])
        raise RuntimeError(f"the trial loaded {sorted(found)[:5]}; the modules loaded "
                           f"just before the first: {names[max(0, i - 12):i + 1]}")
    Reporter()(loss=1.0, modules=len(sys.modules), torch=float("torch" in sys.modules))


@pytest.mark.slow
def test_a_trial_process_loads_no_tuner(results_dir):
    space = {"batch_size": d2l_hpo.randint(16, 32), "learning_rate": 0.1}
    exp = d2l_hpo.run_search(loaded_modules, space, n_workers=1, max_num_trials=2, seed=0,
                             metric="loss", results_dir=results_dir, progress=False,
                             max_failures=0)
    assert len(exp.trials) == 2 and (exp.trials["status"] == "completed").all()
    assert (exp.results["torch"] == 1).all()  # it did import what LeNet needs
    print(f"modules in a trial: {exp.results['modules'].tolist()}")
