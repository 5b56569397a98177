"""B3, LeNet throughput: one epoch (60k training images, then 10k validation
images, or a share of each) the book's way (d2l.FashionMNIST, d2l.HPOTrainer) and d2l_hpo's way
(FashionMNISTInMemory, d2l_hpo.lesson.training: what lenet_objective runs), with the
step between them, side by side in one process, alternating, medians of the repeats.

    python benchmarks/lenet_epoch.py [--threads 1 2] [--repeats 3] [--fraction 1] [--quick]

``--quick`` (what ``make test`` runs) times an epoch over a sixth of the images: enough to
check the script, not to quote.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, write_csv  # noqa: E402


def book_epoch(data) -> float:
    """Seconds for one epoch plus one validation sweep with d2l's HPOTrainer."""
    import torch
    from d2l import torch as d2l

    torch.manual_seed(0)
    model = d2l.LeNet(lr=0.1)
    model.board.display = False
    trainer = d2l.HPOTrainer(max_epochs=1)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    trainer.prepare_data(data)
    trainer.prepare_model(model)
    trainer.optim = model.configure_optimizers()
    trainer.epoch = trainer.train_batch_idx = trainer.val_batch_idx = 0
    val = trainer.val_dataloader
    start = time.perf_counter()
    trainer.val_dataloader = None  # fit_epoch's own sweep only feeds the plot
    trainer.fit_epoch()
    trainer.val_dataloader = val
    error = float(trainer.validation_error())
    elapsed = time.perf_counter() - start
    assert 0 <= error <= 1
    return elapsed


def lean_epoch(data) -> float:
    """Seconds for the same epoch and sweep as lenet_objective runs them."""
    import torch
    from d2l import torch as d2l

    from d2l_hpo.lesson.training import prepare_model, train_epoch, validation_error

    torch.manual_seed(0)
    model = d2l.LeNet(lr=0.1)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    model = prepare_model(model)
    optimizer = model.configure_optimizers()
    start = time.perf_counter()
    train_epoch(model, optimizer, data.train_dataloader())
    error = validation_error(model, data.val_dataloader())
    elapsed = time.perf_counter() - start
    assert 0 <= error <= 1
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="the share of the images in the epoch (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="1 thread, 1 repeat, a sixth of the images")
    args = parser.parse_args()
    if args.quick:
        args.threads, args.repeats, args.fraction = [1], 1, 1 / 6
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction {args.fraction}: use a number in (0, 1]")

    # d2l's 4 loader workers on a 2-core machine: the point of the comparison
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    import torch
    from d2l import torch as d2l

    from d2l_hpo.lesson.data import FashionMNISTInMemory, stage_fashion_mnist

    tmp = Path(tempfile.mkdtemp())
    stage_fashion_mnist(tmp / "data")
    (tmp / "notebooks").mkdir()
    os.chdir(tmp / "notebooks")  # d2l.FashionMNIST reads ../data, as in the book

    def stock():
        data = d2l.FashionMNIST(batch_size=args.batch_size)
        if args.fraction < 1:  # the first images of each split: as many as in_memory keeps
            for split in ("train", "val"):
                images = getattr(data, split)
                keep = range(max(1, int(round(len(images) * args.fraction))))
                setattr(data, split, torch.utils.data.Subset(images, keep))
        return data

    def in_memory():
        return FashionMNISTInMemory(batch_size=args.batch_size, path=tmp / "data",
                                    fraction=args.fraction)

    # name -> (data module, epoch loop); the first is the book's, the last d2l_hpo's
    pipelines = {
        STOCK: (stock, book_epoch),
        "d2l.FashionMNIST, 0 loader workers + HPOTrainer": (
            lambda: _no_workers(stock()), book_epoch),
        "FashionMNISTInMemory + HPOTrainer": (in_memory, book_epoch),
        "FashionMNISTInMemory + d2l_hpo.lesson.training (lenet_objective)": (in_memory, lean_epoch),
    }
    if args.quick:
        del pipelines["d2l.FashionMNIST, 0 loader workers + HPOTrainer"]
    probe = in_memory()
    images = len(probe.train) + len(probe.val)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = {name: [] for name in pipelines}
        for _ in range(args.repeats):
            for name, (make, epoch) in pipelines.items():  # alternate: drift hits all
                times[name].append(epoch(make()))
                print(f"{threads} thread(s) {name}: {times[name][-1]:.2f} s", file=sys.stderr)
        book = median(times[STOCK])
        for name in pipelines:
            seconds = median(times[name])
            rows.append({"threads": threads, "pipeline": name, "epoch_s": seconds,
                         "images_per_s": images / seconds,
                         "vs_book": book / seconds, "repeats": args.repeats})
    print(f"\nOne LeNet epoch, batch size {args.batch_size}: {len(probe.train):,} train + "
          f"{len(probe.val):,} validation images (medians of {args.repeats})\n")
    print(markdown_table(rows, ["threads", "pipeline", "epoch_s", "images_per_s",
                                "vs_book"]))
    print(f"\nCSV: {write_csv('lenet_epoch', rows)}")


STOCK = "d2l.FashionMNIST (4 loader workers, the default) + HPOTrainer"


def _no_workers(data):
    data.num_workers = 0
    return data


if __name__ == "__main__":
    main()
