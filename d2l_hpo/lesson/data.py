"""Fashion-MNIST, found offline when possible, and held in memory for training.

Finding the files (``find_fashion_mnist``) tries, in order: an explicit path,
the ``D2L_HPO_DATA`` environment variable, d2l's convention ``../data``
(relative to the working directory), Debian's ``dataset-fashion-mnist``
package, and finally torchvision's download. Whatever it finds is staged once
in torchvision's layout ``ROOT/FashionMNIST/raw/`` (decompressed), which is
what ``d2l.FashionMNIST(root=ROOT)`` and ``torchvision.datasets.FashionMNIST``
read without downloading anything.

``FashionMNISTInMemory`` is a drop-in for ``d2l.FashionMNIST`` in d2l's
``Trainer``/``HPOTrainer`` that keeps the images as one tensor, so a batch is a
slice instead of 64 PIL conversions.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np

from d2l_hpo.common.files import atomic_file

ENV_VAR = "D2L_HPO_DATA"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
D2L_CONVENTION = Path("..") / "data"

# file stem -> (idx magic number, number of items, bytes per item)
FILES = {
    "train-images-idx3-ubyte": (2051, 60_000, 28 * 28),
    "train-labels-idx1-ubyte": (2049, 60_000, 1),
    "t10k-images-idx3-ubyte": (2051, 10_000, 28 * 28),
    "t10k-labels-idx1-ubyte": (2049, 10_000, 1),
}
TEXT_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot"]


class FashionMNISTNotFoundError(FileNotFoundError):
    """Fashion-MNIST is in none of the places searched and could not be downloaded."""


def default_cache_root() -> Path:
    """Where files found elsewhere are staged when no root is given."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "d2l_hpo" / "data"


def _header_ok(path: Path, magic: int, count: int, item_bytes: int) -> bool:
    """True when ``path`` is a complete, decompressed idx file."""
    header_len = 8 if item_bytes == 1 else 16
    try:
        if path.stat().st_size != header_len + count * item_bytes:
            return False
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(8), dtype=">i4")
    except OSError:
        return False
    return int(header[0]) == magic and int(header[1]) == count


def is_staged(root: str | os.PathLike) -> bool:
    """True when ``root/FashionMNIST/raw`` holds all four complete idx files."""
    raw = Path(root) / "FashionMNIST" / "raw"
    return all(_header_ok(raw / stem, *spec) for stem, spec in FILES.items())


def _source_files(folder: Path) -> dict[str, Path] | None:
    """The four idx files in ``folder`` (plain or .gz), or None if any is missing."""
    found = {}
    for stem in FILES:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            return None
    return found


def _stage(files: dict[str, Path], root: Path) -> Path:
    """Copy/decompress ``files`` into ``root/FashionMNIST/raw`` atomically per file."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem, src in files.items():
        dst = raw / stem
        if _header_ok(dst, *FILES[stem]):
            continue
        # through a temporary name: an interrupted copy never looks complete
        with atomic_file(dst, "wb") as out:
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as f:
                shutil.copyfileobj(f, out, length=1 << 20)
        if not _header_ok(dst, *FILES[stem]):
            dst.unlink()
            raise FashionMNISTNotFoundError(
                f"{src} is not a complete Fashion-MNIST idx file "
                f"(expected {FILES[stem][1]} items); replace it with the original file."
            )
    return root


def _candidates(path) -> list[tuple[str, Path]]:
    places = []
    if path is not None:
        places.append(("the path argument", Path(path)))
    if os.environ.get(ENV_VAR):
        places.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR])))
    places.append(("d2l's ../data", D2L_CONVENTION))
    places.append(("Debian's dataset-fashion-mnist", DEBIAN_DIR))
    return places


def find_fashion_mnist(path: str | os.PathLike | None = None, *,
                       root: str | os.PathLike | None = None,
                       download: bool = True) -> Path:
    """Return a root folder whose ``FashionMNIST/raw`` holds the four idx files.

    :param path: a folder to look in first: either the four idx files (plain or
        ``.gz``) or a root with ``FashionMNIST/raw`` inside; default None
    :param root: where to stage files found elsewhere; default: ``path`` if
        given, else ``$D2L_HPO_DATA``, else ``~/.cache/d2l_hpo/data``
    :param download: try torchvision's download when nothing is found; default True
    :raises FashionMNISTNotFoundError: naming every place searched and the fixes, or
        naming ``path`` (or ``$D2L_HPO_DATA``) when that folder does not exist
    """
    named = [(f"path={str(path)!r}", path)] if path is not None else []
    if os.environ.get(ENV_VAR):
        named.append((f"${ENV_VAR}={os.environ[ENV_VAR]!r}", os.environ[ENV_VAR]))
    for label, folder in named:  # a folder the user names must be there: never create it
        if not Path(folder).expanduser().is_dir():
            raise FashionMNISTNotFoundError(
                f"{label}: {Path(folder).expanduser().resolve()} "
                + ("is a file, not a folder" if Path(folder).expanduser().exists()
                   else "does not exist")
                + "; check it for a typo, or name the folder that holds the four "
                "Fashion-MNIST idx files (nothing was created or copied)")
    if path is not None:
        path = Path(path).expanduser()
    if root is None:
        root = path or os.environ.get(ENV_VAR) or default_cache_root()
    root = Path(root)
    searched = []
    for label, place in _candidates(path):
        for folder in (place / "FashionMNIST" / "raw", place):
            searched.append(f"{folder.resolve()} ({label})")
            if folder.name == "raw" and is_staged(place):
                return place  # already in torchvision's layout: use it where it is
            files = _source_files(folder)
            if files is not None:
                if is_staged(root):
                    return root
                return _stage(files, root)
    if is_staged(root):
        return root
    searched.append(f"{root.resolve()} (staging root)")
    if download:
        searched.append("torchvision's download")
        try:
            _download(root)
            if is_staged(root):
                return root
        except Exception as err:  # any network or file error: report it in our own words
            searched[-1] += f" failed: {str(err).splitlines()[0]}"
    raise FashionMNISTNotFoundError(
        "Fashion-MNIST was not found. Looked in:\n  - " + "\n  - ".join(searched)
        + "\nFix it in one of two ways:\n"
        "  1. on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist\n"
        f"  2. put the four idx files ({', '.join(f'{s}.gz' for s in FILES)}) "
        f"in a folder and pass it as path=... or set {ENV_VAR}=/that/folder"
    )


def _download(root: Path) -> None:
    import torchvision
    torchvision.datasets.FashionMNIST(root=str(root), train=True, download=True)
    torchvision.datasets.FashionMNIST(root=str(root), train=False, download=True)


def stage_fashion_mnist(root: str | os.PathLike = D2L_CONVENTION,
                        path: str | os.PathLike | None = None) -> Path:
    """Make ``root/FashionMNIST/raw`` complete, so that ``d2l.FashionMNIST(root=root)``
    works offline. Re-uses what is already there.

    :param root: the folder to fill; default d2l's ``../data``
    :param path: where to look first for the files; default None
    """
    root = Path(root)
    if is_staged(root):
        return root
    found = find_fashion_mnist(path, root=root)
    if found.resolve() != root.resolve():
        _stage({stem: found / "FashionMNIST" / "raw" / stem for stem in FILES}, root)
    return root


def _read_idx(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        magic = int(np.frombuffer(f.read(4), dtype=">i4")[0])
        ndim = magic & 0xFF
        shape = tuple(int(n) for n in np.frombuffer(f.read(4 * ndim), dtype=">i4"))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def load_fashion_mnist(train: bool, path=None):
    """Images as a float tensor N×1×28×28 in [0, 1] and labels as int64."""
    import torch
    raw = find_fashion_mnist(path) / "FashionMNIST" / "raw"
    prefix = "train" if train else "t10k"
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte")
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    X = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255)
    y = torch.from_numpy(labels.astype(np.int64))
    return X, y


class _BatchIndexed:
    """A dataset whose ``__getitem__`` takes a whole list of indices at once."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, indices):
        return self.X[indices], self.y[indices]


class _ResidentBatches:
    """Minibatches cut from tensors that stay on one device (a GPU): one index per
    batch on the device, nothing copied from the host. Shuffled with ``generator``
    exactly as a ``RandomSampler`` with that generator would (one ``randperm`` per
    epoch), so the batches are the same as the host loader's; in order without one."""

    def __init__(self, data: _BatchIndexed, batch_size: int, generator=None):
        self.data, self.batch_size, self.generator = data, batch_size, generator

    def __len__(self):
        return -(-len(self.data) // self.batch_size)

    def __iter__(self):
        import torch

        X, y, n = self.data.X, self.data.y, len(self.data)
        if self.generator is None:
            for start in range(0, n, self.batch_size):
                yield X[start:start + self.batch_size], y[start:start + self.batch_size]
            return
        order = torch.randperm(n, generator=self.generator).to(X.device)
        for start in range(0, n, self.batch_size):
            batch = order[start:start + self.batch_size]
            yield X[batch], y[batch]


class FashionMNISTInMemory:
    """Fashion-MNIST as in-memory tensors, with ``d2l.FashionMNIST``'s interface.

    :param batch_size: minibatch size; default 64
    :param fraction: keep this seeded random fraction of each split; default 1.0
    :param seed: seed of that subset and of the shuffling; default 0
    :param path: where to look first for the data; default None (see ``find_fashion_mnist``)
    :param device: keep both splits on this device (``"cuda"``) and cut the batches
        there, with the same seeded order; default None: host memory and a
        ``DataLoader``. Fashion-MNIST takes about 220 MB as float32.
    """

    def __init__(self, batch_size: int = 64, fraction: float = 1.0, seed: int = 0,
                 path=None, device=None):
        import torch
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.fraction, self.seed = int(batch_size), fraction, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.train = self._subset(*load_fashion_mnist(True, path))
        self.val = self._subset(*load_fashion_mnist(False, path))
        self.device = None if device is None else torch.device(device)
        if self.device is not None:
            for split in (self.train, self.val):
                split.X, split.y = split.X.to(self.device), split.y.to(self.device)

    def _subset(self, X, y):
        import torch
        if self.fraction < 1:
            n = max(1, int(round(len(y) * self.fraction)))
            keep = torch.randperm(len(y), generator=self.generator)[:n]
            X, y = X[keep], y[keep]
        return _BatchIndexed(X, y)

    def get_dataloader(self, train: bool):
        from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler
        data = self.train if train else self.val
        if self.device is not None:
            return _ResidentBatches(data, self.batch_size, self.generator if train else None)
        order = (RandomSampler(data, generator=self.generator) if train
                 else SequentialSampler(data))
        # batch_size=None + a BatchSampler: one fancy-index per batch, no per-image work
        return DataLoader(data, batch_size=None,
                          sampler=BatchSampler(order, self.batch_size, drop_last=False))

    def train_dataloader(self):
        return self.get_dataloader(train=True)

    def val_dataloader(self):
        return self.get_dataloader(train=False)

    def text_labels(self, indices):
        return [TEXT_LABELS[int(i)] for i in indices]
