"""Finding, staging and loading Fashion-MNIST offline."""
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from d2l_hpo.lesson import data
from d2l_hpo.lesson.data import (FashionMNISTInMemory, FashionMNISTNotFoundError, FILES,
                                 find_fashion_mnist, is_staged, stage_fashion_mnist)

pytestmark = pytest.mark.slow

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def write_fake_idx_folder(folder: Path, fill: int = 7) -> Path:
    """Four gzipped idx files with the real headers and sizes, every pixel = fill."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (magic, count, item_bytes) in FILES.items():
        header = [magic, count] + ([28, 28] if item_bytes > 1 else [])
        body = np.full(count * item_bytes, fill if item_bytes > 1 else 3, np.uint8)
        with gzip.open(folder / f"{stem}.gz", "wb", compresslevel=1) as f:
            f.write(np.array(header, ">i4").tobytes() + body.tobytes())
    return folder


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env var, no ../data, an empty 'Debian' folder, a private cache."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    work = tmp_path / "work" / "notebooks"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_stages_a_fake_debian_folder_once_and_reuses_it(isolated, monkeypatch):
    fake = write_fake_idx_folder(isolated / "fake-debian")
    monkeypatch.setattr(data, "DEBIAN_DIR", fake)
    root = find_fashion_mnist(download=False)
    assert root == data.default_cache_root()
    assert is_staged(root)
    raw = root / "FashionMNIST" / "raw"
    stamp = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    assert find_fashion_mnist(download=False) == root
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == stamp
    X, y = data.load_fashion_mnist(train=False)
    assert X.shape == (10_000, 1, 28, 28) and torch.allclose(X[0, 0, 0, 0], torch.tensor(7 / 255))
    assert set(y.tolist()) == {3}


def test_an_incomplete_staged_file_is_staged_again(isolated, monkeypatch):
    fake = write_fake_idx_folder(isolated / "fake-debian")
    monkeypatch.setattr(data, "DEBIAN_DIR", fake)
    root = find_fashion_mnist(download=False)
    victim = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    with open(victim, "r+b") as f:
        f.truncate(1000)  # as if a copy had been interrupted
    assert not is_staged(root)
    assert find_fashion_mnist(download=False) == root and is_staged(root)


def test_explicit_path_and_env_var_come_before_debian(isolated, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", write_fake_idx_folder(isolated / "deb", fill=1))
    mine = write_fake_idx_folder(isolated / "mine", fill=2)
    assert find_fashion_mnist(mine, download=False) == mine
    assert is_staged(mine)
    env = write_fake_idx_folder(isolated / "env", fill=3)
    monkeypatch.setenv(data.ENV_VAR, str(env))
    assert find_fashion_mnist(download=False) == env


def test_d2l_convention_folder_is_used_in_place(isolated, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", write_fake_idx_folder(isolated / "deb"))
    staged = stage_fashion_mnist(isolated / "work" / "data")  # = ../data from notebooks/
    assert is_staged(staged)
    monkeypatch.setattr(data, "DEBIAN_DIR", isolated / "gone")
    assert find_fashion_mnist(download=False).resolve() == staged.resolve()


def test_missing_data_gives_one_clear_error(isolated):
    with pytest.raises(FashionMNISTNotFoundError) as info:
        find_fashion_mnist(download=False)
    message = str(info.value)
    assert str(isolated / "no-debian") in message  # resolved paths are shown
    assert str((isolated / "work" / "data").resolve()) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert data.ENV_VAR in message and "train-images-idx3-ubyte.gz" in message


def test_a_failed_download_is_reported_in_the_same_error(isolated, monkeypatch):
    def offline(root):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error>")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(FashionMNISTNotFoundError, match="download failed: Error downloading"):
        find_fashion_mnist()


def test_stages_the_real_debian_files_and_matches_torchvision(isolated, monkeypatch):
    assert DEBIAN.exists(), "install Debian's dataset-fashion-mnist (make test does as root)"
    monkeypatch.setattr(data, "DEBIAN_DIR", DEBIAN)
    root = stage_fashion_mnist(isolated / "work" / "data")
    import torchvision
    from torchvision import transforms

    stock = torchvision.datasets.FashionMNIST(root=str(root), train=False, download=False,
                                              transform=transforms.ToTensor())
    mem = FashionMNISTInMemory(batch_size=32, path=root)
    assert mem.val.X.shape == (10_000, 1, 28, 28) and mem.train.X.shape[0] == 60_000
    assert mem.train.X.dtype == torch.float32
    assert 0.0 <= float(mem.train.X.min()) and float(mem.train.X.max()) <= 1.0
    for i in (0, 1234, 9999):
        image, label = stock[i]
        assert torch.equal(mem.val.X[i], image) and int(mem.val.y[i]) == label


def test_in_memory_module_has_d2ls_interface_and_a_seeded_subset(isolated, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", write_fake_idx_folder(isolated / "deb"))
    a = FashionMNISTInMemory(batch_size=100, fraction=0.01, seed=1)
    b = FashionMNISTInMemory(batch_size=100, fraction=0.01, seed=1)
    assert len(a.train) == 600 and len(a.val) == 100
    loader = a.train_dataloader()
    assert len(loader) == 6
    X, y = next(iter(loader))
    assert X.shape == (100, 1, 28, 28) and y.shape == (100,) and y.dtype == torch.int64
    assert len(a.val_dataloader()) == 1 and a.get_dataloader(False) is not None
    with pytest.raises(ValueError, match="fraction"):
        FashionMNISTInMemory(fraction=0)
    del b


def test_subset_indices_depend_on_the_seed(isolated, monkeypatch):
    folder = isolated / "deb"
    folder.mkdir()
    for stem, (magic, count, item_bytes) in FILES.items():  # every label = index % 10
        header = [magic, count] + ([28, 28] if item_bytes > 1 else [])
        body = (np.zeros(count * item_bytes, np.uint8) if item_bytes > 1
                else (np.arange(count) % 10).astype(np.uint8))
        with gzip.open(folder / f"{stem}.gz", "wb", compresslevel=1) as f:
            f.write(np.array(header, ">i4").tobytes() + body.tobytes())
    monkeypatch.setattr(data, "DEBIAN_DIR", folder)
    labels = lambda seed: FashionMNISTInMemory(fraction=0.001, seed=seed).train.y.tolist()
    assert labels(0) == labels(0)
    assert labels(0) != labels(1)


def test_batches_kept_on_a_device_are_the_host_loaders_batches(isolated, monkeypatch):
    """The GPU path (data resident on the device, batches cut there) draws exactly the
    batches of the host DataLoader, epoch after epoch: checked with device="cpu"."""
    monkeypatch.setattr(data, "DEBIAN_DIR", write_fake_idx_folder(isolated / "deb"))
    host = FashionMNISTInMemory(batch_size=64, fraction=0.02, seed=3)
    resident = FashionMNISTInMemory(batch_size=64, fraction=0.02, seed=3, device="cpu")
    assert resident.device == torch.device("cpu") and host.device is None
    for _ in range(2):  # the shuffle of each epoch
        for loader in ("train_dataloader", "val_dataloader"):
            a, b = list(getattr(host, loader)()), list(getattr(resident, loader)())
            assert len(a) == len(b) == len(getattr(resident, loader)()) > 1
            for (Xa, ya), (Xb, yb) in zip(a, b):
                assert torch.equal(Xa, Xb) and torch.equal(ya, yb)
    assert len(b[-1][1]) == len(resident.val) % 64 or len(b[-1][1]) == 64  # a short last batch


def test_a_path_that_does_not_exist_is_an_error_and_nothing_is_created(isolated, monkeypatch):
    typo = isolated / "typo" / "fashion"
    with pytest.raises(FashionMNISTNotFoundError, match=r"path=.*typo/fashion.*does not exist"):
        find_fashion_mnist(typo, download=False)
    monkeypatch.setenv(data.ENV_VAR, str(typo))
    with pytest.raises(FashionMNISTNotFoundError, match=r"\$D2L_HPO_DATA=.*does not exist"):
        find_fashion_mnist(download=False)
    assert not (isolated / "typo").exists()


def test_the_cli_refuses_a_data_folder_that_does_not_exist(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "d2l_hpo", "run", "--data", "nonexistent",
                           "--trials", "1", "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no data copied
