"""A warm parent for trial processes: imports once, then forks one child per trial.

Started by ``SubprocessBackend`` as
``python -m d2l_hpo.backends._forkserver NOTIFY_FD MODULE...`` (from
``_warm_pool.WarmServer``). It imports the modules the objective imports (torch, d2l,
...) once, with one thread for every library (``_warm_pool.server_environment``), says
``ready`` and which source files its code came from, then reads one JSON request per
line on stdin, forks a child per request and answers with the child's pid. It has
one thread whenever it forks: a fork from a process with other threads can deadlock
the child (Python 3.12+ warns about it at each fork). The child is a fresh copy of this process, never of an earlier trial:
it gets new random seeds, its own thread count, GPU and environment, its output
goes to the trial's ``std.out``/``std.err``, and it runs the trial exactly as a
newly started ``_trial_main.py`` would. A trial that crashes or hangs takes down only
its own process. When a child ends, its exit code goes to ``TRIAL_DIR/exit-PID``
(one record per process: a trial paused and resumed runs as a second process in the
same folder), and then a byte to the pipe ``NOTIFY_FD``, which wakes the tuner up (instead of it
finding out at its next poll).

Each trial leads a process group of its own; when it ends, whatever it left running
in that group (a ``subprocess.Popen`` it never waited for, say) is killed.

The server dies with the tuner (``PR_SET_PDEATHSIG``), and its children die with it.
"""

import json
import os
import select
import signal
import sys
import traceback
from pathlib import Path

from d2l_hpo.backends._common import die_with_parent, fresh_state, set_thread_budget
from d2l_hpo.common.files import write_atomically


def _preload(modules: list[str]) -> None:
    set_thread_budget(1)  # the libraries' pools start small; each trial sets its own
    for name in modules:
        try:
            __import__(name)
        except Exception:  # the trial will meet (and report) the same error itself
            pass


def _installed_paths() -> tuple[str, ...]:
    """Folders of the Python installation: code there changes only by reinstalling."""
    import site
    import sysconfig

    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", list)())
    paths.add(sys.base_prefix)
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths)


def imported_sources() -> dict[str, list[int]]:
    """Source files of the modules loaded now that lie outside the installation (this
    package in a checkout, a lesson's own modules), with their mtime and size."""
    installed, files = _installed_paths(), {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if real.startswith(installed):
            continue
        try:
            info = os.stat(real)
        except OSError:
            continue
        files[real] = [info.st_mtime_ns, info.st_size]
    return files


def thread_count() -> int | None:
    """Threads of this process (Linux), None where it cannot tell."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _child(request: dict, wakeup_r: int, notify: int) -> None:
    """In the forked child: become the trial process, run it, never return."""
    try:
        _own_group(0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(wakeup_r)
        if notify >= 0:
            os.close(notify)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (out, err, devnull):
            os.close(fd)
        sys.stdin = open(os.devnull)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        fresh_state(int(request.get("threads", 1)))  # new seeds, its thread budget
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = list(request["argv"])
        from d2l_hpo.backends import _trial_main

        _trial_main.main()  # ends the process with the trial's exit code
    except BaseException:
        traceback.print_exc()
    os._exit(1)


def _own_group(pid: int) -> None:
    """Make the trial ``pid`` (0: this process) the leader of a process group of its
    own, so that whatever it starts can be found and killed when it ends."""
    try:
        os.setpgid(pid, 0)
    except OSError:  # done already by the other side of the fork
        pass


def kill_group(pid: int) -> None:
    """Kill what is left of the process group of the trial ``pid`` (its children,
    and theirs, that did not start a session of their own)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _notify(fd: int) -> None:
    if fd >= 0:
        try:
            os.write(fd, b".")
        except (BlockingIOError, BrokenPipeError):  # full (it wakes anyway) or gone
            pass


def main() -> None:
    die_with_parent()
    notify = int(sys.argv[1])
    if notify >= 0:
        os.set_blocking(notify, False)
    _preload(sys.argv[2:])
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select() up
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the tuner and trials
    trial_dirs: dict[int, str] = {}
    requests, pending = sys.stdin.fileno(), b""
    sys.stdout.write("ready\n" + json.dumps({"files": imported_sources(),
                                              "threads": thread_count()}) + "\n")
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([requests, wakeup_r], [], [])
        if wakeup_r in ready:
            os.read(wakeup_r, 4096)
        while trial_dirs:  # reap every child that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            folder = trial_dirs.pop(pid, None)
            if folder is not None:
                kill_group(pid)  # e.g. a Popen(["sleep", ...]) the trial left running
                write_atomically(Path(folder) / f"exit-{pid}", str(os.waitstatus_to_exitcode(status)))
                _notify(notify)
        if requests in ready:
            data = os.read(requests, 65536)
            if not data:  # the backend closed the pipe: done. Skip the interpreter's
                # teardown of what _preload imported, which the tuner would wait for
                # at the end of every experiment (benchmarks/README.md, change 4)
                sys.stdout.flush()
                os._exit(0)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, wakeup_r, notify)
                _own_group(pid)  # both sides: the group exists whichever runs first
                trial_dirs[pid] = request["trial_dir"]
                sys.stdout.write(f"{pid}\n")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
