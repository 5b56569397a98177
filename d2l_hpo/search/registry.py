"""The strategies by name: what ``searcher=`` and ``early_stopping=`` accept, in the
settings, the CLI (``--searcher``, ``--early-stopping``) and a resume.

Adding a searcher is one file in this folder (a ``SearchStrategy`` subclass) and one
line below. Modules are imported when first used, so a run of random search does not
import the libraries TPE or BORE need.
"""

from __future__ import annotations

import importlib

from d2l_hpo.search.base import EarlyStopping, SearchStrategy

SEARCHERS = {
    "random": "d2l_hpo.search.random:RandomSearch",
    "tpe": "d2l_hpo.search.tpe:TPE",
    "optuna_tpe": "d2l_hpo.search.optuna_tpe:OptunaTPE",
    "optuna_tpe_no_liar": "d2l_hpo.search.optuna_tpe:OptunaTPENoLiar",
    "rea": "d2l_hpo.search.rea:REA",
    "bore": "d2l_hpo.search.bore:BORE",
}
EARLY_STOPPING = {
    "asha": "d2l_hpo.search.asha:ASHA",
}


def _one_of(names) -> str:
    names = [repr(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _load(where: str):
    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


def searcher_class(name) -> type[SearchStrategy]:
    """The strategy called ``name``; a ``ValueError`` listing the names otherwise."""
    if not isinstance(name, str) or name not in SEARCHERS:
        raise ValueError(f"searcher must be {_one_of(SEARCHERS)}, got {name!r}")
    return _load(SEARCHERS[name])


def early_stopping_rule(name, **options) -> EarlyStopping | None:
    """The early-stopping rule called ``name`` with ``options`` (None: every trial runs
    all its epochs); a ``ValueError`` listing the names otherwise."""
    if name is None:
        return None
    if not isinstance(name, str) or name not in EARLY_STOPPING:
        raise ValueError(f"early_stopping must be None or {_one_of(EARLY_STOPPING)}, "
                         f"got {name!r}")
    return _load(EARLY_STOPPING[name])(**options)
