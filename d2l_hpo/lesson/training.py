"""One epoch of training and one validation sweep for a d2l classifier, lean.

What d2l's ``HPOTrainer`` does per epoch, with the same model, loss and optimiser,
minus what a trial does not need: no per-batch ``ProgressBoard`` bookkeeping (it
copies every loss to numpy), validation under ``torch.inference_mode`` that counts
exactly how many of the validation images are wrong (d2l averages per-batch
accuracies, which weighs a short last batch like a full one), and on the CPU the
weights in channels-last layout, which oneDNN's convolutions run faster.
``benchmarks/lenet_epoch.py`` measures each of these against the book's loop.
"""

from __future__ import annotations


def prepare_model(model, device=None):
    """Move an initialised model to ``device`` (default: the CPU) in the layout that
    trains fastest there, and return it.

    :raises ValueError: if the model still has uninitialised (lazy) parameters;
        call ``model.apply_init([a_batch], d2l.init_cnn)`` first
    """
    import torch
    from torch.nn.parameter import UninitializedParameter

    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        raise ValueError("the model has lazy layers that have not seen a batch yet; "
                         "call model.apply_init([a_batch], d2l.init_cnn) first")
    device = torch.device(device or "cpu")
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def train_epoch(model, optimizer, loader, device=None) -> float:
    """One pass over ``loader`` with ``model.loss``; returns the mean training loss."""
    import torch

    device = torch.device(device or "cpu")
    model.train()
    total, batches = torch.zeros((), device=device), 0
    for X, y in loader:
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = model.loss(model(X), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        batches += 1
    if batches == 0:
        raise ValueError("the training loader yielded no batch")
    return float(total) / batches


def validation_error(model, loader, device=None) -> float:
    """The fraction of the images in ``loader`` that ``model`` classifies wrongly."""
    import torch

    device = torch.device(device or "cpu")
    model.eval()
    wrong, seen = torch.zeros((), dtype=torch.long, device=device), 0
    with torch.inference_mode():
        for X, y in loader:
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
            wrong += (model(X).argmax(dim=1) != y).sum()  # no sync with a GPU per batch
            seen += len(y)
    if seen == 0:
        raise ValueError("the validation loader yielded no image")
    return int(wrong) / seen
