"""The Ray side of ``RayBackend`` that is about the cluster, not about trials: starting
or joining Ray, keeping it on 127.0.0.1, the collector actor this driver shares
between its backends, warm worker processes, and what the cluster has room for.
"""

from __future__ import annotations

import logging
import os
from typing import Any

try:
    import ray

    from d2l_hpo.backends import _ray_worker  # what runs on the nodes (imports ray)
except ImportError:  # the core install works without the ``ray`` extra
    ray = None

INSTALL_HINT = "the Ray backend needs Ray: pip install 'd2l-hpo[ray]' (or pip install 'ray==2.60.*')"
# Ray binds its local processes to 127.0.0.1 only when this is set (checked with ss)
LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

# (cluster, job, resources per trial, slots, modules) already warmed up by this process
_WARMED: set[tuple] = set()
# (cluster, job) -> the collector actor of this driver; the reference keeps it alive
_COLLECTORS: dict[tuple, Any] = {}
_CREATED: list[str] = []  # names of the collectors this process started
COLLECTOR_PREFIX = "d2l_hpo-collector-"


def require_ray():
    if ray is None:
        raise ImportError(INSTALL_HINT)
    return ray


def local_only() -> None:
    """Make the Ray processes started from here on bind and talk on 127.0.0.1 only.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when it is imported: the Ray
    processes we start inherit the variable, and this process, which imported Ray
    already, gets the constant the variable would have set. Without this, Ray uses
    the machine's network address even for an instance on one machine.
    """
    require_ray()
    os.environ.update(LOCAL_ONLY)
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def start_local(**init_kwargs) -> None:
    """``ray.init`` of a new Ray instance on this machine, bound to 127.0.0.1.

    ``ray.init()`` without an address joins the cluster named by ``RAY_ADDRESS`` or
    by the file Ray writes when any cluster starts here (``ray start``, a test's
    ``Cluster``), and then refuses ``num_cpus``. ``address="local"`` starts a new
    instance whatever runs here (``RAY_ADDRESS`` included).
    """
    local_only()
    # token authentication stays on; its notice is not for learners
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    ray.init(address="local", include_dashboard=False, **init_kwargs)


def join(address: str | None, num_cpus: int | None) -> bool:
    """Start Ray on this machine (``address`` None, bound to 127.0.0.1) or join the
    cluster at ``address``, unless this process is connected already.

    :return: whether Ray was started here (and is ours to shut down)
    """
    if ray.is_initialized():
        return False
    if address is None:
        start_local(num_cpus=num_cpus or None, log_to_driver=False,
                    logging_level=logging.WARNING)
        return True
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConnectionError(
            f"cannot connect to the Ray cluster at {address!r}: {err}. Start one with "
            "`ray start --head`, or pass address=None for a local Ray instance") from err
    return False


def shared_collector(token: str):
    """The collector actor of this driver on the head node: one per driver, kept for
    its later backends (starting an actor takes a new worker process)."""
    context = ray.get_runtime_context()
    session = (context.gcs_address, context.get_job_id())
    collector = _COLLECTORS.get(session)
    if collector is not None:
        try:  # still alive? (one short round trip)
            ray.get(collector.drain.remote(token), timeout=30)
        except (ray.exceptions.RayError, TimeoutError):
            collector = None
    if collector is None:
        _COLLECTORS.clear()  # an earlier Ray session's actor is gone with it
        # named, so that `ray.util.list_named_actors()` shows it (one per driver)
        name = f"{COLLECTOR_PREFIX}{context.get_job_id()}-{len(_CREATED)}"
        _CREATED.append(name)
        collector = _COLLECTORS[session] = ray.remote(num_cpus=0)(_ray_worker.Collector).options(
            name=name, resources={"node:__internal_head__": 0.001}).remote()
    return collector


def warm_up(cpus: float, gpus: float, slots: int, modules: list[str]) -> None:
    """Start a worker process for every trial slot now, before the clock runs, and
    import there what the objective imports (torch, d2l, ...).

    Ray starts its worker processes on demand (seconds each), so the first trial on
    each slot would otherwise wait for one. Later trials reuse them.
    """
    context = ray.get_runtime_context()
    key = (context.gcs_address, context.get_job_id(), cpus, gpus, slots, tuple(modules))
    if key in _WARMED:  # this driver warmed them up for an earlier backend
        return
    warm = ray.remote(_ray_worker.warm).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    try:
        ray.get([warm.remote(0.2, modules) for _ in range(slots)])
    except ray.exceptions.RayError:  # a node died meanwhile: a warm-up is only a head
        return                       # start, and the trials meet (and record) the loss
    _WARMED.add(key)


def check_resources(cpus: float, gpus: float) -> None:
    """Raise when no node of the cluster has what one trial asks for."""
    total = ray.cluster_resources()
    for label, need, key in (("cpus_per_trial", cpus, "CPU"), ("gpus_per_trial", gpus, "GPU")):
        if need and not any(node["Resources"].get(key, 0) >= need
                            for node in ray.nodes() if node["Alive"]):
            raise ValueError(
                f"{label}={need:g}, but no node of the Ray cluster has that many "
                f"{key}s (the cluster has {total.get(key, 0):g} in all)")


def slots(cpus: float, gpus: float) -> int:
    """How many trials of these resources the cluster's live nodes can run at once."""
    count = 0
    for node in ray.nodes():
        if node["Alive"]:
            res = node["Resources"]
            n = int(res.get("CPU", 0) // cpus)
            if gpus:
                n = min(n, int(res.get("GPU", 0) // gpus))
            count += n
    return count


def forget() -> None:
    """This driver's Ray session has ended: its collector and warm workers are gone."""
    _COLLECTORS.clear()
    _WARMED.clear()
