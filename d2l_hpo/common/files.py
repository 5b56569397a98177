"""Files written so that a reader never sees half of one, and processes named so that a
reused pid is not mistaken for the one we knew: the low-level helpers every layer may use."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path


def _new_file_mode() -> int:
    """The permissions ``open()`` gives a new file here: 0o666 less the umask (read
    from /proc on Linux, where setting the umask to read it would race other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w"):
    """A file to write ``path`` through: readers see the old file or the whole new one.
    It gets the permissions of any new file (the umask's), not the temporary file's
    0600, so that a course's group can read what a run wrote."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, _new_file_mode())
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that readers see either the old file or the whole new one."""
    with atomic_file(path) as f:
        f.write(text)


def process_start_time(pid) -> float:
    """When process ``pid`` started (psutil's ``create_time``, rounded to the
    millisecond as the tables keep it), NaN when there is no such process. With the pid
    it names one process: a pid the system gives to a new process later has another."""
    import psutil

    try:
        return round(psutil.Process(int(pid)).create_time(), 3)
    except (psutil.Error, TypeError, ValueError, OverflowError):
        return math.nan
