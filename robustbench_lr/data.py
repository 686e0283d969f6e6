"""Datasets as tensors in [0, 1] behind one registry.

`load(name, ...)` returns a `Data` with float32 NCHW images in [0, 1] and int64 labels. The
normalization constants travel in `DatasetSpec` and become the model's first layer, so every
attack sees the same [0, 1] input space.

CIFAR and SVHN use torchvision for the download (with its checksums) and read the files in their
real on-disk formats here: CIFAR-100's 20 coarse labels are not exposed by torchvision, and the
CIFAR python pickles are read with a restricted unpickler instead of plain `pickle.load`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustbench_lr.registry import Registry

DEFAULT_DATA_ROOT = "data"


class DatasetError(RuntimeError):
    """A dataset is missing or malformed; the message says what and which flag fixes it."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about its data: shape, classes and normalization."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False  # pad-4 random crop + horizontal flip (CIFAR train only)


@dataclass
class Data:
    """Train and test tensors of one dataset: images float32 NCHW in [0, 1], labels int64."""

    spec: DatasetSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class LoadOptions:
    """Where and how to find files; only the file-backed datasets use these."""

    data_root: str = DEFAULT_DATA_ROOT
    download: bool = False
    svhn_extra: bool = False


Loader = Callable[[LoadOptions], Data]
DATASETS: Registry[Loader] = Registry("dataset")


def dataset_names() -> list[str]:
    """Registered names plus the `npz:PATH` form, for help texts."""
    return [*DATASETS.names(), "npz:PATH"]


def load(
    name: str,
    options: LoadOptions | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> Data:
    """Load a dataset by registry name (or `npz:PATH`) and apply the stratified limits."""
    options = options or LoadOptions()
    if name.startswith("npz:"):
        data = load_npz(Path(name[4:]))
    else:
        data = DATASETS.get(name)(options)
    if train_limit is not None:
        idx = stratified_subset(data.y_train, train_limit)
        data.x_train, data.y_train = data.x_train[idx], data.y_train[idx]
    if test_limit is not None:
        idx = stratified_subset(data.y_test, test_limit)
        data.x_test, data.y_test = data.x_test[idx], data.y_test[idx]
    return data


def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a deterministic subset of size `n` keeping class proportions.

    Per class, a seeded permutation; classes get `round(n * share)` slots by largest remainder,
    so the result is exactly `n` long and the same for the same labels and seed.
    """
    total = len(labels)
    if n >= total:
        return torch.arange(total)
    if n <= 0:
        raise ValueError(f"a limit must be positive, got {n}")
    gen = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * n / total
    take = quota.floor().long()
    remainder_order = torch.argsort(quota - take, descending=True, stable=True)
    take[remainder_order[: n - int(take.sum())]] += 1
    picked = []
    for cls, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        picked.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.sort(torch.cat(picked)).values


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of training images (the model's normalization layer)."""
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


@DATASETS.register("digits")
def load_digits(options: LoadOptions) -> Data:
    """scikit-learn's 8x8 digits (ships with the package): the offline default.

    Values 0..16 are scaled to [0, 1]; a fixed stratified 75/25 split (random_state=0).
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    x_train = torch.from_numpy(x_tr)
    mean, std = _channel_stats(x_train)
    spec = DatasetSpec("digits", 1, 8, 10, mean, std, augment=False)
    return Data(
        spec, x_train, torch.from_numpy(y_tr), torch.from_numpy(x_te), torch.from_numpy(y_te)
    )


# ---- CIFAR (python pickles) -------------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs builtins and numpy arrays.

    The CIFAR python format is pickle; this refuses anything else a tampered file might carry.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle protocol
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_cifar_batch(path: Path) -> dict:
    with path.open("rb") as handle:
        return _NumpyOnlyUnpickler(handle, encoding="latin1").load()


def _missing(name: str, where: Path) -> DatasetError:
    return DatasetError(
        f"{name} not found under {where}: pass --data-root DIR pointing at it, "
        f"or add --download to fetch it (needs network)"
    )


def _read_cifar(
    tv_class: type, name: str, label_key: str, num_classes: int, stats, options: LoadOptions
) -> Data:
    root = Path(options.data_root)
    folder = root / tv_class.base_folder
    if options.download and not folder.exists():
        tv_class(root=str(root), train=True, download=True)  # torchvision verifies checksums
    files = {
        "train": [f for f, _ in tv_class.train_list],
        "test": [f for f, _ in tv_class.test_list],
    }
    if not all((folder / f).exists() for split in files.values() for f in split):
        raise _missing(name, folder)
    arrays = {}
    for split, names in files.items():
        xs, ys = [], []
        for fname in names:
            entry = _read_cifar_batch(folder / fname)
            if label_key not in entry:
                raise DatasetError(f"{folder / fname} has no {label_key!r} field")
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[label_key], dtype=np.int64))
        arrays[split] = (np.concatenate(xs), np.concatenate(ys))
    spec = DatasetSpec(name, 3, 32, num_classes, *stats, augment=True)
    return Data(
        spec,
        torch.from_numpy(arrays["train"][0]).float().div_(255),
        torch.from_numpy(arrays["train"][1]),
        torch.from_numpy(arrays["test"][0]).float().div_(255),
        torch.from_numpy(arrays["test"][1]),
    )


_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


@DATASETS.register("cifar10")
def load_cifar10(options: LoadOptions) -> Data:
    """CIFAR-10 from torchvision's `cifar-10-batches-py` folder under --data-root."""
    from torchvision.datasets import CIFAR10

    return _read_cifar(CIFAR10, "cifar10", "labels", 10, _CIFAR10_STATS, options)


@DATASETS.register("cifar100")
def load_cifar100(options: LoadOptions) -> Data:
    """CIFAR-100 with its 100 fine labels (Table 9)."""
    from torchvision.datasets import CIFAR100

    return _read_cifar(CIFAR100, "cifar100", "fine_labels", 100, _CIFAR100_STATS, options)


@DATASETS.register("cifar100-coarse")
def load_cifar100_coarse(options: LoadOptions) -> Data:
    """CIFAR-100 with its 20 coarse super-class labels (Tables 1, 5a, 7c)."""
    from torchvision.datasets import CIFAR100

    return _read_cifar(CIFAR100, "cifar100-coarse", "coarse_labels", 20, _CIFAR100_STATS, options)


# ---- SVHN (.mat) ------------------------------------------------------------------------------


def _read_svhn_split(root: Path, split: str, options: LoadOptions) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat
    from torchvision.datasets import SVHN

    filename = SVHN.split_list[split][1]
    path = root / filename
    if options.download and not path.exists():
        SVHN(root=str(root), split=split, download=True)
    if not path.exists():
        raise _missing(f"svhn ({filename})", root)
    mat = loadmat(str(path))
    x = np.transpose(mat["X"], (3, 2, 0, 1))  # HWCN -> NCHW, as torchvision does
    y = mat["y"].astype(np.int64).squeeze(1)
    y[y == 10] = 0  # SVHN stores the digit 0 as label 10
    return x, y


@DATASETS.register("svhn")
def load_svhn(options: LoadOptions) -> Data:
    """SVHN train (plus `extra` with --svhn-extra) and test, from torchvision's .mat files."""
    root = Path(options.data_root)
    splits = ["train", "extra"] if options.svhn_extra else ["train"]
    parts = [_read_svhn_split(root, s, options) for s in splits]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_svhn_split(root, "test", options)
    spec = DatasetSpec("svhn", 3, 32, 10, *_SVHN_STATS, augment=False)
    return Data(
        spec,
        torch.from_numpy(np.ascontiguousarray(x_tr)).float().div_(255),
        torch.from_numpy(y_tr),
        torch.from_numpy(np.ascontiguousarray(x_te)).float().div_(255),
        torch.from_numpy(y_te),
    )


# ---- a user's own npz -------------------------------------------------------------------------

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_images(path: Path, key: str, x: np.ndarray) -> torch.Tensor:
    if x.ndim != 4:
        raise DatasetError(
            f"{path}: {key} must be 4-D (N,H,W,C uint8 or N,C,H,W float), got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        if x.shape[3] not in (1, 3):
            raise DatasetError(
                f"{path}: uint8 {key} must be NHWC with 1 or 3 channels, got shape {x.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float().div_(255)
    if x.dtype in (np.float32, np.float64):
        if x.shape[1] not in (1, 3):
            raise DatasetError(
                f"{path}: float {key} must be NCHW with 1 or 3 channels, got shape {x.shape}"
            )
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DatasetError(
                f"{path}: float {key} must lie in [0, 1], got range [{x.min()}, {x.max()}]"
            )
        return torch.from_numpy(x.astype(np.float32))
    raise DatasetError(
        f"{path}: {key} has dtype {x.dtype}; expected uint8 (NHWC) or float32/float64 (NCHW)"
    )


def _npz_labels(path: Path, key: str, y: np.ndarray, n: int) -> torch.Tensor:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{path}: {key} must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}"
        )
    if len(y) != n:
        raise DatasetError(f"{path}: {key} has {len(y)} labels but its images have {n}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{path}: {key} has negative label {y.min()}; labels must be 0..K-1")
    return torch.from_numpy(y.astype(np.int64))


def load_npz(path: Path) -> Data:
    """A user's own data: arrays x_train, y_train, x_test, y_test (validated, no pickles)."""
    if not path.exists():
        raise DatasetError(f"npz file {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DatasetError(f"{path} is not a readable .npz archive: {err}") from None
    with archive:
        missing = [k for k in _NPZ_KEYS if k not in archive.files]
        if missing:
            raise DatasetError(f"{path}: missing arrays {missing}; expected {list(_NPZ_KEYS)}")
        arrays = {k: archive[k] for k in _NPZ_KEYS}
    x_train = _npz_images(path, "x_train", arrays["x_train"])
    x_test = _npz_images(path, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{path}: x_train images {tuple(x_train.shape[1:])} and x_test images {tuple(x_test.shape[1:])} differ in shape"
        )
    if x_train.shape[2] != x_train.shape[3]:
        raise DatasetError(f"{path}: images must be square, got {tuple(x_train.shape[2:])}")
    y_train = _npz_labels(path, "y_train", arrays["y_train"], len(x_train))
    y_test = _npz_labels(path, "y_test", arrays["y_test"], len(x_test))
    num_classes = int(y_train.max()) + 1
    if len(y_test) and int(y_test.max()) >= num_classes:
        raise DatasetError(
            f"{path}: y_test has label {int(y_test.max())} but y_train only has labels 0..{num_classes - 1}"
        )
    mean, std = _channel_stats(x_train)
    spec = DatasetSpec(f"npz:{path}", x_train.shape[1], x_train.shape[2], num_classes, mean, std)
    return Data(spec, x_train, y_train, x_test, y_test)


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard CIFAR augmentation, batched: pad 4 (zeros), random 32x32 crop, random h-flip.

    Per-sample offsets come from `generator` so a resumed epoch replays the same crops.
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)
    cols = dx[:, None] + torch.arange(w)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
