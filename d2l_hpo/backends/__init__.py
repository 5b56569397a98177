"""Where trials run. Each backend implements Syne Tune's ``TrialBackend`` seam, and
``base.RunnerBackend`` for what a run needs beyond it.

``SubprocessBackend`` (the default) runs trials as processes on this machine;
``RayBackend`` runs them as Ray tasks on a Ray cluster and needs the ``ray`` extra.
Both are loaded on first use: a trial process imports this package's light modules
(``_trial_main``, ``_forkserver``, ``_ray_worker``, ``_common``) without Syne Tune.
"""

__all__ = ["SubprocessBackend", "RayBackend"]


def __getattr__(name):
    if name == "SubprocessBackend":
        from d2l_hpo.backends.local import SubprocessBackend
        return SubprocessBackend
    if name == "RayBackend":  # the core install has no Ray
        from d2l_hpo.backends.ray_backend import RayBackend
        return RayBackend
    raise AttributeError(f"module 'd2l_hpo.backends' has no attribute {name!r}")
