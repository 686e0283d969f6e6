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

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from robustbench_lr.data.base import (
    DATASETS,
    DEFAULT_DATA_ROOT,
    Data,
    Dataset,
    DatasetError,
    DatasetSpec,
    LoadOptions,
    stratified_subset,
)
from robustbench_lr.data.cifar import load_cifar10, load_cifar100, load_cifar100_coarse
from robustbench_lr.data.digests import file_digest
from robustbench_lr.data.digits import DIGITS_AUDIT_EPS, DIGITS_L2_EPS, load_digits
from robustbench_lr.data.npz import load_npz
from robustbench_lr.data.svhn import load_svhn

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_ROOT",
    "DIGITS_L2_EPS",
    "Data",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "LoadOptions",
    "augment_batch",
    "check_same_content",
    "dataset_label",
    "dataset_names",
    "file_digest",
    "l2_eps",
    "load",
    "load_for_checkpoint",
    "load_npz",
    "npz_location",
    "stratified_subset",
]

# The registered datasets, one line each (their readers live in one module per format).
DATASETS.add("digits", Dataset(load_digits, audit_eps=DIGITS_AUDIT_EPS, l2_eps=DIGITS_L2_EPS))
DATASETS.add("cifar10", Dataset(load_cifar10))
DATASETS.add("cifar100", Dataset(load_cifar100, other_labelling="cifar100-coarse"))
DATASETS.add("cifar100-coarse", Dataset(load_cifar100_coarse, other_labelling="cifar100"))
DATASETS.add("svhn", Dataset(load_svhn))


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
        source = f"npz file {_npz_path(name)}" if name.startswith("npz:") else f"dataset {name}"
        raise DatasetError(
            f"{source} changed since {checkpoint} was trained "
            f"(fingerprint {recorded[:8]} → {data.fingerprint[:8]}); retrain it or restore the "
            f"{'file' if name.startswith('npz:') else 'original files'}"
        )


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
