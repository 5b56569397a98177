"""The core install, without the ``ray`` extra, keeps working."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
sys.modules["ray"] = None  # import ray now fails, as without the extra
import d2l_hpo
exp = d2l_hpo.run_random_search(d2l_hpo.synthetic_objective, d2l_hpo.synthetic_space(2, 0.01),
                                n_workers=2, max_num_trials=3, seed=0,
                                results_dir=sys.argv[1], progress=False)
print("statuses", sorted(set(exp.trials["status"])))
from d2l_hpo.backends import RayBackend
try:
    RayBackend()
except ImportError as err:
    print("ImportError:", err)
"""


def test_local_search_works_and_ray_backend_says_what_to_install(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "statuses ['completed']" in done.stdout
    assert "ImportError: the Ray backend needs Ray: pip install 'd2l-hpo[ray]'" in done.stdout
