"""Objectives: what one trial runs.

Syne Tune ships each objective to a fresh worker process without its module
globals, so every import lives inside the function body.
"""


def lenet_objective(learning_rate: float, batch_size: int, max_epochs: int,
                    data_fraction: float = 1.0, data_seed: int = 0):
    """Train d2l's LeNet on Fashion-MNIST and report the validation error each epoch.

    :param learning_rate: SGD learning rate
    :param batch_size: minibatch size
    :param max_epochs: number of epochs; a result is reported after each
    :param data_fraction: seeded fraction of Fashion-MNIST to use; default 1.0
    :param data_seed: seed of that subset and of the shuffling; default 0
    """
    from d2l_hpo.lesson.reporter import Reporter
    report = Reporter()  # first: the reported times then cover the whole trial

    import os

    import torch
    from d2l import torch as d2l

    from d2l_hpo.lesson.data import FashionMNISTInMemory
    from d2l_hpo.lesson.training import prepare_model, train_epoch, validation_error

    # a fair share of the cores: the runner sets this for each trial
    torch.set_num_threads(int(os.environ.get("D2L_HPO_THREADS", torch.get_num_threads())))
    torch.manual_seed(data_seed)
    # Syne Tune exposes one GPU per trial through CUDA_VISIBLE_DEVICES
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # on a GPU the data stay there and batches are cut there (same seeded order)
    data = FashionMNISTInMemory(batch_size=batch_size, fraction=data_fraction,
                                seed=data_seed, device="cuda" if device == "cuda" else None)
    model = d2l.LeNet(lr=learning_rate, num_classes=10)
    model.apply_init([next(iter(data.train_dataloader()))[0].cpu()], d2l.init_cnn)
    model = prepare_model(model, device)
    optimizer = model.configure_optimizers()  # SGD with the trial's learning rate
    # the book's HPOTrainer loop, lean: see d2l_hpo.lesson.training
    for epoch in range(1, max_epochs + 1):
        train_epoch(model, optimizer, data.train_dataloader(), device)
        error = validation_error(model, data.val_dataloader(), device)
        report(epoch=epoch, validation_error=error)


def synthetic_objective(learning_rate: float, batch_size: int, max_epochs: int,
                        num_layers: int = 2, epoch_seconds: float = 0.25):
    """A stand-in for training that sleeps instead of computing.

    Cost model, per epoch: ``epoch_seconds * (0.5 + batch_size / 128) * num_layers / 2``,
    three times as long for batch sizes above 224 (stragglers). The reported
    validation error decays from 0.9 towards a floor that is lowest for learning
    rates near ``0.3 * batch_size / 128`` and for 2-3 layers, plus a little noise
    fixed by the configuration.

    :param learning_rate: as for LeNet
    :param batch_size: as for LeNet
    :param max_epochs: number of epochs; a result is reported after each
    :param num_layers: depth of the imagined network; default 2
    :param epoch_seconds: the time scale of one epoch; default 0.25
    """
    # Syne Tune's own Reporter, as a user's objective would: the lessons measure what
    # starting the first trial server costs (it imports Syne Tune, about 0.6 s) against
    # the later searches that reuse it. lenet_objective reports through the light one.
    from syne_tune import Reporter
    report = Reporter()

    import math
    import random
    import time

    from d2l_hpo.lesson.objectives import synthetic_seconds

    per_epoch = synthetic_seconds(batch_size, 1, num_layers, epoch_seconds)
    best_lr = 0.3 * batch_size / 128
    distance = abs(math.log10(learning_rate / best_lr))
    floor = 0.08 + 0.25 * distance ** 2 + 0.03 * abs(num_layers - 2.5)
    speed = 0.9 * min(1.0, learning_rate / best_lr) ** 0.5
    noise = random.Random(f"{learning_rate:.6g}-{batch_size}-{num_layers}")
    for epoch in range(1, max_epochs + 1):
        time.sleep(per_epoch)
        error = floor + (0.9 - floor) * math.exp(-speed * epoch)
        error = min(0.9, max(0.0, error + noise.gauss(0, 0.01)))
        report(epoch=epoch, validation_error=error)


def synthetic_seconds(batch_size: int, max_epochs: int, num_layers: int = 2,
                      epoch_seconds: float = 0.25, **_ignored) -> float:
    """How long ``synthetic_objective`` sleeps for this configuration: the work of the
    trial without any overhead. Takes a whole configuration: ``synthetic_seconds(**c)``.
    """
    per_epoch = epoch_seconds * (0.5 + batch_size / 128) * num_layers / 2
    return per_epoch * (3 if batch_size > 224 else 1) * max_epochs
