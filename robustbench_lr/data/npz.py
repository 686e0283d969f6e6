"""A user's own data as an npz of x_train, y_train, x_test, y_test: validated, never unpickled.

Written by hand because numpy's own `np.load` reads an npz member's header and data in one go
(and may unpickle an object array with allow_pickle): here a member's header is checked first,
so a damaged or hostile file is a one-line DatasetError before anything is allocated or run.
"""

from __future__ import annotations

import io
import math
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lr.data.base import Data, DatasetError, DatasetSpec, _channel_stats
from robustbench_lr.data.digests import _read_hashed

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


@contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn a library's error about damaged bytes into a one-line DatasetError."""
    try:
        yield
    except _UNREADABLE as err:
        one_line = " ".join(str(err).split()) or type(err).__name__
        raise DatasetError(f"{path}: cannot read {what}: {one_line}") from None


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


def _npz_images(path: Path, key: str, x: np.ndarray) -> torch.Tensor:
    """`x` as float N,C,H,W in [0, 1] after the layout checks (uint8: NHWC; float: NCHW)."""
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
