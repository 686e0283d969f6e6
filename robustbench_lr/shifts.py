"""Natural distribution shifts (OODRobustBench, ICML 2024): CIFAR-10 models on new test sets.

A robustness claim about random perturbations says nothing of images drawn afresh from the same
classes; these test sets measure that:
- `cifar10.1` (Recht et al. 2019): 2,000 new CIFAR-10-like images, the v6 `.npy` pair under
  `<data-root>/CIFAR-10.1/` (`cifar10.1_v6_data.npy` uint8 N x 32 x 32 x 3,
  `cifar10.1_v6_labels.npy`);
- `cinic10` (Darlow et al. 2018): CIFAR-10's classes from ImageNet, downsampled to 32 x 32:
  the test split's image folders `<data-root>/CINIC-10/test/<class>/*.png`.
Both label the 10 CIFAR-10 classes in CIFAR-10's (alphabetical) order. `--download` fetches
them where there is a network (torchvision's downloader); nothing here reads a pickle.

    >>> x, y = load_shift("cifar10.1", "data", n=500)      # N x 3 x 32 x 32 in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustbench_lr.errors import RobustbenchLRError
from robustbench_lr.target import uniform_subset

# CIFAR-10's classes in label order; CINIC-10's class folders carry these names.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class ShiftError(RobustbenchLRError, ValueError):
    """A missing or malformed shifted test set: one line naming the file and --data-root."""


@dataclass(frozen=True)
class Shift:
    """A shifted test set: its folder under --data-root, the dataset whose models it tests,
    how to count and read it, and where to download it from."""

    folder: str
    dataset: str
    count: Callable[[Path], int]
    read: Callable[[Path, np.ndarray], tuple[torch.Tensor, torch.Tensor]]
    urls: tuple[str, ...]
    archive: bool = False


def _refetch(root: Path) -> str:
    """The way out of a damaged set: `--download` fetches only a folder that is not there."""
    return f"(--data-root {root.parent}); remove {root} and --download fetches it again"


def _missing(path: Path, root: Path) -> ShiftError:
    """`path` is not there: `--download` fetches it, once a partial `root` is out of the way."""
    if root.exists():
        return ShiftError(f"{path} is missing {_refetch(root)}")
    return ShiftError(f"{path} is missing (--data-root {root.parent}); --download fetches it")


def _npy(path: Path, root: Path) -> np.ndarray:
    if not path.is_file():
        raise _missing(path, root)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ShiftError(f"{path} is truncated or not a .npy file: {err} {_refetch(root)}") from err


def _cifar101_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    data = _npy(root / "cifar10.1_v6_data.npy", root)
    labels = _npy(root / "cifar10.1_v6_labels.npy", root)
    if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or len(data) != len(labels):
        raise ShiftError(
            f"{root / 'cifar10.1_v6_data.npy'} holds {data.dtype} {data.shape}, expected uint8 "
            f"({len(labels)}, 32, 32, 3) as cifar10.1_v6_labels.npy says: truncated? "
            f"{_refetch(root)}"
        )
    return data, labels


def _cifar101_read(root: Path, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    data, labels = _cifar101_arrays(root)
    x = torch.from_numpy(np.ascontiguousarray(data[index])).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(np.asarray(labels[index]).astype(np.int64))


def _cinic_files(root: Path) -> list[tuple[Path, int]]:
    test = root / "test"
    if not test.is_dir():
        raise _missing(test, root)
    files = [
        (path, label)
        for label, name in enumerate(CIFAR10_CLASSES)
        for path in sorted((test / name).glob("*.png"))
    ]
    if not files:
        raise ShiftError(
            f"{test} holds no <class>/*.png images of {', '.join(CIFAR10_CLASSES)} {_refetch(root)}"
        )
    return files


def _cinic_read(root: Path, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    files = _cinic_files(root)
    images, labels = [], []
    for i in index:
        path, label = files[int(i)]
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise ShiftError(f"{path} is not a readable PNG image: {err} {_refetch(root)}") from err
        if array.shape != (32, 32, 3):
            raise ShiftError(
                f"{path} is {array.shape[1]} x {array.shape[0]}, expected 32 x 32 {_refetch(root)}"
            )
        images.append(array)
        labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.tensor(labels, dtype=torch.int64)


CIFAR101_URL = "https://github.com/modestyachts/CIFAR-10.1/raw/master/datasets/"
SHIFTS: dict[str, Shift] = {
    "cifar10.1": Shift(
        "CIFAR-10.1",
        "cifar10",
        lambda root: len(_cifar101_arrays(root)[1]),
        _cifar101_read,
        (f"{CIFAR101_URL}cifar10.1_v6_data.npy", f"{CIFAR101_URL}cifar10.1_v6_labels.npy"),
    ),
    "cinic10": Shift(
        "CINIC-10",
        "cifar10",
        lambda root: len(_cinic_files(root)),
        _cinic_read,
        ("https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",),
        archive=True,
    ),
}


def shift(name: str) -> Shift:
    """The registered shift `name`; an unknown one lists the valid ones."""
    if name not in SHIFTS:
        raise ShiftError(f"unknown distribution shift {name!r}; valid choices: {', '.join(SHIFTS)}")
    return SHIFTS[name]


def download(name: str, data_root: str | Path) -> None:
    """Fetch shift `name` into `<data-root>/<folder>` (needs a network; tests never call it)."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    spec, root = shift(name), Path(data_root) / shift(name).folder
    fetch = download_and_extract_archive if spec.archive else download_url
    for url in spec.urls:
        fetch(url, str(root))


def load_shift(
    name: str, data_root: str | Path, n: int | None = None, seed: int = 0, fetch: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images of shift `name` (all when None; a uniform draw from `seed` otherwise, as
    `target.uniform_subset` draws test subsets), N x 3 x 32 x 32 floats in [0, 1], and their
    CIFAR-10 labels. `fetch` downloads the set first when its folder is missing."""
    spec = shift(name)
    root = Path(data_root) / spec.folder
    if fetch and not root.exists():
        download(name, data_root)
    total = spec.count(root)
    index = np.arange(total) if n is None or n >= total else uniform_subset(total, n, seed).numpy()
    return spec.read(root, np.sort(index))
