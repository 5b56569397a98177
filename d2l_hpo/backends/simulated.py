"""Trials replayed from a tabulated benchmark, in simulated time.

Syne Tune's simulator does the replay: ``UserBlackboxBackend`` looks each trial up in
the table and puts its report and its end on a queue of events, at the simulated
times the measured training run would have reached them; the tuner's sleeps move the
simulated clock. Two things in it keep a run from being reproducible, and both are
fixed here, where they arise:

1. **The clock.** Syne Tune's ``SimulatedTimeKeeper`` also advances by the *real* time
   the tuner spends between two calls of the backend (so that a slow scheduler costs
   simulated time). That real time differs from run to run, so two runs with one seed
   drifted apart (about a second in 1,000 trials). ``ReplayClock`` counts only the
   simulated time: the tuner's decisions take none, as in the closed-form schedule
   (``d2l_hpo.ideal_makespan``).
2. **The sleeps.** Syne Tune's callback advances the clock by a fixed step each time
   the tuner sleeps (5 s by default), so a trial that ends between two steps waits for
   the next one and the worker idles. Here the tuner's wait (``wait_for_change``, the
   same seam the real backends use to wake the tuner when a trial ends) moves the clock
   to the next event, exactly: a worker starts its next trial the moment the last one
   ended.

With its delays set to zero as well, the replay's makespan is the ideal schedule's.
Which of the table's repetitions (seeds) a trial replays is drawn from the run's seed
and the trial's id, so the same seed gives the same run, bit for bit.
"""

from __future__ import annotations

import numpy as np
from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
from syne_tune.backend.simulator_backend.time_keeper import SimulatedTimeKeeper
from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend

from d2l_hpo.backends.base import Placement, RunnerBackend
from d2l_hpo.benchmarks import TIME, TabularBenchmark

SIMULATED_NODE = "simulated"


class ReplayClock(SimulatedTimeKeeper):
    """Syne Tune's simulated clock without the real time spent outside the backend."""

    def real_time_since_last_recent_exit(self) -> float:
        return 0.0


class SimulatedBackend(RunnerBackend, UserBlackboxBackend):
    """Replays ``benchmark`` in simulated time (see the module's docstring).

    :param benchmark: the table (``d2l_hpo.benchmarks.tabular(name)``)
    :param seed: picks the repetition each trial replays
    """

    simulates_time = True

    def __init__(self, benchmark: TabularBenchmark, seed: int):
        UserBlackboxBackend.__init__(
            self, blackbox=benchmark.blackbox, elapsed_time_attr=TIME,
            simulator_config=SimulatorConfig(0.0, 0.0, 0.0, 0.0, 0.0),
            tuner_sleep_time=0.0)  # the clock moves in wait_for_change, not by steps
        self.benchmark, self.seed = benchmark, int(seed)
        self._time_keeper = ReplayClock()
        self._time_keeper.start_of_time()  # Syne Tune's callback starts it again at 0
        self._launched: dict[int, float] = {}
        self._ended: dict[int, float] = {}

    def __getstate__(self):
        # the tuner is not saved in a simulated run; refuse rather than pickle the table
        raise TypeError("a SimulatedBackend is not pickled (its table is in d2l_hpo.benchmarks)")

    # --- what the runner asks beyond Syne Tune's seam -----------------------------------
    def clock(self) -> float:
        return self._time_keeper.time()

    def wait_for_change(self, timeout: float) -> None:
        """Move the simulated clock to the next event (a trial's start, report or end)."""
        heap = self._simulator_state.event_heap
        if heap:
            self._time_keeper.advance_to(heap[0][0])

    def launch_time(self, trial_id: int) -> float | None:
        return self._launched.get(trial_id)

    def end_time(self, trial_id: int) -> float | None:
        return self._ended.get(trial_id)

    def trial_placement(self, trial_id: int) -> Placement:
        return Placement(node=SIMULATED_NODE)

    # --- Syne Tune's simulator, made reproducible ---------------------------------------
    def _schedule(self, trial_id: int, config: dict):
        self._launched[trial_id] = self._time_keeper.time()
        super()._schedule(trial_id, config)

    def repetition(self, trial_id: int) -> int:
        """Which of the table's repetitions (seeds) the trial replays: drawn from the
        run's seed and the trial's id (Syne Tune draws it from numpy's global RNG)."""
        rng = np.random.default_rng([self.seed, trial_id])
        return int(rng.integers(self.benchmark.n_seeds))

    def _run_job_and_collect_results(self, trial_id: int, config: dict | None = None):
        # Syne Tune's replay passes its ``_seed`` (a seed for every trial) to the table
        self._seed = self.repetition(trial_id)
        return super()._run_job_and_collect_results(trial_id, config)

    def _process_on_trial_result_event(self, time_event: float, event):
        # the report's time on the experiment's clock, and the trial's own time at it
        event.result["st_worker_timestamp"] = time_event
        event.result["st_worker_time"] = event.result[TIME]
        super()._process_on_trial_result_event(time_event, event)

    def _process_complete_event(self, trial_id: int, time_event: float, status: str):
        self._ended.setdefault(trial_id, time_event)
        super()._process_complete_event(trial_id, time_event, status)
