"""pytest set-up for the whole repository: when nbval executes the lessons, their
claims are strict, so a ``✗`` fails its cell (see ``d2l_hpo.lesson.claims``).

nbval's kernels inherit this process's environment, so setting the variable before
the first notebook runs is enough; a value set by the caller is kept. (d2l_hpo is not
imported here: importing Syne Tune changes thread settings for the whole session.)
"""

import os

CLAIMS_ENV_VAR = "D2L_HPO_CLAIMS"  # d2l_hpo.lesson.claims.ENV_VAR


def pytest_configure(config):
    option = config.option
    if getattr(option, "nbval", False) or getattr(option, "nbval_lax", False):
        os.environ.setdefault(CLAIMS_ENV_VAR, "strict")
