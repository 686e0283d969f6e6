"""Content digests: what a `Data` fingerprint is made of, and a per-process cache of file hashes.

A checkpoint records the sha256 of the content its data was read from; these helpers compute
it from exactly the bytes that get parsed, and hash a large file once per process.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from robustbench_lr.files import file_digest as _read_digest

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
