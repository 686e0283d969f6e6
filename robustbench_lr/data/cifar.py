"""CIFAR-10 / CIFAR-100 (fine and coarse labels) from torchvision's python pickles.

torchvision downloads them (with its checksums); they are read here because CIFAR-100's 20
coarse labels are not exposed by torchvision, and with a restricted unpickler instead of plain
`pickle.load`: the files are pickles, and a tampered one must not run code.
"""

from __future__ import annotations

import io
import pickle
from functools import partial
from pathlib import Path

import numpy as np
import torch

from robustbench_lr.data.base import Data, DatasetError, DatasetSpec, LoadOptions, _missing
from robustbench_lr.data.digests import _files_digest, _read_hashed


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


def _read_cifar(
    tv_name: str, name: str, label_key: str, num_classes: int, stats, options: LoadOptions
) -> Data:
    import torchvision.datasets

    tv_class = getattr(torchvision.datasets, tv_name)
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
            raw, digest = _read_hashed(folder / fname)  # the digest of the bytes unpickled
            entry = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
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


# CIFAR-10, and CIFAR-100 with its 100 fine labels (Table 9) or its 20 coarse super-class
# labels (Tables 1, 5a, 7c), from torchvision's folders under --data-root.
load_cifar10 = partial(_read_cifar, "CIFAR10", "cifar10", "labels", 10, _CIFAR10_STATS)
load_cifar100 = partial(_read_cifar, "CIFAR100", "cifar100", "fine_labels", 100, _CIFAR100_STATS)
load_cifar100_coarse = partial(
    _read_cifar, "CIFAR100", "cifar100-coarse", "coarse_labels", 20, _CIFAR100_STATS
)
