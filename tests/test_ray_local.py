"""RayBackend() with no address starts its own Ray instance on this machine (127.0.0.1)
and stops it on shutdown(). Run in a child process, away from the cluster tests."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray backend is the optional extra 'ray'")
pytestmark = pytest.mark.ray

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
print("gcs", ray.get_runtime_context().gcs_address)
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


def run_script(tmp_path, **env):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_embedded_instance_on_127_0_0_1_does_not_join_a_cluster_started_with_ray_start(
        tmp_path):
    """ray.init() without an address joins the cluster that `ray start` left on this
    machine, or the one RAY_ADDRESS names (and then refuses num_cpus): a CI run failed
    that way. RayBackend() with no address starts its own instance whatever runs here,
    on 127.0.0.1, and shutdown() stops it. (With nothing running and no RAY_ADDRESS,
    B2's RayBackend row runs the same embedded instance: tests/test_benchmarks.py.)"""
    port = free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--port", str(port),
                             "--node-ip-address=127.0.0.1", "--num-cpus=1",
                             "--include-dashboard=false"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        current = Path("/tmp/ray/ray_current_cluster")  # what ray.init() would join
        deadline = time.time() + 90
        while not (current.exists() and current.read_text().strip() == f"127.0.0.1:{port}"):
            assert head.poll() is None and time.time() < deadline, "ray start did not come up"
            time.sleep(0.5)
        # RAY_ADDRESS names it too
        out = run_script(tmp_path, RAY_ADDRESS=f"127.0.0.1:{port}")
    finally:
        head.send_signal(signal.SIGTERM)  # --block: stops the node's processes
        head.wait(timeout=60)
    assert "statuses ['completed'] nodes 1" in out
    gcs = out.split("gcs ", 1)[1].splitlines()[0]
    assert gcs.startswith("127.0.0.1:") and gcs != f"127.0.0.1:{port}", gcs
    # its own instance, on 127.0.0.1 only, gone after shutdown()
    addresses = eval(out.split("addresses ", 1)[1].splitlines()[0])
    assert addresses and set(addresses) <= {"127.0.0.1", "::ffff:127.0.0.1"}, addresses
    assert "initialized after shutdown False" in out
    assert "children left 0" in out
