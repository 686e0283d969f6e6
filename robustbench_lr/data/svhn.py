"""SVHN (train, `extra` with --svhn-extra, test) from torchvision's .mat files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustbench_lr.data.base import Data, DatasetSpec, LoadOptions, _missing
from robustbench_lr.data.digests import _files_digest, file_digest

_SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


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
    xs, ys, digests = zip(*[_read_svhn_split(root, s, options) for s in splits], strict=True)
    x_te, y_te, test_digest = _read_svhn_split(root, "test", options)
    spec = DatasetSpec("svhn", 3, 32, 10, *_SVHN_STATS, augment=False)
    return Data(
        spec,
        torch.from_numpy(np.ascontiguousarray(np.concatenate(xs))).float().div_(255),
        torch.from_numpy(np.concatenate(ys)),
        torch.from_numpy(np.ascontiguousarray(x_te)).float().div_(255),
        torch.from_numpy(y_te),
        _files_digest([*digests, test_digest]),
    )
