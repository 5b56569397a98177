"""What is committed in the notebooks: outputs of a real run, fit for browsing.

(Executing them is nbval's job: `make test` runs every notebook with --nbval-lax.)
"""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
    (ROOT / "tests" / "lessons").glob("*.ipynb"))
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(home|root|tmp|work|usr|opt|Users|private|var)/")


def outputs(nb):
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            yield cell, output


def test_the_lessons_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert names[:4] == ["01_async_random_search.ipynb", "02_sync_vs_async.ipynb",
                         "03_linear_speedup.ipynb", "04_scaling_out_with_ray.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_and_without_errors_or_local_paths(path):
    nb = json.loads(path.read_text())
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code_cells), "run every cell before committing"
    assert any(o.get("data", {}).get("image/png") for _, o in outputs(nb)), "figures missing"
    for cell, output in outputs(nb):
        assert output["output_type"] != "error", f"error output in {path.name}"
        text = json.dumps(output.get("text", "")) + json.dumps(
            {k: v for k, v in output.get("data", {}).items() if k.startswith("text/")})
        found = ABSOLUTE_PATH.search(text)
        assert not found, f"{path.name}: machine-specific path {found.group(0)!r} in an output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_is_the_one_the_setup_installs(path):
    nb = json.loads(path.read_text())
    name = nb["metadata"]["kernelspec"]["name"]
    assert name == "d2l-hpo"
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(name)
    assert Path(spec.argv[0]).resolve().parent == Path(sys.executable).resolve().parent


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_each_lesson_reads_the_budget_and_ends_with_summary_and_exercises(path):
    nb = json.loads(path.read_text())
    source = ["".join(c["source"]) for c in nb["cells"]]
    assert any("d2l_hpo.by_budget(" in s for s in source)
    assert any("D2L_HPO_BUDGET" in s for s in source if s)  # says how to switch
    assert any("## Summary" in s for s in source)
    assert any("## Exercises" in s for s in source)
    checked = [s for s in source if s.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "mark the deterministic cells so that nbval compares them"
