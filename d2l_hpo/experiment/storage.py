"""An experiment's folder: where it lives, what files it holds, how they are written
and read back.

Files in an experiment folder (each replaced atomically, so that a crash never leaves
half a file):

- ``experiment.json``: the run's settings and state (see ``d2l_hpo.run.settings``)
- ``trials.csv``: one row per trial: id, status, start, end, worker lane, the
  configuration (each key as a column ``config_<key>``, as in Syne Tune's own tables, so
  that no hyperparameter name can collide with a column of the table), error, process
  id, process start time and node
- ``results.csv``: one row per report: trial id, time, the reported values
- ``N/``: one folder per trial, with ``config.json``, ``std.out`` (each report is a
  line there too), ``std.err`` and ``end`` (when the trial's process ended)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from d2l_hpo.common.files import process_start_time, write_atomically
from d2l_hpo.common.status import INTERRUPTED, RUNNING

EXPERIMENT_FILE = "experiment.json"
TRIALS_FILE = "trials.csv"
RESULTS_FILE = "results.csv"
DEFAULT_RESULTS_DIR = "runs"
TRIAL_COLUMNS = ("trial_id", "status", "start", "end", "worker")  # then the config, then:
# stopped_at: a pruned trial's epoch; pid_started: when the process ``pid`` started
# (psutil's create_time), so that a pid the system gave to another process since is
# never taken for the trial's
TRIAL_EXTRA_COLUMNS = ("error", "pid", "pid_started", "node", "stopped_at")
RESULT_COLUMNS = ("trial_id", "time", "worker_time")  # then the reported values
LOCK_FILE = ".owner"  # the process writing the folder: "pid start-time"
# a reported value whose name the results table uses for its own column keeps this prefix
REPORTED_PREFIX = "reported_"
# each configuration key is the column config_<key> of the trials table
CONFIG_PREFIX = "config_"
# 2: configuration columns prefixed; 1 (no "table_format" in experiment.json): bare keys
TABLE_FORMAT = 2


def config_column(key: str) -> str:
    """The trials table's column of configuration key ``key``."""
    return CONFIG_PREFIX + key


def check_names(config_keys, metric: str) -> None:
    """Refuse a metric whose name the results table uses for its own columns. (Config
    keys cannot collide with anything: they are ``config_<key>`` in the tables.)"""
    if metric in RESULT_COLUMNS:
        raise ValueError(
            f"metric={metric!r} is a column the results table fills itself (reserved: "
            f"{', '.join(RESULT_COLUMNS)}); report the value under another name")


class CorruptExperimentError(ValueError):
    """A file of an experiment folder is damaged; the message names it."""


def default_results_dir() -> Path:
    """``$SYNETUNE_FOLDER`` when set, else ``runs/`` in the current directory."""
    return Path(os.environ.get("SYNETUNE_FOLDER") or DEFAULT_RESULTS_DIR)


def plain(value):
    """A numpy scalar as the Python value it holds (other values unchanged)."""
    return value.item() if isinstance(value, np.generic) else value


def report_row(trial_id: int, report: dict, t0: float, default_time: float | None = None) -> dict:
    """One row of ``results.csv`` from a report as Syne Tune parses it (the reported
    values plus its ``st_`` bookkeeping): seconds since the experiment began (from
    ``default_time``, else the start, for a report without its own time stamp), the
    values, and ``worker_time`` (seconds since the trial's ``Reporter`` was made). A
    reported value named like one of the table's own columns is kept as
    ``reported_<name>``."""
    stamp = report.get("st_worker_timestamp", t0 if default_time is None else default_time)
    row = {"trial_id": trial_id, "time": stamp - t0}
    for key, value in report.items():
        if not key.startswith("st_"):  # a reported "time" must not move the clock
            row[REPORTED_PREFIX + key if key in RESULT_COLUMNS else key] = value
    row["worker_time"] = report.get("st_worker_time", math.nan)
    return row


def write_tables(path: Path, settings_json: str, trials: list[dict], rows: list[dict],
                 config_columns: list[str]) -> None:
    """Write ``experiment.json`` (its text given), ``trials.csv`` and ``results.csv`` of
    a running or finished experiment.

    A finished experiment's ``experiment.json`` also says how many rows each table
    has, and is written after the tables (a running one's before them), so that a
    finished ``experiment.json`` always comes with the tables it counts: a table cut
    short later, even at a row boundary, is then found (``read_tables``)."""
    settings = json.loads(settings_json)
    settings["table_format"] = TABLE_FORMAT
    finished = bool(settings.get("finished"))
    if finished:
        settings["table_rows"] = {TRIALS_FILE: len(trials), RESULTS_FILE: len(rows)}
    else:
        settings.pop("table_rows", None)
        write_atomically(path / EXPERIMENT_FILE, json.dumps(settings, indent=1))
    columns = [*TRIAL_COLUMNS, *map(config_column, config_columns), *TRIAL_EXTRA_COLUMNS]
    write_atomically(path / TRIALS_FILE, pd.DataFrame(trials, columns=columns).to_csv(index=False))
    write_atomically(path / RESULTS_FILE, pd.DataFrame(rows).to_csv(index=False))
    if finished:
        write_atomically(path / EXPERIMENT_FILE, json.dumps(settings, indent=1))


def prepare_folder(results_dir, name: str, resume: bool) -> Path:
    """The folder of experiment ``name``, created, checked writable and claimed by this
    process (``release_folder`` gives it back); a clear error when it exists and
    ``resume`` is False, is missing and ``resume`` is True, or another live process is
    writing it."""
    root = Path(results_dir).expanduser() if results_dir is not None else default_results_dir()
    for parent in (root, *root.parents):
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"results_dir {root} cannot be a folder: {parent} is a file; pass "
                "results_dir= a folder (it is created if missing)")
    path = root / name
    if resume and not (path / EXPERIMENT_FILE).exists():
        raise FileNotFoundError(
            f"resume=True, but there is no experiment '{name}' in {root} to continue")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write results to {path}: {err.strerror}; "
            "pass results_dir= a folder you can write to") from err
    _claim(path, name)
    if (path / EXPERIMENT_FILE).exists() and not resume:  # checked once the folder is ours
        release_folder(path)
        raise FileExistsError(
            f"an experiment named '{name}' already exists in {root}; pass resume=True to "
            "continue it, or choose another name (name=None picks a fresh one)")
    return path


def _process_stamp(pid: int) -> str | None:
    started = process_start_time(pid)
    return None if math.isnan(started) else f"{pid} {started:.3f}"


def _claim(path: Path, name: str) -> None:
    """Create ``path/.owner`` exclusively; a claim whose process is gone is stale."""
    lock = path / LOCK_FILE
    mine = _process_stamp(os.getpid())
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = lock.read_text().strip()
            except FileNotFoundError:
                continue  # released meanwhile: try again
            pid = owner.split(" ")[0]
            if owner and pid.isdigit() and _process_stamp(int(pid)) == owner:
                raise FileExistsError(
                    f"the experiment '{name}' in {path.parent} is being written by another "
                    f"run (process {pid}"
                    + (", this one: one search at a time per folder" if int(pid) == os.getpid()
                       else "") + "); wait for it to end, or choose another name") from None
            lock.unlink(missing_ok=True)  # stale: its process ended without releasing it
            continue
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        return
    raise FileExistsError(f"could not claim the experiment folder {path}; try again")


def release_folder(path: Path) -> None:
    """Give back the folder ``prepare_folder`` claimed for this process."""
    lock = Path(path) / LOCK_FILE
    try:
        if lock.read_text().strip() == _process_stamp(os.getpid()):
            lock.unlink()
    except FileNotFoundError:
        pass


def read_tables(path: Path):
    """Settings, trials and reports of an experiment folder.

    When the run did not finish (its process was killed, say), the tables on disk
    can be up to a second behind; the trials' own logs (``N/std.out``, where each
    report is a line) are then read as well, so nothing a trial reported is lost.

    :raises CorruptExperimentError: a file is damaged, edited by hand or written by a
        version that wrote other fields; the message names the file, the field and
        what was expected
    """
    path = Path(path)
    settings = _read_json(path / EXPERIMENT_FILE, "an experiment's settings")
    check_settings(settings, path / EXPERIMENT_FILE)
    config_columns = settings["config_columns"]
    bare = settings.get("table_format", 1) < 2  # written before config_ columns
    strings = [c if bare else config_column(c) for c in settings.get("string_columns", [])]
    trials = _read_csv(path / TRIALS_FILE, strings=strings, required=TRIAL_COLUMNS,
                       numbers=("trial_id", "start", "end", "worker", "pid", "pid_started",
                                "stopped_at"))
    if bare:
        trials = trials.rename(columns={c: config_column(c) for c in config_columns})
    results = _read_csv(path / RESULTS_FILE, required=RESULT_COLUMNS[:2],
                        numbers=RESULT_COLUMNS)
    for file, table in ((TRIALS_FILE, trials), (RESULTS_FILE, results)):
        written = (settings.get("table_rows") or {}).get(file)
        if settings.get("finished") and written is not None and len(table) != written:
            raise CorruptExperimentError(
                f"{path / file} has {len(table)} rows, but the run wrote {written} "
                f"({EXPERIMENT_FILE} says so): the file was cut short or edited by hand. "
                "Each trial's reports are still in its folder (N/std.out).")
    if not settings.get("finished"):
        trials, results = _recover_from_trial_logs(path, settings, trials, results)
    return settings, trials, results


def _read_json(file: Path, what: str):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise CorruptExperimentError(
            f"{file} is not UTF-8 text ({err.reason} at byte {err.start}); it should hold "
            f"{what} as JSON: the file was damaged or edited by hand") from None
    except json.JSONDecodeError as err:
        raise CorruptExperimentError(
            f"{file} is not valid JSON ({err}); it should hold {what}: the file was "
            "damaged or edited by hand") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# field of experiment.json -> (what it must be, the check); the fields every loader reads
_SETTINGS_FIELDS = {
    "name": ("a string", lambda v: isinstance(v, str) and bool(v)),
    "n_workers": ("an integer >= 1", lambda v: _is_number(v) and v == int(v) and v >= 1),
    "scheduling": ("'async' or 'sync'", lambda v: v in ("async", "sync")),
    "metric": ("the name of the reported metric (a string)",
               lambda v: isinstance(v, str) and bool(v)),
    "mode": ("'min' or 'max' (lower case)", lambda v: v in ("min", "max")),
    "config_columns": ("a list of the searched keys (strings)",
                       lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)),
}
_OPTIONAL_FIELDS = {
    "wallclock": ("a number of seconds", lambda v: _is_number(v) and math.isfinite(v)),
    "start_timestamp": ("a time stamp (seconds since 1970)",
                        lambda v: _is_number(v) and math.isfinite(v)),
    "finished": ("true or false", lambda v: isinstance(v, bool)),
    "setup_time": ("a number of seconds", lambda v: _is_number(v) and math.isfinite(v)),
    "constants": ("an object of the space's constants", lambda v: isinstance(v, dict)),
    "string_columns": ("a list of keys (strings)",
                       lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)),
    "abandoned": ("a list of trial ids",
                  lambda v: isinstance(v, list) and all(_is_number(i) and i == int(i) for i in v)),
    "table_rows": ("an object of row counts", lambda v: isinstance(v, dict) and all(
        _is_number(n) for n in v.values())),
    "table_format": ("1 or 2", lambda v: v in (1, 2)),
    "rungs": ("a list of epochs", lambda v: isinstance(v, list) and all(
        _is_number(r) and math.isfinite(r) for r in v)),
}


def check_settings(settings, file: Path) -> None:
    """Raise ``CorruptExperimentError`` naming the first field of ``experiment.json``
    that is missing or not what this version reads."""
    if not isinstance(settings, dict):
        raise CorruptExperimentError(
            f"{file} does not hold an experiment's settings (a JSON object); it holds a "
            f"{type(settings).__name__}")
    for key, (expected, ok) in _SETTINGS_FIELDS.items():
        if key not in settings:
            raise CorruptExperimentError(
                f"{file} has no field '{key}' ({expected}): it was edited by hand or "
                "written by another version")
        if not ok(settings[key]):
            raise CorruptExperimentError(
                f"{file}: '{key}' is {settings[key]!r}; expected {expected}")
    for key, (expected, ok) in _OPTIONAL_FIELDS.items():
        if settings.get(key) is not None and not ok(settings[key]):
            raise CorruptExperimentError(
                f"{file}: '{key}' is {settings[key]!r}; expected {expected}")


def _trial_file_number(file: Path) -> float:
    try:
        value = float(file.read_text(encoding="utf-8").strip())
    except (UnicodeDecodeError, ValueError):
        raise CorruptExperimentError(
            f"{file} should hold the time the trial's process ended (seconds since 1970, "
            "as written by the trial): it was damaged or edited by hand") from None
    if not math.isfinite(value):
        raise CorruptExperimentError(f"{file} holds {value}; expected a time stamp")
    return value


def _recover_from_trial_logs(path, settings, trials, results):
    from syne_tune.report import retrieve

    t0 = settings.get("start_timestamp")
    if t0 is None:
        return trials, results
    known = set(trials["trial_id"]) if len(trials) else set()
    abandoned = set(settings.get("abandoned", []))  # redone under new ids by a resume
    new_trials, new_rows = [], []
    for folder in sorted(path.iterdir(), key=lambda p: p.name):
        if not (folder.name.isdigit() and (folder / "std.out").exists()):
            continue
        trial_id = int(folder.name)
        if trial_id in abandoned:
            continue
        reports = retrieve(log_lines=(folder / "std.out").read_text(
            errors="replace").splitlines())
        have = int((results["trial_id"] == trial_id).sum()) if len(results) else 0
        new_rows.extend(report_row(trial_id, report, t0) for report in reports[have:]
                        if isinstance(report, dict))
        if trial_id not in known and (folder / "config.json").exists():
            config = _read_json(folder / "config.json", "the trial's configuration")
            if not isinstance(config, dict):
                raise CorruptExperimentError(
                    f"{folder / 'config.json'} holds {type(config).__name__}; expected the "
                    "trial's configuration (a JSON object)")
            end = folder / "end"
            new_trials.append({
                "trial_id": trial_id, "status": INTERRUPTED,
                "start": (folder / "config.json").stat().st_mtime - t0,
                "end": (_trial_file_number(end) - t0) if end.exists() else math.nan,
                **{config_column(c): config.get(c) for c in settings["config_columns"]},
                "error": "", "pid": math.nan})
    if new_rows:
        results = pd.concat([df for df in (results, pd.DataFrame(new_rows)) if len(df)],
                            ignore_index=True)
    if new_trials:
        trials = pd.concat([df for df in (trials, pd.DataFrame(new_trials)) if len(df)],
                           ignore_index=True)
    if len(trials):  # whatever was running when the process died was interrupted
        trials.loc[trials["status"] == RUNNING, "status"] = INTERRUPTED
    return trials, results


def _read_csv(path: Path, strings=(), required=(), numbers=()) -> pd.DataFrame:
    """A table as written: only empty cells are missing (a choice(["nan", "none"]) value
    stays a string), and the ``strings`` columns are read as strings, empty ones too
    (so "007" stays "007", not 7). A damaged file, or text in one of the ``numbers``
    columns, is an error that names the file and the column."""
    damaged = (pd.errors.ParserError, ValueError, UnicodeDecodeError)
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    except damaged as err:
        raise CorruptExperimentError(
            f"{path} cannot be read as a table ({str(err).strip()}); the file was damaged "
            "or edited by hand") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise CorruptExperimentError(
            f"{path} lacks the columns {missing} (it has {list(header)}); the file was "
            "damaged or edited by hand")
    strings = [c for c in strings if c in header]
    try:
        table = pd.read_csv(path, keep_default_na=False,
                            na_values={c: [""] for c in header if c not in strings},
                            dtype={c: str for c in strings})
    except damaged as err:
        raise CorruptExperimentError(
            f"{path} cannot be read as a table ({str(err).strip()}); the file was damaged "
            "or edited by hand") from None
    for column in numbers:
        if column in table and not pd.api.types.is_numeric_dtype(table[column]):
            values = pd.to_numeric(table[column], errors="coerce")
            bad = table.loc[values.isna() & table[column].notna(), column]
            if len(bad):
                raise CorruptExperimentError(
                    f"{path}: column '{column}' holds {bad.iloc[0]!r} in row "
                    f"{int(bad.index[0]) + 2}; expected a number (the file was edited by "
                    "hand or written by another version)")
            table[column] = values
    if "trial_id" in table and len(table):
        ids = table["trial_id"]
        if ids.isna().any() or (ids != ids.round()).any():
            raise CorruptExperimentError(
                f"{path}: column 'trial_id' must hold whole numbers in every row")
        table["trial_id"] = ids.astype(int)
    return table
