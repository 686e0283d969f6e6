"""Datasets as tensors in [0, 1] behind one registry.

`load(name, ...)` returns a `Data` with float32 NCHW images in [0, 1] and int64 labels. The
normalization constants travel in `DatasetSpec` and become the model's first layer, so every
attack sees the same [0, 1] input space.

CIFAR and SVHN use torchvision for the download (with its checksums) and read the files in their
real on-disk formats here: CIFAR-100's 20 coarse labels are not exposed by torchvision, and the
CIFAR python pickles are read with a restricted unpickler instead of plain `pickle.load`.

Every `Data` carries a `fingerprint`, a sha256 of the content it was read from, so a checkpoint
can tell later whether "its" dataset still holds the images it was trained on
(`load_for_checkpoint`), and an npz is named by its content rather than its path
(`dataset_label`).
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import re
import time
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lr.errors import RobustbenchLRError
from robustbench_lr.files import file_digest as _read_digest
from robustbench_lr.registry import Registry

DEFAULT_DATA_ROOT = "data"


class DatasetError(RobustbenchLRError, RuntimeError):
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
    # sha256 of what the loader read, before any limit; "" for tensors assembled by hand.
    fingerprint: str = ""


@dataclass(frozen=True)
class LoadOptions:
    """Where and how to find files; only the file-backed datasets use these."""

    data_root: str = DEFAULT_DATA_ROOT
    download: bool = False
    svhn_extra: bool = False
    # Where a checkpoint's npz lies now, if not where training read it (same content only).
    npz: str | None = None


Loader = Callable[[LoadOptions], Data]


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its loader and what other parts of the suite need to know of it.

    `audit_eps` is the L∞ budget the audit checks the dataset's models at (None: the audit's
    default, the paper's 8/255). `other_labelling` names a registered dataset holding the same
    images in the same order under other labels: the transfer analysis' default target (Table
    7c), None when there is none.
    """

    loader: Loader
    audit_eps: float | None = None
    other_labelling: str | None = None
    # The L2 track's budget (RobustBench's L2 leaderboard: 0.5 on CIFAR's 32 x 32 x 3 images).
    l2_eps: float = 0.5


DATASETS: Registry[Dataset] = Registry("dataset")


def dataset_names() -> list[str]:
    """Registered names plus the `npz:PATH` form, for help texts."""
    return [*DATASETS.names(), "npz:PATH"]


def _npz_path(name: str) -> Path:
    return Path(name[len("npz:") :])


def load(
    name: str,
    options: LoadOptions | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> Data:
    """Load a dataset by registry name (or `npz:PATH`) and apply the stratified limits."""
    options = options or LoadOptions()
    if name.startswith("npz:"):
        data = load_npz(_npz_path(name))
    else:
        data = DATASETS.get(name).loader(options)
    if train_limit is not None:
        idx = stratified_subset(data.y_train, train_limit)
        data.x_train, data.y_train = data.x_train[idx], data.y_train[idx]
    if test_limit is not None:
        idx = stratified_subset(data.y_test, test_limit)
        data.x_test, data.y_test = data.x_test[idx], data.y_test[idx]
    return data


def l2_eps(name: str) -> float:
    """The L2 track's ε for a dataset (an npz file: CIFAR's 0.5)."""
    return 0.5 if name.startswith("npz:") else DATASETS.get(name).l2_eps


def dataset_label(name: str) -> str:
    """The name the suite shows and puts in folder and file names: no paths, only [A-Za-z0-9_.-].

    Registered names are already such names. An npz is known by its content, not by where it
    lies: `npz:/any/dir/my data.npz` is `npz-my_data-<first 8 hex of its sha256>`, so moving
    the file keeps its checkpoints and overwriting it with other images makes a new dataset.
    """
    if not name.startswith("npz:"):
        DATASETS.get(name)  # an unknown name lists the valid ones
        return name
    path = _npz_path(name)
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem).strip("_.")[:64] or "data"
    return f"npz-{stem}-{file_digest(path)[:8]}"


def load_for_checkpoint(
    meta: Mapping[str, Any],
    checkpoint: str | Path,
    options: LoadOptions | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> Data:
    """The dataset a checkpoint was trained on, refused if its content changed since training.

    An attack or analysis of a model on images it was not trained on would report numbers
    about another dataset without a word; meta.json's `data_fingerprint` makes that an error.
    Checkpoints from before fingerprints (or trained on hand-built tensors) load unchecked.
    The SVHN extra split follows the checkpoint's config: it is part of what was trained on.
    """
    cfg = meta["config"]
    options = replace(options or LoadOptions(), svhn_extra=bool(cfg.get("svhn_extra", False)))
    name = cfg["dataset"]
    if name.startswith("npz:"):
        name = _checkpoint_npz(meta, checkpoint, options.npz)
    data = load(name, options, train_limit, test_limit)
    check_same_content(meta.get("data_fingerprint"), data, name, checkpoint)
    return data


def _checkpoint_npz(meta: Mapping[str, Any], checkpoint: str | Path, given: str | None) -> str:
    """`npz:PATH` of a checkpoint's data: `given` if its content is the recorded one, else the
    path as training named it, else the absolute path training recorded (`npz_path`).

    Training names an npz as the user typed it, often relative to where it ran; the absolute
    path and the fingerprint let the checkpoint be read from any folder, or with the file moved.
    """
    recorded = meta.get("data_fingerprint") or ""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise DatasetError(f"npz file {path} does not exist")
        if recorded and file_digest(path) != recorded:
            raise DatasetError(
                f"--dataset npz:{path} holds other data than {checkpoint} was trained on "
                f"(fingerprint {file_digest(path)[:8]}, expected {recorded[:8]})"
            )
        return f"npz:{path}"
    named = _npz_path(meta["config"]["dataset"])
    places = [named, *([Path(meta["npz_path"])] if meta.get("npz_path") else [])]
    existing = [path for path in places if path.is_file()]
    for path in existing:
        if not recorded or file_digest(path) == recorded:
            return f"npz:{path}"
    if existing:
        return f"npz:{existing[0]}"  # the content check names the change
    where = " or ".join(map(str, dict.fromkeys(places)))
    raise DatasetError(
        f"{checkpoint} was trained on npz file {where}, which does not exist; pass --dataset "
        f"npz:PATH naming a file with the same content (fingerprint {recorded[:8]})"
    )


def npz_location(name: str) -> dict[str, str]:
    """meta.json's `npz_path`: the absolute path of an npz dataset (`_checkpoint_npz`)."""
    return {"npz_path": str(_npz_path(name).resolve())} if name.startswith("npz:") else {}


def check_same_content(recorded: str | None, data: Data, name: str, checkpoint: str | Path) -> None:
    """One-line DatasetError when `data` is not the content `checkpoint` was trained on."""
    if recorded and recorded != data.fingerprint:
        raise DatasetError(
            f"{_source(name)} changed since {checkpoint} was trained "
            f"(fingerprint {recorded[:8]} → {data.fingerprint[:8]}); retrain it or restore the "
            f"{'file' if name.startswith('npz:') else 'original files'}"
        )


def _source(name: str) -> str:
    return f"npz file {_npz_path(name)}" if name.startswith("npz:") else f"dataset {name}"


# ---- content digests --------------------------------------------------------------------------

# A cached digest is only trusted for a file last modified this long before it was hashed:
# a rewrite within the filesystem's timestamp granularity would otherwise keep size and mtime
# (git's "racily clean" rule).
_RACY_NS = 2_000_000_000
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _remember(key: tuple[str, int, int], digest: str, started_ns: int) -> str:
    if started_ns - key[2] > _RACY_NS:
        _DIGESTS[key] = digest
    return digest


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes, cached by (resolved path, size, mtime_ns).

    `dataset_label` runs wherever a checkpoint folder is named, so a large file is hashed once
    per process rather than on every call.
    """
    key = _stat_key(path)
    if key in _DIGESTS:
        return _DIGESTS[key]
    started = time.time_ns()
    return _remember(key, _read_digest(path), started)


def _read_hashed(path: Path) -> tuple[bytes, str]:
    """A file's bytes and their sha256: the digest is of exactly the bytes that get parsed."""
    key, started = _stat_key(path), time.time_ns()
    raw = path.read_bytes()
    return raw, _remember(key, hashlib.sha256(raw).hexdigest(), started)


def _files_digest(digests: list[tuple[str, str]]) -> str:
    """One digest of several files, from their names and digests in reading order."""
    combined = hashlib.sha256()
    for name, digest in digests:
        combined.update(f"{name}\0{digest}\n".encode())
    return combined.hexdigest()


def _array_digest(*arrays: np.ndarray) -> str:
    combined = hashlib.sha256()
    for array in arrays:
        combined.update(f"{array.dtype.str}{array.shape}".encode())
        combined.update(np.ascontiguousarray(array).tobytes())
    return combined.hexdigest()


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
    """Per-channel mean and std of training images (the model's normalization layer).

    A channel of one single pixel has no sample std; it gets 1, i.e. no scaling.
    """
    mean = x.mean(dim=(0, 2, 3))
    if x.numel() == x.shape[1]:
        std = torch.ones_like(mean)
    else:
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


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
        spec,
        x_train,
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te),
        _array_digest(bunch.images, bunch.target),
    )


# Digits images are nearly binary with wide margins: an N-LR digits ResNet18 keeps ~90% under
# IFSGM at 8/255, where every attack fails on the same examples and the audit's checks compare
# nothing. At 32/255 it is partly robust (IFSGM-20 ~17%, FGSM ~33%): the attacks disagree and
# the checks have something to measure.
# L2: CIFAR's 0.5 scaled by sqrt(64 / 3072) pixels and by digits' 4x larger L-inf budget (32/255).
DIGITS_L2_EPS = 0.5 * math.sqrt(64 / 3072) * 4
DATASETS.add("digits", Dataset(load_digits, audit_eps=32 / 255, l2_eps=DIGITS_L2_EPS))


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


def _read_cifar_batch(path: Path) -> tuple[dict, str]:
    """A batch file's contents and the sha256 of its bytes (read once for both)."""
    raw, digest = _read_hashed(path)
    return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load(), digest


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
    arrays, digests = {}, []
    for split, names in files.items():
        xs, ys = [], []
        for fname in names:
            entry, digest = _read_cifar_batch(folder / fname)
            digests.append((fname, digest))
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
        _files_digest(digests),
    )


_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


def load_cifar10(options: LoadOptions) -> Data:
    """CIFAR-10 from torchvision's `cifar-10-batches-py` folder under --data-root."""
    from torchvision.datasets import CIFAR10

    return _read_cifar(CIFAR10, "cifar10", "labels", 10, _CIFAR10_STATS, options)


DATASETS.add("cifar10", Dataset(load_cifar10))


def load_cifar100(options: LoadOptions) -> Data:
    """CIFAR-100 with its 100 fine labels (Table 9)."""
    from torchvision.datasets import CIFAR100

    return _read_cifar(CIFAR100, "cifar100", "fine_labels", 100, _CIFAR100_STATS, options)


DATASETS.add("cifar100", Dataset(load_cifar100, other_labelling="cifar100-coarse"))


def load_cifar100_coarse(options: LoadOptions) -> Data:
    """CIFAR-100 with its 20 coarse super-class labels (Tables 1, 5a, 7c)."""
    from torchvision.datasets import CIFAR100

    return _read_cifar(CIFAR100, "cifar100-coarse", "coarse_labels", 20, _CIFAR100_STATS, options)


DATASETS.add("cifar100-coarse", Dataset(load_cifar100_coarse, other_labelling="cifar100"))


# ---- SVHN (.mat) ------------------------------------------------------------------------------


def _read_svhn_split(
    root: Path, split: str, options: LoadOptions
) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    """Images NCHW, labels 0..9, and (file name, sha256) of one split's .mat file."""
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
    return x, y, (filename, file_digest(path))


def load_svhn(options: LoadOptions) -> Data:
    """SVHN train (plus `extra` with --svhn-extra) and test, from torchvision's .mat files."""
    root = Path(options.data_root)
    splits = ["train", "extra"] if options.svhn_extra else ["train"]
    parts = [_read_svhn_split(root, s, options) for s in splits]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te, test_digest = _read_svhn_split(root, "test", options)
    spec = DatasetSpec("svhn", 3, 32, 10, *_SVHN_STATS, augment=False)
    return Data(
        spec,
        torch.from_numpy(np.ascontiguousarray(x_tr)).float().div_(255),
        torch.from_numpy(y_tr),
        torch.from_numpy(np.ascontiguousarray(x_te)).float().div_(255),
        torch.from_numpy(y_te),
        _files_digest([*(p[2] for p in parts), test_digest]),
    )


DATASETS.add("svhn", Dataset(load_svhn))


# ---- a user's own npz -------------------------------------------------------------------------

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_MAX_CLASSES = 100_000  # a larger label is a broken file, not a 100k-way classifier head
_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# What zipfile, zlib and numpy's .npy header parser (ast.literal_eval, then a tokenize-based
# repair of old headers) raise on damaged bytes.
_UNREADABLE = (
    ValueError,
    TypeError,
    SyntaxError,
    tokenize.TokenError,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # numpy's dtype parser, for descriptors it cannot build
)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


@contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn a library's error about damaged bytes into a one-line DatasetError."""
    try:
        yield
    except _UNREADABLE as err:
        raise DatasetError(f"{path}: cannot read {what}: {_one_line(err)}") from None


def _npz_member(path: Path, archive: zipfile.ZipFile, member: str, key: str) -> np.ndarray:
    """One .npy member, header first: an object array is refused before its pickle is touched,
    and a header declaring more data than the member holds allocates nothing."""
    info = archive.getinfo(member)
    if info.flag_bits & 0x1:
        raise DatasetError(f"{path}: {key} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DatasetError(
            f"{path}: {key} uses zip compression method {info.compress_type}; numpy.savez "
            "and savez_compressed write stored or deflated members"
        )
    with _reading(path, key), archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version not in _NPY_HEADERS:
            raise DatasetError(f"{path}: {key} has .npy format {version}; expected 1.0 or 2.0")
        shape, fortran_order, dtype = _NPY_HEADERS[version](handle)
        if dtype.hasobject:
            raise DatasetError(
                f"{path}: {key} holds Python objects (a pickled array); store numeric arrays"
            )
        if any(side < 0 for side in shape):
            raise DatasetError(f"{path}: {key} has a negative dimension in shape {shape}")
        count = math.prod(shape)
        if dtype.itemsize == 0:
            raise DatasetError(f"{path}: {key} has dtype {dtype}, whose elements hold no bytes")
        if count * dtype.itemsize > info.file_size:
            raise DatasetError(f"{path}: {key} declares shape {shape} but holds less data")
        # A bytearray, so the arrays (and the tensors made from them) are writable.
        buffer = bytearray(handle.read(count * dtype.itemsize))
        if len(buffer) < count * dtype.itemsize:
            raise DatasetError(f"{path}: {key} is truncated")
        flat = np.frombuffer(buffer, dtype, count=count)
        return flat.reshape(shape, order="F" if fortran_order else "C")


def _npz_arrays(path: Path, raw: bytes) -> dict[str, np.ndarray]:
    """The four arrays of an npz's bytes, read with numpy's .npy parser and never unpickled."""
    if not raw.startswith(b"PK"):
        raise DatasetError(
            f"{path} is not an npz archive (numpy.savez writes a zip of .npy arrays)"
        )
    with _reading(path, "the zip archive"):
        archive = zipfile.ZipFile(io.BytesIO(raw))
    with archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        missing = [k for k in _NPZ_KEYS if k not in members]
        if missing:
            raise DatasetError(f"{path}: missing arrays {missing}; expected {list(_NPZ_KEYS)}")
        return {k: _npz_member(path, archive, members[k], k) for k in _NPZ_KEYS}


def _npz_nchw(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """`x` as N,C,H,W after the layout checks (uint8 arrays are NHWC, float ones NCHW)."""
    if x.ndim != 4:
        raise DatasetError(
            f"{path}: {key} must be 4-D (N,H,W,C uint8 or N,C,H,W float), got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        nchw, layout = x.transpose(0, 3, 1, 2), f"uint8 {key} must be NHWC"
    elif x.dtype.kind == "f":
        nchw, layout = x, f"float {key} must be NCHW"
    else:
        raise DatasetError(
            f"{path}: {key} has dtype {x.dtype}; expected uint8 (NHWC) or float32/float64 (NCHW)"
        )
    n, channels, height, width = nchw.shape
    if channels not in (1, 3):
        raise DatasetError(f"{path}: {layout} with 1 or 3 channels, got shape {x.shape}")
    if n == 0:
        raise DatasetError(f"{path}: {key} holds no images; both splits need at least one")
    if height != width or height == 0:
        raise DatasetError(f"{path}: {key} images must be square, got {height}x{width}")
    return nchw


def _npz_images(path: Path, key: str, x: np.ndarray) -> torch.Tensor:
    nchw = _npz_nchw(path, key, x)
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(nchw)).float().div_(255)
    if not np.isfinite(nchw).all():
        raise DatasetError(f"{path}: float {key} contains NaN or infinite values")
    low, high = float(nchw.min()), float(nchw.max())
    if low < 0 or high > 1:
        raise DatasetError(f"{path}: float {key} must lie in [0, 1], got range [{low}, {high}]")
    return torch.from_numpy(np.ascontiguousarray(nchw, dtype=np.float32))


def _npz_labels(path: Path, key: str, y: np.ndarray, n: int) -> torch.Tensor:
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DatasetError(
            f"{path}: {key} must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}"
        )
    if len(y) != n:
        raise DatasetError(f"{path}: {key} has {len(y)} labels but its images have {n}")
    low, high = int(y.min()), int(y.max())  # n > 0: the images were checked first
    if low < 0:
        raise DatasetError(f"{path}: {key} has negative label {low}; labels must be 0..K-1")
    if high >= _MAX_CLASSES:
        raise DatasetError(
            f"{path}: {key} has label {high}; labels must be 0..K-1 with K <= {_MAX_CLASSES}"
        )
    return torch.from_numpy(y.astype(np.int64))


def _npz_classes(path: Path, y_train: torch.Tensor) -> int:
    """K, when y_train holds every label 0..K-1: a stray label (12 among digits' 0..9) would
    otherwise add classes no image has, and a model with a head of that size trains silently."""
    counts = torch.bincount(y_train)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        above = (counts[empty[0] :] > 0).nonzero().flatten().add(empty[0]).tolist()
        shown = [f"{label} ({int(counts[label])} image(s))" for label in above]
        raise DatasetError(
            f"{path}: y_train labels must be exactly 0..K-1, but class(es) {_few(empty)} have "
            f"no image while label(s) {_few(shown)} do; relabel them 0..{len(counts) - len(empty) - 1}"
        )
    return len(counts)


def _few(items: list[Any], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(map(str, items[:shown])) + more


def load_npz(path: Path) -> Data:
    """A user's own data: arrays x_train, y_train, x_test, y_test (validated, no pickles).

    Every way a file can be wrong is a one-line DatasetError naming the file and the array;
    the fingerprint is the sha256 of the file's bytes.
    """
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist")
    raw, digest = _read_hashed(path)
    arrays = _npz_arrays(path, raw)
    x_train = _npz_images(path, "x_train", arrays["x_train"])
    x_test = _npz_images(path, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{path}: x_train images {tuple(x_train.shape[1:])} and x_test images "
            f"{tuple(x_test.shape[1:])} differ in shape"
        )
    y_train = _npz_labels(path, "y_train", arrays["y_train"], len(x_train))
    y_test = _npz_labels(path, "y_test", arrays["y_test"], len(x_test))
    num_classes = _npz_classes(path, y_train)
    if int(y_test.max()) >= num_classes:
        raise DatasetError(
            f"{path}: y_test has label {int(y_test.max())} but y_train only has labels "
            f"0..{num_classes - 1}"
        )
    mean, std = _channel_stats(x_train)
    spec = DatasetSpec(f"npz:{path}", x_train.shape[1], x_train.shape[2], num_classes, mean, std)
    return Data(spec, x_train, y_train, x_test, y_test, digest)


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
