"""Checked claims: a lesson states a result only next to the run that shows it.

    d2l_hpo.claim("asynchronous workers were busier", asyn.utilization > sync.utilization,
                  f"{asyn.utilization:.1%} against {sync.utilization:.1%}")

prints ``✓ asynchronous workers were busier — 78.1% against 43.1%``, or the same line
with ``✗`` when the run does not bear the statement out. Interactively a ``✗`` is a
line like any other and the lesson goes on; when the notebook runs under nbval (CI),
a ``✗`` fails its cell, so a lesson whose prose no longer matches its run cannot pass.
"""

from __future__ import annotations

import os

import numpy as np

ENV_VAR = "D2L_HPO_CLAIMS"  # "strict": a claim that does not hold raises
HOLDS, FAILS = "✓", "✗"


class ClaimFailed(AssertionError):
    """A lesson's claim did not hold on this run (raised only in strict mode)."""


def strict() -> bool:
    """Whether a failing claim raises: ``$D2L_HPO_CLAIMS`` is ``strict`` (set for every
    notebook that nbval executes, by this package's pytest plugin)."""
    return os.environ.get(ENV_VAR, "").strip().lower() == "strict"


def claim(statement: str, holds, evidence: str) -> None:
    """Print ``✓ statement — evidence`` if ``holds``, else ``✗ statement — evidence``.

    Returns nothing, so that a claim at the end of a notebook cell shows only its line.

    :param statement: the result, in the words the lesson uses for it
    :param holds: whether this run bears it out: True or False (a numpy bool too);
        anything else (a string, a number, NaN, a list) is refused, since its truth
        says nothing about the run (``"False"`` and ``nan`` are true in Python)
    :param evidence: the measured numbers it rests on
    :raises ClaimFailed: when it does not hold and ``strict()`` (under nbval)
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"claim(statement=...) must be a non-empty string, got {statement!r}")
    if not isinstance(evidence, str):
        raise TypeError(f"claim(evidence=...) must be a string with the measured numbers, "
                        f"got {type(evidence).__name__}")
    if isinstance(holds, np.bool_):
        holds = bool(holds)
    if not isinstance(holds, bool):
        raise TypeError(
            f"claim(holds=...) must be True or False, got {type(holds).__name__} {holds!r}; "
            "pass the comparison itself (e.g. a > b, or (column > 0).all())")
    line = f"{HOLDS if holds else FAILS} {statement.strip()} — {evidence.strip()}"
    print(line, flush=True)
    if not holds and strict():
        raise ClaimFailed(f"this run does not bear out the lesson's claim: {line}")
