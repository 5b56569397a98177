"""Configuration spaces: the lesson's LeNet space, and checks of any space
against the objective it is meant for, before a single trial starts."""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable

from syne_tune import config_space as _st
from syne_tune.config_space import (
    Categorical, Domain, Float, Integer, is_log_space, is_reverse_log_space,
)

__all__ = [
    "ConfigSpaceError", "lenet_space", "synthetic_space", "LENET_INITIAL_CONFIG",
    "validate_config_space", "validate_config", "choice", "loguniform", "randint",
    "uniform",
]

# The first configuration the lesson evaluates, before any random one.
LENET_INITIAL_CONFIG = {"learning_rate": 0.1, "batch_size": 128}


class ConfigSpaceError(ValueError):
    """A configuration space that cannot be searched, or does not fit its objective."""


# Syne Tune's constructors stop bad bounds with a bare AssertionError; these say why.
def _bounds(kind: str, lower, upper, *, log: bool = False, strict: bool = True) -> None:
    call = f"{kind}({lower!r}, {upper!r})"
    if not all(isinstance(b, numbers.Real) and not isinstance(b, bool) and math.isfinite(b)
               for b in (lower, upper)):
        raise ConfigSpaceError(f"{call}: bounds must be finite numbers")
    if lower > upper or (strict and lower == upper):
        raise ConfigSpaceError(f"{call}: lower bound {lower} must be below upper bound {upper}")
    if log and lower <= 0:
        raise ConfigSpaceError(f"{call}: a log-scale range needs bounds > 0")


def uniform(lower: float, upper: float) -> Float:
    """A float drawn uniformly from [lower, upper]."""
    _bounds("uniform", lower, upper)
    return _st.uniform(lower, upper)


def loguniform(lower: float, upper: float) -> Float:
    """A float whose logarithm is uniform: as likely in [0.01, 0.1] as in [0.1, 1]."""
    _bounds("loguniform", lower, upper, log=True)
    return _st.loguniform(lower, upper)


def randint(lower: int, upper: int) -> Integer:
    """An integer drawn uniformly from lower..upper, both included."""
    _bounds("randint", lower, upper, strict=False)
    return _st.randint(lower, upper)


def choice(categories) -> Categorical:
    """One of a list of values, each equally likely."""
    categories = list(categories)
    if not categories:
        raise ConfigSpaceError("choice([]): give at least one value")
    kinds = sorted({type(c).__name__ for c in categories})
    if len(kinds) > 1:  # Syne Tune asserts this, with a bare AssertionError
        raise ConfigSpaceError(
            f"choice({categories!r}): Syne Tune needs values of one type, got {kinds}; "
            "write them all as one type (e.g. floats: 1.0, 2.5)")
    return _st.choice(categories)


def lenet_space(max_epochs: int = 10) -> dict[str, Any]:
    """The LeNet space of the lesson; ``max_epochs`` is passed as a constant."""
    return {
        "learning_rate": loguniform(1e-2, 1.0),
        "batch_size": randint(32, 256),
        "max_epochs": max_epochs,
    }


def synthetic_space(max_epochs: int = 4, epoch_seconds: float = 0.25) -> dict[str, Any]:
    """The LeNet space plus a number of layers, for ``synthetic_objective``."""
    return {
        **lenet_space(max_epochs),
        "num_layers": randint(1, 4),
        "epoch_seconds": epoch_seconds,
    }


_SCALARS = (numbers.Real, str)  # bool is a Real too


def _check_domain(name: str, domain: Domain) -> None:
    if isinstance(domain, (Float, Integer)):
        lower, upper = domain.lower, domain.upper
        if not all(isinstance(b, numbers.Real) and math.isfinite(b) for b in (lower, upper)):
            raise ConfigSpaceError(
                f"'{name}': bounds must be finite numbers, got lower={lower!r}, upper={upper!r}")
        if isinstance(domain, Float) and lower >= upper or lower > upper:
            raise ConfigSpaceError(
                f"'{name}': lower bound {lower} must be below upper bound {upper}")
        if (is_log_space(domain) or is_reverse_log_space(domain)) and lower <= 0:
            raise ConfigSpaceError(
                f"'{name}': a log-scale range needs bounds > 0, got lower={lower}")
    elif isinstance(domain, Categorical):
        if len(domain.categories) == 0:
            raise ConfigSpaceError(f"'{name}': choice() needs at least one value")
        bad = [c for c in domain.categories if not isinstance(c, _SCALARS)]
        if bad:
            raise ConfigSpaceError(
                f"'{name}': choice() values must be numbers or strings, got {bad[0]!r}")


def _parameters(objective: Callable) -> tuple[dict[str, inspect.Parameter], bool]:
    params = inspect.signature(objective).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    positional_only = [n for n, p in params.items() if p.kind is p.POSITIONAL_ONLY]
    if positional_only:
        raise ConfigSpaceError(
            f"objective {objective.__name__}: parameter '{positional_only[0]}' is "
            "positional-only; trials pass every value by name")
    return named, takes_any


def _annotation_type(param: inspect.Parameter):
    ann = param.annotation
    if isinstance(ann, str):  # from __future__ import annotations
        ann = {"int": int, "float": float, "str": str, "bool": bool}.get(ann)
    return ann if ann in (int, float, str, bool) else None


def validate_config_space(config_space: dict[str, Any],
                          objective: Callable | None = None) -> None:
    """Raise ``ConfigSpaceError`` naming the parameter when ``config_space`` cannot be
    searched, or does not fit the arguments of ``objective``.

    Checks: it is a non-empty dict with string keys; every range has lower < upper
    (log ranges > 0); constants are numbers or strings (a list must be ``choice``);
    every key is an argument of the objective; every objective argument without a
    default is in the space; annotated ``int``/``float``/``str`` arguments get values
    of that type.
    """
    if not isinstance(config_space, dict) or not config_space:
        raise ConfigSpaceError(
            f"the config space must be a non-empty dict, got {config_space!r}")
    for name, value in config_space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigSpaceError(f"parameter name {name!r} is not a valid Python name")
        if name.startswith("st_"):
            raise ConfigSpaceError(f"'{name}': names starting with 'st_' are reserved by Syne Tune")
        if isinstance(value, Domain):
            _check_domain(name, value)
        elif isinstance(value, (list, tuple, set)):
            raise ConfigSpaceError(
                f"'{name}': a {type(value).__name__} is not a search range; "
                f"write choice({list(value)!r}) to pick among values")
        elif not isinstance(value, _SCALARS) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise ConfigSpaceError(
                f"'{name}': {value!r} ({type(value).__name__}) is neither a range "
                "(loguniform, uniform, randint, choice) nor a number or string constant")
    if objective is None:
        return
    params, takes_any = _parameters(objective)
    if not takes_any:
        unknown = [k for k in config_space if k not in params]
        if unknown:
            raise ConfigSpaceError(
                f"'{unknown[0]}' is in the config space but {objective.__name__}() has no "
                f"such argument (it takes: {', '.join(params) or 'nothing'})")
    missing = [n for n, p in params.items()
               if p.default is p.empty and n not in config_space]
    if missing:
        raise ConfigSpaceError(
            f"{objective.__name__}() needs '{missing[0]}' but the config space has no "
            f"'{missing[0]}'; add it as a range or a constant")
    for name, value in config_space.items():
        expected = _annotation_type(params[name]) if name in params else None
        if expected is not None:
            _check_type(name, value, expected, objective.__name__)


def _value_type(value):
    if isinstance(value, Float):
        return float
    if isinstance(value, Integer):
        return int
    if isinstance(value, Categorical):
        types = {_value_type(c) for c in value.categories}
        return types.pop() if len(types) == 1 else None
    if isinstance(value, bool):
        return bool
    if isinstance(value, numbers.Integral):
        return int
    if isinstance(value, numbers.Real):
        return float
    return type(value)


def _check_type(name, value, expected, objective_name):
    got = _value_type(value)
    if got is None or got is expected or (expected is float and got is int):
        return
    raise ConfigSpaceError(
        f"'{name}': {objective_name}() declares {expected.__name__}, but the config "
        f"space gives {got.__name__} values ({value!r})")


def validate_config(config: dict[str, Any], config_space: dict[str, Any],
                    what: str = "initial_config") -> dict[str, Any]:
    """Check that a fixed configuration (e.g. the first one to evaluate) fits the space;
    return it completed with the space's constants."""
    if not isinstance(config, dict):
        raise ConfigSpaceError(f"{what} must be a dict, got {config!r}")
    unknown = [k for k in config if k not in config_space]
    if unknown:
        raise ConfigSpaceError(f"{what}: '{unknown[0]}' is not in the config space")
    config = dict(config)
    for name, value in config.items():
        domain = config_space[name]
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # a numpy scalar: the Python value it holds
            config[name] = value
        if isinstance(domain, (Float, Integer)):
            kind = "an integer" if isinstance(domain, Integer) else "a number"
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not \
                    math.isfinite(value) or (isinstance(domain, Integer) and value != int(value)):
                raise ConfigSpaceError(
                    f"{what}: '{name}'={value!r} ({type(value).__name__}), but the space "
                    f"searches {kind} there; give {kind}")
            if not domain.lower <= value <= domain.upper:
                raise ConfigSpaceError(
                    f"{what}: '{name}'={value!r} is outside [{domain.lower}, {domain.upper}]")
            config[name] = int(value) if isinstance(domain, Integer) else float(value)
        if isinstance(domain, Categorical) and not any(
                type(value) is type(c) and value == c for c in domain.categories):
            raise ConfigSpaceError(
                f"{what}: '{name}'={value!r} ({type(value).__name__}) is not one of "
                f"{domain.categories}")
    constants = {k: v for k, v in config_space.items() if not isinstance(v, Domain)}
    changed = [k for k in config if k in constants and config[k] != constants[k]]
    if changed:
        raise ConfigSpaceError(
            f"{what}: '{changed[0]}'={config[changed[0]]!r}, but the config space fixes it "
            f"to {constants[changed[0]]!r}; leave it out of {what} (or make it a range "
            "in the space)")
    missing = [k for k in config_space if k not in config and k not in constants]
    if missing:
        raise ConfigSpaceError(
            f"{what} lacks {missing}: give a value for every searched key of the space "
            f"({[k for k in config_space if k not in constants]})")
    return {**constants, **config}
