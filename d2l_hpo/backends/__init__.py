"""Where trials run. Each backend implements Syne Tune's ``TrialBackend`` seam."""

from d2l_hpo.backends.local import SubprocessBackend

__all__ = ["SubprocessBackend"]
