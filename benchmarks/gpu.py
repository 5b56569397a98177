"""B7, LeNet on one GPU: one epoch three ways, and K trials sharing the GPU.

Table 1, one epoch (60k training images) + one validation sweep (10k), batch 64 and
128, medians of the repeats, side by side in one process:
- book: ``d2l.FashionMNIST`` + ``d2l.HPOTrainer(num_gpus=1)`` (the book's pipeline);
- host loader: ``FashionMNISTInMemory`` in host memory, each batch copied to the GPU
  (what ``lenet_objective`` did before it kept the data on the GPU);
- resident: the whole dataset on the GPU, batches cut there (what ``lenet_objective``
  does on a GPU now).

Table 2, K trials on the one GPU: 16 LeNet trials x 3 epochs (full data), the same
seeded configurations for every K = 1, 2, 4, 8; threads per trial = cores // K.
speed-up by the time of the whole ``run_random_search`` call (what a user waits for)
and by the recorded wall-clock, the median trial duration, and the most GPU processes
and GPU memory seen at once (``nvidia-smi``, sampled every 0.2 s).

Prints both tables in under 6 minutes on an H200. Without a GPU it says so and
measures nothing; ``--cpu --quick`` runs the same code on the CPU with a tiny workload
(to check the script, not to measure a GPU).

    python benchmarks/gpu.py [--repeats 3] [--trials 16] [--epochs 3]
    python benchmarks/gpu.py --cpu --quick
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402


def _epoch(device, batch_size, way, fraction) -> float:
    """Seconds for one epoch + validation sweep, ``way`` = book / host / resident."""
    import torch
    from d2l import torch as d2l

    from d2l_hpo.lesson.data import FashionMNISTInMemory
    from d2l_hpo.lesson.training import prepare_model, train_epoch, validation_error

    torch.manual_seed(0)
    model = d2l.LeNet(lr=0.1)
    if way == "book":
        data = d2l.FashionMNIST(batch_size=batch_size)  # reads ../data (main stages it)
        model.board.display = False
        trainer = d2l.HPOTrainer(max_epochs=1, num_gpus=1 if device == "cuda" else 0)
        model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
        trainer.prepare_data(data)
        trainer.prepare_model(model)
        trainer.optim = model.configure_optimizers()
        trainer.epoch = trainer.train_batch_idx = trainer.val_batch_idx = 0
        val, trainer.val_dataloader = trainer.val_dataloader, None
        _sync(device)
        start = time.perf_counter()
        trainer.fit_epoch()
        trainer.val_dataloader = val
        float(trainer.validation_error())
        _sync(device)
        return time.perf_counter() - start
    data = FashionMNISTInMemory(batch_size=batch_size, fraction=fraction,
                                device=device if way == "resident" else None)
    model.apply_init([next(iter(data.train_dataloader()))[0].cpu()], d2l.init_cnn)
    model = prepare_model(model, device)
    optimizer = model.configure_optimizers()
    _sync(device)
    start = time.perf_counter()
    train_epoch(model, optimizer, data.train_dataloader(), device)
    validation_error(model, data.val_dataloader(), device)
    _sync(device)
    return time.perf_counter() - start


def _sync(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def epoch_table(device, batch_sizes, repeats, fraction, ways):
    rows = []
    for batch_size in batch_sizes:
        times = {way: [] for way in ways}
        for _ in range(repeats):  # alternating, so drift hits every way alike
            for way in ways:
                times[way].append(_epoch(device, batch_size, way, fraction))
        reference = median(times[ways[0]])
        for way in ways:
            rows.append({"batch_size": batch_size, "way": way,
                         "epoch_s": median(times[way]),
                         f"vs_{ways[0]}": reference / median(times[way]),
                         "repeats": repeats})
        print(rows[-len(ways):], file=sys.stderr, flush=True)
    return rows


class GpuWatch:
    """The most compute processes and the most memory (MiB) on the GPU seen at once."""

    def __init__(self, enabled):
        self.enabled, self.processes, self.memory_mib = enabled, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-compute-apps=pid,used_memory",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True,
                    timeout=5).stdout
                rows = [line.split(",") for line in out.splitlines() if line.strip()]
                self.processes = max(self.processes, len(rows))
                self.memory_mib = max(self.memory_mib, sum(int(r[1]) for r in rows))
                if rows:
                    self.per_process = max(getattr(self, "per_process", 0),
                                           max(int(r[1]) for r in rows))
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            self._stop.wait(0.2)

    def __enter__(self):
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.enabled:
            self._thread.join()


def k_trials_table(workers, n_trials, epochs, fraction, on_gpu):
    from d2l_hpo import lenet_objective, lenet_space, run_random_search

    space = lenet_space(max_epochs=epochs)
    space.update(data_fraction=fraction)
    cores = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        run_random_search(lenet_objective, space, n_workers=1, max_num_trials=1, seed=0,
                          results_dir=folder, progress=False)  # warm the fork server
        runs = {}
        for k in workers:
            with GpuWatch(on_gpu) as watch:
                start = time.perf_counter()
                exp = run_random_search(lenet_objective, space, n_workers=k,
                                        max_num_trials=n_trials, seed=1, results_dir=folder,
                                        progress=False)
                call = time.perf_counter() - start
            done = int((exp.trials["status"] == "completed").sum())
            runs[k] = (exp, call, watch)
            print(f"K={k}: call {call:.1f} s, recorded {exp.wallclock:.1f} s, "
                  f"{done}/{n_trials} completed", file=sys.stderr, flush=True)
        exp1, call1, _ = runs[workers[0]]
        for k in workers:
            exp, call, watch = runs[k]
            rows.append({
                "K": k, "threads_per_trial": max(1, cores // k), "trials": len(exp.trials),
                "completed": int((exp.trials["status"] == "completed").sum()),
                "call_s": call, "wallclock_s": exp.wallclock, "setup_s": exp.setup_time,
                "speedup_by_call": call1 / call, "speedup_recorded": exp1.wallclock / exp.wallclock,
                "median_trial_s": float(exp.trials["duration"].median()),
                "best_error": exp.best_value,
                "gpu_processes_seen": watch.processes if on_gpu else "-",
                "gpu_memory_mib_seen": watch.memory_mib if on_gpu else "-",
                "mib_per_trial_max": getattr(watch, "per_process", "-") if on_gpu else "-"})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cpu", action="store_true",
                        help="run the same code on the CPU (checks the script; no GPU numbers)")
    parser.add_argument("--quick", action="store_true", help="a tiny workload")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    on_gpu = torch.cuda.is_available() and not args.cpu
    if not on_gpu and not args.cpu:
        print("No GPU here (torch.cuda.is_available() is False): nothing measured. "
              "Run this on a machine with a GPU, or with --cpu --quick to check the script.")
        return
    device = "cuda" if on_gpu else "cpu"
    fraction, workers, repeats = 1.0, [1, 2, 4, 8], args.repeats
    batch_sizes, ways = [64, 128], ["book", "host loader", "resident"]
    trials, epochs = args.trials, args.epochs
    if args.quick:
        fraction, workers, repeats, batch_sizes = 0.02, [1, 2], 1, [128]
        ways, trials, epochs = ["host loader", "resident"], 2, 1
    if "book" in ways:  # d2l.FashionMNIST reads ../data, as in the book
        from d2l_hpo.lesson.data import stage_fashion_mnist

        tmp = Path(tempfile.mkdtemp())
        stage_fashion_mnist(tmp / "data")
        (tmp / "notebooks").mkdir()
        os.chdir(tmp / "notebooks")
    start = time.perf_counter()
    way_names = {"host loader": "host", "book": "book", "resident": "resident"}
    rows = epoch_table(device, batch_sizes, repeats,
                       fraction, [way_names[w] for w in ways])
    print(f"\nOne epoch + validation of LeNet on {device} "
          f"({torch.cuda.get_device_name() if on_gpu else 'CPU'}; {fraction:.0%} of the "
          f"data; medians of {repeats})\n")
    print(markdown_table(rows, list(rows[0])[:4]))
    print(f"\nCSV: {write_csv('gpu_epoch', rows)}")
    k_rows = k_trials_table(workers, trials, epochs, fraction, on_gpu)
    print(f"\n{trials} LeNet trials x {epochs} epochs on one {device}, K workers "
          f"(the same configurations for every K)\n")
    print(markdown_table(k_rows, list(k_rows[0])))
    print(f"\nCSV: {write_csv('gpu_k_trials', k_rows)}")
    print(f"\n({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
