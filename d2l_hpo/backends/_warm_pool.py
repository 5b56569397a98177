"""Fork servers kept warm between searches of one process.

A fork server (``_forkserver.py``) spends seconds importing what an objective
imports (torch, d2l, Syne Tune). A notebook runs many searches in one kernel, so a
server that is done with one search goes back into this pool, and the next search
that needs the same modules takes it instead of starting another. A pooled server is
replaced when:

- any source file it imported from outside the Python installation (this package,
  the lesson's own modules) or the objective's own file has changed since it
  imported it: an edited lesson runs its new code;
- the settings it was started with differ: the modules, the Python, the working
  directory and ``PYTHONPATH`` (where imports are found), and the GPUs this process
  may see;
- it has died.

Thread budgets do not matter here: every server imports with one thread, and each
trial gets its own budget after the fork (``_common.set_thread_budget``).

Servers are closed at interpreter exit and by ``d2l_hpo.shutdown()``. Where forking
after importing such libraries is not safe (macOS, Windows), ``fork_is_safe()`` is
False and trials start as fresh interpreters instead.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from typing import Iterable

from d2l_hpo.backends._common import THREAD_VARIABLES

MAX_POOLED = 3  # servers kept at once (each holds a copy of torch & co.)
# pyarrow (imported by pandas and Syne Tune) starts a jemalloc thread unless told not to
JEMALLOC_VARIABLE, NO_JEMALLOC_THREAD = "JE_ARROW_MALLOC_CONF", "background_thread:false"

_pool: dict[tuple, "WarmServer"] = {}
_lock = threading.Lock()


def fork_is_safe() -> bool:
    """Whether trials may be forked from a warm server: on Linux, unless
    ``D2L_HPO_START=fresh`` asks for a new interpreter per trial."""
    if os.environ.get("D2L_HPO_START", "").strip().lower() == "fresh":
        return False
    return sys.platform.startswith("linux")


def server_environment() -> dict[str, str]:
    """The environment a fork server imports in: one thread everywhere, no jemalloc
    background thread, so that it is single-threaded whenever it forks."""
    env = dict(os.environ)
    env.update({var: "1" for var in THREAD_VARIABLES})
    conf = env.get(JEMALLOC_VARIABLE, "")
    if "background_thread" not in conf:
        env[JEMALLOC_VARIABLE] = f"{conf},{NO_JEMALLOC_THREAD}" if conf else NO_JEMALLOC_THREAD
    return env


def _key(modules: Iterable[str]) -> tuple:
    return (sys.executable, tuple(modules), os.getcwd(), os.environ.get("PYTHONPATH", ""),
            os.environ.get("CUDA_VISIBLE_DEVICES"))


def _stamp(path: str):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_mtime_ns, info.st_size]


class WarmServer:
    """One fork server process, its wake-up pipe and what it imported."""

    def __init__(self, modules: list[str], watch: Iterable[str] = ()):
        self.key = _key(modules)
        self.in_main_thread = threading.current_thread() is threading.main_thread()
        self.watched = {path: _stamp(path) for path in watch}
        self.notify, notify_w = os.pipe()  # a byte each time a trial ends
        os.set_blocking(self.notify, False)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "d2l_hpo.backends._forkserver", str(notify_w),
                 *modules], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                pass_fds=(notify_w,), env=server_environment())
        except BaseException:
            os.close(self.notify)
            raise
        finally:
            os.close(notify_w)
        self.ready = False
        self.imported: dict[str, list] = {}  # source file -> [mtime_ns, size] at import
        self.threads = None  # threads the server had when it became ready
        self.reused = False  # True when taken from the pool

    def wait_until_ready(self) -> None:
        """Block until the server has imported its modules."""
        if self.ready:
            return
        if self.process.stdout.readline().strip() != "ready":
            raise OSError("the fork server ended while importing")
        info = json.loads(self.process.stdout.readline())
        self.imported, self.threads = info["files"], info["threads"]
        self.ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def changed_file(self) -> str | None:
        """A source file the server's code came from that changed since, if any."""
        for path, stamp in {**self.imported, **self.watched}.items():
            if _stamp(path) != stamp:
                return path
        return None

    def drain(self) -> None:
        """Forget wake-ups left from an earlier search."""
        try:
            while os.read(self.notify, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """End the server (it exits when its input closes) and its pipe."""
        try:
            if not self.ready:  # still importing: it would not read its input
                raise OSError
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.process.kill()
            self.process.wait()
        if self.notify is not None:
            os.close(self.notify)
            self.notify = None


def acquire(modules: list[str], watch: Iterable[str] = ()) -> WarmServer:
    """A server for ``modules``: a warm one from the pool if one fits and nothing it
    imported changed, else a new one (importing in the background)."""
    watch = list(watch)
    with _lock:
        server = _pool.pop(_key(modules), None)
    if server is not None:
        if server.alive() and server.changed_file() is None \
                and set(watch) <= set(server.watched):
            server.drain()
            server.reused = True
            return server
        server.close()
    return WarmServer(modules, watch)


def release(server: WarmServer) -> None:
    """Give ``server`` back: kept for the next search when it is healthy, else closed.
    A server started from another thread than the main one is closed: it dies with
    that thread (``PR_SET_PDEATHSIG``), which may end before the next search."""
    keep = server.ready and server.alive() and server.in_main_thread
    with _lock:
        if keep and server.key not in _pool:
            _pool[server.key] = server
            surplus = list(_pool.values())[:-MAX_POOLED]
            for old in surplus:
                del _pool[old.key]
            server = None
        else:
            surplus = []
    for old in surplus + ([server] if server is not None else []):
        old.close()


def pooled() -> list[WarmServer]:
    """The servers waiting in the pool now."""
    with _lock:
        return list(_pool.values())


def shutdown() -> None:
    """Close every pooled fork server."""
    with _lock:
        servers = list(_pool.values())
        _pool.clear()
    for server in servers:
        server.close()


atexit.register(shutdown)
