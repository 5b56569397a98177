"""d2l_hpo.lesson.training: the lean epoch loop keeps the book's model, loss and optimiser."""
import pytest
import torch
from d2l import torch as d2l

from d2l_hpo.lesson.training import prepare_model, train_epoch, validation_error


def batches(X, y, size):
    return [(X[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


class Fixed(torch.nn.Module):
    """Predicts the class stored in the first pixel."""

    def forward(self, X):
        return torch.nn.functional.one_hot(X[:, 0, 0, 0].long(), 10).float()


def test_validation_error_counts_every_image_once_even_with_a_short_last_batch():
    y = torch.arange(10).repeat(7)  # 70 images
    X = torch.zeros(70, 1, 28, 28)
    X[:, 0, 0, 0] = y.float()
    X[:5, 0, 0, 0] = (y[:5] + 1).float() % 10  # the first 5 are predicted wrongly
    X[-1, 0, 0, 0] = (y[-1] + 1).float() % 10  # and the last, alone in its batch
    error = validation_error(Fixed(), batches(X, y, 23))  # batches of 23, 23, 23, 1
    assert error == pytest.approx(6 / 70)  # d2l's mean of batch means would say 0.30


def test_prepare_model_refuses_lazy_layers_and_uses_channels_last_on_the_cpu():
    model = d2l.LeNet(lr=0.1)
    with pytest.raises(ValueError, match="apply_init"):
        prepare_model(model)
    model.apply_init([torch.zeros(2, 1, 28, 28)], d2l.init_cnn)
    model = prepare_model(model)
    conv = model.net[3].weight  # 16 x 6 x 5 x 5: the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()


def test_train_epoch_lowers_the_loss_like_the_book_loop_and_same_results():
    torch.manual_seed(0)
    X = torch.rand(256, 1, 28, 28)
    y = (X.mean(dim=(1, 2, 3)) > X.mean()).long()  # learnable: bright vs dark

    def fresh():
        torch.manual_seed(1)
        model = d2l.LeNet(lr=0.9)
        model.apply_init([X[:8]], d2l.init_cnn)
        return model

    lean = prepare_model(fresh())
    optimizer = lean.configure_optimizers()
    losses = [train_epoch(lean, optimizer, batches(X, y, 32)) for _ in range(15)]
    assert losses[-1] < losses[0] * 0.9

    # the same steps as d2l's loop (plain layout, one SGD step per batch) give the same
    # weights, up to float rounding: the layout and bookkeeping change nothing else
    book = fresh()
    optimizer = book.configure_optimizers()
    for _ in range(15):
        for xb, yb in batches(X, y, 32):
            loss = book.loss(book(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for a, b in zip(lean.parameters(), book.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_empty_loaders_are_an_error_not_a_division_by_zero():
    model = prepare_model(Fixed())
    with pytest.raises(ValueError, match="no image"):
        validation_error(model, [])
    lenet = d2l.LeNet()
    lenet.apply_init([torch.zeros(2, 1, 28, 28)], d2l.init_cnn)
    with pytest.raises(ValueError, match="no batch"):
        train_epoch(lenet, lenet.configure_optimizers(), [])
