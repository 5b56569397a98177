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
    assert names[:7] == ["01_async_random_search.ipynb", "02_sync_vs_async.ipynb",
                         "03_linear_speedup.ipynb", "04_scaling_out_with_ray.ipynb",
                         "05_early_stopping_asha.ipynb", "06_async_search_at_scale.ipynb",
                         "07_searchers_that_learn.ipynb"]


def test_make_test_runs_every_lesson_once_and_only_timeless_ones_beside_the_tests():
    """make test runs BESIDE_TESTS with the tests (pytest-xdist) and the rest alone; the
    conftest groups the same lessons: a lesson left out of both, or listed in one place
    only, would run in neither part or beside the tests without its group."""
    from conftest import BESIDE_THE_TESTS

    makefile = (ROOT / "Makefile").read_text()
    beside = re.search(r"^BESIDE_TESTS := (.*)$", makefile, re.M).group(1).split()
    assert sorted(Path(p).name for p in beside) == sorted(BESIDE_THE_TESTS)
    assert all((ROOT / p).exists() for p in beside)
    assert "$(filter-out $(BESIDE_TESTS),$(NOTEBOOKS))" in makefile
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "pytest tests $(BESIDE_TESTS)" in recipe and "pytest $(ALONE)" in recipe


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


LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def output_lines(nb):
    for _, output in outputs(nb):
        text = output.get("text") or output.get("data", {}).get("text/plain") or ""
        yield from "".join(text).splitlines()


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_each_lesson_reads_the_budget_and_ends_with_summary_and_exercises(path):
    nb = json.loads(path.read_text())
    source = ["".join(c["source"]) for c in nb["cells"]]
    assert any("d2l_hpo.by_budget(" in s for s in source)
    assert any("D2L_HPO_BUDGET" in s for s in source if s)  # says how to switch
    assert any("## Summary" in s for s in source)
    assert any("## Exercises" in s for s in source)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_each_lesson_checks_its_results_and_every_check_held(path):
    nb = json.loads(path.read_text())
    lines = list(output_lines(nb))
    held = [line for line in lines if line.startswith("✓ ")]
    failed = [line for line in lines if line.startswith("✗ ")]
    assert len(held) >= 2, f"{path.name}: at least two checked claims expected, found {held}"
    assert not failed, f"{path.name}: claims that did not hold in the committed run: {failed}"
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(" — " in line for line in held)  # each names its evidence
    assert any("d2l_hpo.claim(" in s for s in sources)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_test_plumbing_stays_out_of_sight(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        assert "NBVAL_" not in source, f"{path.name}: use a cell tag (nbval-check-output ...)"
        assert not re.search(r"^\s*assert\b", source, re.M), f"{path.name}: make it a claim"
    tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
    assert set(tags) <= {"nbval-check-output", "nbval-ignore-output", "nbval-skip"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_progress_lines_show_where_each_search_ended(path):
    nb = json.loads(path.read_text())
    for _, output in outputs(nb):
        data = output.get("data", {})
        assert "application/vnd.jupyter.widget-view+json" not in data, \
            f"{path.name}: a widget's saved text reads 0%; the progress line must be static"
        if "<progress" in "".join(data.get("text/html", "")):
            text = "".join(data["text/plain"])
            assert "(finished after" in text, f"{path.name}: progress saved mid-run: {text}"
            counts = re.search(r": (\d+)(?:/(\d+))? trials completed", text)
            assert counts, text
            completed, total = counts.groups()
            assert total is None or completed == total or "budget" in text, text
