"""Where trials run. Each backend implements Syne Tune's ``TrialBackend`` seam.

``SubprocessBackend`` (the default) runs trials as processes on this machine;
``RayBackend`` runs them as Ray tasks on a Ray cluster and needs the ``ray`` extra.
"""

from d2l_hpo.backends.local import SubprocessBackend

__all__ = ["SubprocessBackend", "RayBackend"]


def __getattr__(name):
    if name == "RayBackend":  # imported on first use: the core install has no Ray
        from d2l_hpo.backends.ray_backend import RayBackend
        return RayBackend
    raise AttributeError(f"module 'd2l_hpo.backends' has no attribute {name!r}")
