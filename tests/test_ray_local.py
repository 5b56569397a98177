"""RayBackend() with no address starts its own Ray instance on this machine (127.0.0.1)
and stops it on shutdown(). Run in a child process, away from the cluster tests."""
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="the Ray backend is the optional extra 'ray'")

SCRIPT = """
import sys, psutil, ray
from d2l_hpo import run_random_search, synthetic_objective, synthetic_space
from d2l_hpo.backends import RayBackend

backend = RayBackend(num_cpus=2)
exp = run_random_search(synthetic_objective, synthetic_space(2, 0.02), n_workers=2,
                        max_num_trials=4, seed=0, backend=backend,
                        results_dir=sys.argv[1], progress=False)
print("statuses", sorted(set(exp.trials["status"])), "nodes", exp.trials["node"].nunique())
ray_pids = {p.pid for p in psutil.Process().children(recursive=True)}
addresses = {c.laddr.ip for c in psutil.net_connections(kind="inet") if c.pid in ray_pids}
print("addresses", sorted(addresses))
backend.shutdown()
print("initialized after shutdown", ray.is_initialized())
import time
deadline = time.time() + 15
while True:  # Ray's processes take a moment to exit
    left = [p for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    if not left or time.time() > deadline:
        break
    time.sleep(0.2)
print("children left", len(left))
"""


def test_embedded_ray_instance_on_127_0_0_1(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "statuses ['completed'] nodes 1" in out
    addresses = eval(out.split("addresses ", 1)[1].splitlines()[0])
    assert addresses and set(addresses) <= {"127.0.0.1", "::ffff:127.0.0.1"}, addresses
    assert "initialized after shutdown False" in out
    assert "children left 0" in out
