"""Trial processes on this machine, seen from the tuner's side: their reports in a
growing log file, whether a process is alive, killing what a killed run left behind,
and the GPUs there are."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from d2l_hpo.common.compat import ST_METRIC_TAG, ST_WORKER_TIMESTAMP

ENTRY_POINT = Path(__file__).with_name("_trial_main.py")
REPORT_MARK = f"[{ST_METRIC_TAG}]: ".encode()


def count_gpus() -> int:
    """GPUs listed by ``nvidia-smi`` (0 without it). Syne Tune's own detection
    leaves a file ``std.out`` in the current directory; this one writes nothing."""
    try:
        listed = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len(listed.stdout.splitlines()) if listed.returncode == 0 else 0


class _ReportReader:
    """Syne Tune's reports in a growing log file, parsed once each."""

    def __init__(self, path: Path):
        self.path, self.offset, self.partial = path, 0, b""
        self.reports: list[dict] = []
        self.malformed = 0

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.reports
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for line in lines:
            at = line.find(REPORT_MARK)
            if at < 0:
                continue
            try:
                report = json.loads(line[at + len(REPORT_MARK):].decode("utf-8", "replace"))
            except ValueError:
                report = None
            if isinstance(report, dict) and isinstance(report.get(ST_WORKER_TIMESTAMP),
                                                       (int, float)):
                self.reports.append(report)
            else:
                self.malformed += 1
        return self.reports


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readlines()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_leftover_trials(processes) -> list[int]:
    """Kill the trial processes (and their children) of an earlier run that outlived it
    (its tuner was killed with kill -9, say); return the pids killed.

    :param processes: ``(pid, started)`` pairs as the trials table recorded them
        (``started``: the process's start time, ``storage.process_start_time``)

    A process is killed only when it is still the very process recorded: the same pid
    *and* the same start time (the system gives a freed pid to a new process, maybe a
    trial of another search, but never with the old start time), running our trial
    entry point or forked by our fork server. Without a recorded start time nothing
    is killed.
    """
    import math

    import psutil

    from d2l_hpo.common.files import process_start_time

    killed = []
    for pid, started in processes:
        try:
            pid, started = int(pid), float(started)
        except (TypeError, ValueError):
            continue
        if math.isnan(started) or process_start_time(pid) != round(started, 3):
            continue  # that process is gone; the pid may be another's now
        try:
            process = psutil.Process(pid)
            command = " ".join(process.cmdline())
            if ENTRY_POINT.stem in command or "d2l_hpo.backends._forkserver" in command:
                for child in process.children(recursive=True):
                    child.kill()
                process.kill()
                killed.append(pid)
        except psutil.Error:
            pass
    return killed
