"""Ctrl-C and SIGTERM during a search: what the tuner and the backends do with them.

A search ends on Ctrl-C or SIGTERM with its trials stopped and its results kept; the
parts that must not be cut half-way (a trial being started, the results being saved)
hold the interrupt until they are done.
"""

from __future__ import annotations

import contextlib
import signal
import sys

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _handling(handler):
    """Run the block with ``handler`` for SIGINT and SIGTERM (outside the main thread,
    where Python cannot set handlers, with the handlers as they are)."""
    try:
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """During a run, SIGTERM ends it like Ctrl-C does (trials stopped, results kept),
    and only the first of these signals interrupts: the trials are being stopped and
    the results saved by then, and a second Ctrl-C a moment later (an impatient user, a
    notebook's interrupt button pressed twice) must not cut that short."""
    interrupted = []

    def interrupt(signum, frame):
        interrupted.append(signum)
        if len(interrupted) == 1:
            raise KeyboardInterrupt(f"signal {signum}")
        print("(stopping the trials and saving the results; a moment)", file=sys.stderr)

    with _handling(interrupt):
        yield


@contextlib.contextmanager
def interrupts_held():
    """Ctrl-C and SIGTERM wait until the block is done (then one of them is raised)."""
    held = []
    with _handling(lambda signum, frame: held.append(signum)):
        yield
    if held:
        raise KeyboardInterrupt(f"signal {held[0]}")
