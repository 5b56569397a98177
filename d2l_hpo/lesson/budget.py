"""The one budget switch of the notebooks: ``D2L_HPO_BUDGET=quick|full``.

``full`` (the default) is sized for a laptop CPU; ``quick`` is what CI runs so that
all notebooks execute in a few minutes. Each notebook reads it once:

    sizes = d2l_hpo.by_budget(quick={"trials": 8}, full={"trials": 40})
"""

from __future__ import annotations

import os

ENV_VAR = "D2L_HPO_BUDGET"
BUDGETS = ("quick", "full")


def budget() -> str:
    """The current budget, from ``$D2L_HPO_BUDGET`` (default ``"full"``)."""
    value = os.environ.get(ENV_VAR, "full").strip().lower() or "full"
    if value not in BUDGETS:
        raise ValueError(f"{ENV_VAR}={value!r}: use one of {', '.join(BUDGETS)}")
    return value


def by_budget(quick, full):
    """``quick`` or ``full``, whichever the current budget asks for."""
    return quick if budget() == "quick" else full
