"""How a running search shows its progress, wherever it runs.

- In a terminal: a tqdm bar, redrawn in place.
- In a notebook: one line of HTML (with a plain-text twin) that is updated in place
  and ends in its final state, so a saved notebook shows ``8/8 trials completed`` in any
  static rendering (GitHub, nbviewer), not the ``0/8`` a widget leaves behind.
- Anywhere else (a log file, ``| tee``, CI): one line each time something changes.

``progress_display(...)`` picks the kind; the recorder calls ``update`` after every
loop of the tuner and ``close`` at the end.
"""

from __future__ import annotations

import html
import math
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressState:
    """What the progress line says: trials completed, failed (raised, diverged or timed
    out), stopped (by the budget, or interrupted) and running, and the best metric so far;
    with early stopping also the trials pruned and the epochs spent."""

    completed: int
    failed: int
    stopped: int
    running: int
    best: float
    pruned: int = 0
    epochs: int | None = None  # epochs spent so far, shown with early stopping

    @property
    def ended(self) -> int:
        return self.completed + self.pruned + self.failed + self.stopped

    def describe(self, metric: str) -> str:
        best = "-" if math.isnan(self.best) else f"{self.best:.4g}"
        stopped = f", {self.stopped} stopped" if self.stopped else ""
        pruned = f"{self.pruned} pruned, " if self.epochs is not None else ""
        epochs = f"; {self.epochs} epochs" if self.epochs is not None else ""
        return (f"{pruned}{self.failed} failed{stopped}, {self.running} running; "
                f"best {metric} {best}{epochs}")


class Progress:
    """What every display shares: the line of text and when to redraw it. By itself
    it prints one line per change."""

    min_interval = 0.0  # seconds between two redraws of an unchanged state (0: never)

    def __init__(self, name: str, total: int | None, metric: str,
                 budget_seconds: float | None = None, stream=None, clock=None,
                 setup: float | None = None, warm: str = "", seconds: str = "s"):
        self.name, self.total, self.metric = name, total, metric
        self.seconds = seconds  # the clock's unit as shown: "s", or "simulated s"
        self.setup, self.warm = setup, warm
        self.budget_seconds = budget_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.state: ProgressState | None = None
        started = time.monotonic()
        # seconds since the experiment began (a resumed one began before this call)
        self.elapsed = clock if clock is not None else (lambda: time.monotonic() - started)
        self._drawn_at = -math.inf

    def setup_text(self) -> str:
        """What happened before the clock started, e.g. ``set-up 6.1 s before the
        clock (trial server started: imports)``; empty when not known."""
        if self.setup is None:
            return ""
        why = {"started": " (trial server started: imports)",
               "reused": " (warm trial server reused)"}.get(self.warm, "")
        return f"set-up {self.setup:.1f} s before the clock{why}"

    def text(self, state: ProgressState) -> str:
        total = f"/{self.total}" if self.total else ""
        budget = (f"; {self.elapsed():.0f}/{self.budget_seconds:.0f} {self.seconds} of the budget"
                  if self.budget_seconds else "")
        return (f"{self.name}: {state.completed}{total} trials completed, "
                f"{state.describe(self.metric)}{budget}")

    def update(self, state: ProgressState, force: bool = False) -> None:
        changed = state != self.state
        due = self.min_interval and time.monotonic() - self._drawn_at >= self.min_interval
        if not (changed or due or force):
            return
        self.state, self._drawn_at = state, time.monotonic()
        self.draw(state, final=False)

    def draw(self, state: ProgressState, final: bool) -> None:
        print(self.text(state), file=self.stream, flush=True)

    def write(self, message: str) -> None:
        """A message between progress lines (a trial failed, ...)."""
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.state is not None:
            self.draw(self.state, final=True)


class LogProgress(Progress):
    """A first line with the set-up, one line per change, and one when the search ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.setup_text():
            print(f"{self.name}: {self.setup_text()}", file=self.stream, flush=True)

    def close(self):
        if self.state is not None:
            print(f"{self.text(self.state)} (finished after {self.elapsed():.0f} {self.seconds})",
                  file=self.stream, flush=True)


class TerminalProgress(Progress):
    """A tqdm bar, redrawn in place; once a second for the time budget."""

    min_interval = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from tqdm import tqdm
        self.bar = tqdm(total=self.total, unit="trial", desc=self.name, dynamic_ncols=True,
                        file=self.stream)
        if self.setup_text():
            self.bar.write(f"{self.name}: {self.setup_text()}", file=self.stream)

    def draw(self, state, final):
        self.bar.n = state.ended
        postfix = {"running": state.running, "failed": state.failed,
                   f"best {self.metric}": "-" if math.isnan(state.best) else f"{state.best:.4g}"}
        if self.budget_seconds:
            postfix["budget"] = f"{self.elapsed():.0f}/{self.budget_seconds:.0f} {self.seconds}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def write(self, message):
        self.bar.write(message, file=self.stream)

    def close(self):
        super().close()
        self.bar.close()


class NotebookProgress(Progress):
    """An HTML progress bar with a plain-text twin, updated in place through an
    IPython display handle; at the end both show the final state."""

    min_interval = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from IPython.display import display
        self.handle = display(self._bundle(ProgressState(0, 0, 0, 0, math.nan), final=False),
                              raw=True, display_id=True)

    def _bundle(self, state, final):
        text = self.text(state)
        if final:
            text += f" (finished after {self.elapsed():.0f} {self.seconds})"
        if self.setup_text():
            text += f"; {self.setup_text()}"
        bar = (f'<progress value="{state.ended}" max="{self.total}" style="width: 12em">'
               '</progress> ' if self.total else "")
        return {"text/plain": text, "text/html": f"<div>{bar}<code>{html.escape(text)}</code></div>"}

    def draw(self, state, final):
        self.handle.update(self._bundle(state, final), raw=True)

    def write(self, message):
        print(message, file=sys.stderr, flush=True)


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (a notebook, nbval, VS Code)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_display(name: str, total: int | None, metric: str,
                     budget_seconds: float | None = None, clock=None,
                     setup: float | None = None, warm: str = "",
                     simulated: bool = False) -> Progress:
    """The progress display that suits where this runs (see the module's docstring).

    :param name: the experiment's name, first on the line
    :param total: trials in the budget, or None
    :param metric: the metric whose best value is shown
    :param budget_seconds: the wall-clock budget, shown next to the elapsed time; or None
    :param clock: seconds since the experiment began; default: since this call
    :param setup: seconds the call spent before the clock started, shown first; or None
    :param warm: whether the trial server was ``"started"`` or ``"reused"`` for it
    :param simulated: ``clock`` counts simulated seconds (a replay): said with each time
    """
    extra = dict(clock=clock, setup=setup, warm=warm,
                 seconds="simulated s" if simulated else "s")
    if in_notebook():
        return NotebookProgress(name, total, metric, budget_seconds, **extra)
    stream = sys.stderr
    kind = TerminalProgress if getattr(stream, "isatty", lambda: False)() else LogProgress
    return kind(name, total, metric, budget_seconds, stream=stream, **extra)
