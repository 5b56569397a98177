"""Read an experiment that plain Syne Tune wrote (``Tuner.run()`` without d2l_hpo), so
that its tables and plots are the same as for ``run_random_search``.

A Syne Tune experiment folder holds ``metadata.json`` (metric, mode, config space,
start time), ``results.csv.zip`` (one row per report), ``tuner.dill`` (the pickled
tuner: workers, sync/async, each trial's last status) and one folder per trial
(``config.json`` written when the trial was launched, ``end`` stamped by the backend
when it saw the trial's process end, ``std.out``, ``std.err``).

**The pickle is never unpickled unless asked for.** Unpickling ``tuner.dill`` runs
whatever code the file names, and a results folder is something students download and
share. By default three facts are read from its opcodes instead, without running
anything (``read_pickled_facts``: ``pickletools`` only parses): the number of workers,
whether scheduling was asynchronous, and each trial's last status.
``load_experiment(..., trust_pickle=True)`` (``python -m d2l_hpo plot --trust-pickle``)
unpickles it, for a folder you wrote yourself.

What Syne Tune does not record is reconstructed, and the reconstruction is stated here:

- a trial starts when its ``config.json`` was written (the backend's launch);
- a trial ends at its ``end`` stamp: its worker is busy until the trial's process
  has exited, and the backend stamps the end when the tuner next looks (so up to the
  tuner's ``sleep_time`` late: with a long ``sleep_time`` the waiting shows as the part
  of a bar after the trial's last report, not as a gap); a trial still running when the
  tuner stopped ends when the tuner saved its results;
- worker lanes are assigned from these times (``assign_lanes``);
- where ``tuner.dill`` is missing or does not say (another version): the number of
  workers is the most trials that ran at once, the scheduling ``async``, and a trial
  with an ``end`` stamp ``failed`` when its ``std.err`` holds a Python traceback and
  ``completed`` otherwise; a trial without one was ``stopped``.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import pandas as pd

from d2l_hpo.common.status import COMPLETED, FAILED, FROM_SYNE_TUNE, STOPPED
from d2l_hpo.experiment.storage import config_column

METADATA_FILE = "metadata.json"
RESULTS_FILES = ("results.csv.zip", "results.csv")
# Syne Tune's last status of each trial; one still running when the tuner saved itself
# was stopped right after
_STATUS = {**FROM_SYNE_TUNE, "InProgress": STOPPED}


def is_syne_tune_folder(path: Path) -> bool:
    path = Path(path)
    return (path / METADATA_FILE).is_file() and any((path / f).is_file() for f in RESULTS_FILES)


_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE")
_GETS = ("BINGET", "LONG_BINGET", "GET")
_PUTS = ("BINPUT", "LONG_BINPUT", "PUT")
_INTS = ("BININT1", "BININT2", "BININT", "LONG1", "INT")


def read_pickled_facts(path: Path) -> dict:
    """What the tuner's ``tuner.dill`` says of its workers, its scheduling and each
    trial's last status, read from the pickle's opcodes **without unpickling it**
    (``pickletools.genops`` only parses; nothing in the file is run or imported). Keys
    it cannot find (another version, a damaged or hostile file) are left out."""
    import pickletools

    try:
        ops = list(pickletools.genops((Path(path) / "tuner.dill").read_bytes()))
    except Exception:  # missing, damaged, or not a pickle: nothing to read
        return {}
    memo, facts, text, key = {}, {}, None, None
    statuses, mode, trial, seek = {}, None, None, 0
    for op, arg, _ in ops:
        name = op.name
        if name == "MEMOIZE":
            memo[len(memo)] = text
            continue
        if name in _PUTS:
            memo[arg] = text
            continue
        value = arg if name in _STRINGS else memo.get(arg) if name in _GETS else None
        text = value
        if mode == "seek":  # the dict (or OrderedDict) being made, up to its items
            seek += 1
            mode = "pairs" if name == "MARK" else None if seek > 12 else "seek"
        elif mode == "pairs":  # trial id, then its status, until SETITEMS
            if name in _INTS:
                trial = arg
            elif isinstance(value, str) and trial is not None:
                statuses[trial], trial = value, None
            else:
                mode = None
        elif key is not None:  # the value that follows a key of the tuner's state
            if key == "n_workers" and name in _INTS:
                facts["n_workers"] = arg
            elif key == "asynchronous_scheduling" and name in ("NEWTRUE", "NEWFALSE"):
                facts["asynchronous_scheduling"] = name == "NEWTRUE"
            elif key == "last_trial_status_seen":
                mode, seek = ("pairs" if name == "MARK" else "seek"), 0
            key = None
        elif value in ("n_workers", "asynchronous_scheduling", "last_trial_status_seen") \
                and value not in facts and not (value == "last_trial_status_seen" and statuses):
            key = value
    if statuses:
        facts["statuses"] = statuses
    return facts


def _tuner(path: Path, trust_pickle: bool):
    """The unpickled tuner when ``trust_pickle`` (None when it is missing or cannot be
    loaded here); never unpickled otherwise."""
    if not trust_pickle or not (path / "tuner.dill").is_file():
        return None
    try:
        import dill
        from syne_tune import Tuner

        with open(path / "tuner.dill", "rb") as f:
            tuner = dill.load(f)
        return tuner if isinstance(tuner, Tuner) else None
    except Exception:  # written by another version, or its objective is gone: do without
        return None


def _has_traceback(folder: Path) -> bool:
    err = folder / "std.err"
    return err.is_file() and "Traceback (most recent call last)" in err.read_text(
        errors="replace")


def _max_concurrency(starts, ends) -> int:
    events = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends], key=lambda x: (x[0], x[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return max(1, most)


def read_syne_tune_folder(path: Path, trust_pickle: bool = False):
    """Settings, trials and reports of a plain Syne Tune experiment, in the shape
    ``results.build_experiment`` takes (see the module docstring for what is inferred).

    :param trust_pickle: unpickle ``tuner.dill`` (runs the code it holds) for the
        workers, the scheduling and the statuses; default False
    """
    path = Path(path)
    metadata = json.loads((path / METADATA_FILE).read_text())
    results_file = next(path / f for f in RESULTS_FILES if (path / f).is_file())
    raw = pd.read_csv(results_file)
    t0 = float(metadata.get("st_tuner_start_timestamp")
               or metadata.get("st_tuner_creation_timestamp"))
    metric = (metadata.get("metric_names") or ["validation_error"])[0]
    mode = metadata.get("metric_mode") or "min"
    space = json.loads(metadata["config_space"]) if isinstance(
        metadata.get("config_space"), str) else (metadata.get("config_space") or {})
    config_columns = [k for k, v in space.items() if isinstance(v, dict) and "domain_cls" in v]
    constants = {k: v for k, v in space.items() if k not in config_columns}
    tuner = _tuner(path, trust_pickle)
    facts = {} if tuner is not None else read_pickled_facts(path)
    seen = dict(tuner.tuning_status.last_trial_status_seen) if tuner is not None \
        else facts.get("statuses", {})
    # the tuner saved its results last: the end of the experiment
    finished_at = max(p.stat().st_mtime for p in (results_file, path / "tuner.dill") if p.is_file())

    rows = pd.DataFrame({
        "trial_id": raw["trial_id"].astype(int),
        "time": raw["st_worker_timestamp"] - t0,
        **{c: raw[c] for c in raw.columns
           if not c.startswith(("st_", "config_")) and c != "trial_id"},
        "worker_time": raw.get("st_worker_time", math.nan),
    })
    trials = []
    for folder in sorted((p for p in path.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        if not (folder / "config.json").is_file():
            continue
        trial_id = int(folder.name)
        config = json.loads((folder / "config.json").read_text())
        ended = folder / "end"
        if trial_id in seen:
            status = _STATUS.get(seen[trial_id], COMPLETED if ended.is_file() else STOPPED)
        elif ended.is_file():
            status = FAILED if _has_traceback(folder) else COMPLETED
        else:
            status = STOPPED
        end = float(ended.read_text()) if ended.is_file() and status != STOPPED else finished_at
        error = ""
        if status == FAILED and (folder / "std.err").is_file():
            lines = [ln.rstrip() for ln in (folder / "std.err").read_text(errors="replace")
                     .splitlines() if ln.strip()]
            error = "\n".join(lines[-5:])
        trials.append({"trial_id": trial_id, "status": status,
                       "start": (folder / "config.json").stat().st_mtime - t0,
                       "end": max(end - t0, (folder / "config.json").stat().st_mtime - t0),
                       **{config_column(c): config.get(c) for c in config_columns},
                       "error": error, "pid": math.nan, "node": platform.node() or "local"})
    trials = pd.DataFrame(trials)
    if tuner is not None:
        facts = {"n_workers": tuner.n_workers,
                 "asynchronous_scheduling": tuner.asynchronous_scheduling}
    if isinstance(facts.get("n_workers"), int) and facts["n_workers"] >= 1:
        n_workers = int(facts["n_workers"])
    else:
        n_workers = _max_concurrency(trials["start"], trials["end"]) if len(trials) else 1
    scheduling = "sync" if facts.get("asynchronous_scheduling") is False else "async"
    settings = {"name": path.name, "n_workers": n_workers, "scheduling": scheduling,
                "metric": metric, "mode": mode, "wallclock": finished_at - t0,
                "config_columns": config_columns, "constants": constants,
                "start_timestamp": t0, "finished": True,
                "pickle_read": tuner is not None,
                "read_without_unpickling": sorted(k for k in facts if tuner is None)}
    return settings, trials, rows
