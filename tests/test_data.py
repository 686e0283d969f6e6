"""Dataset loaders on small files written in the real on-disk formats (no mocks, no network)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from robustbench_lr import data
from robustbench_lr.data import DatasetError, LoadOptions


def _write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(obj, handle)


def _cifar_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)


@pytest.fixture()
def cifar10_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        _write_pickle(
            folder / f"data_batch_{i}", {"data": _cifar_images(rng, 4), "labels": [i % 10, 1, 2, 3]}
        )
    _write_pickle(folder / "test_batch", {"data": _cifar_images(rng, 3), "labels": [9, 8, 7]})
    return tmp_path


@pytest.fixture()
def cifar100_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    _write_pickle(
        folder / "train",
        {
            "data": _cifar_images(rng, 6),
            "fine_labels": [0, 99, 5, 6, 7, 8],
            "coarse_labels": [0, 19, 1, 2, 3, 4],
        },
    )
    _write_pickle(
        folder / "test",
        {"data": _cifar_images(rng, 2), "fine_labels": [42, 43], "coarse_labels": [11, 12]},
    )
    return tmp_path


def test_digits_is_in_unit_range_and_stratified():
    d = data.load("digits")
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.dtype == torch.float32
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0
    assert len(d.y_train) + len(d.y_test) == 1797
    shares = torch.bincount(d.y_test, minlength=10).float() / len(d.y_test)
    assert float((shares - 0.1).abs().max()) < 0.01
    again = data.load("digits")
    assert torch.equal(again.x_test, d.x_test)


def test_cifar10_reads_python_pickles(cifar10_root: Path):
    d = data.load("cifar10", LoadOptions(data_root=str(cifar10_root)))
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32)
    assert d.y_test.tolist() == [9, 8, 7]
    assert d.spec.augment and d.spec.num_classes == 10
    assert float(d.x_train.max()) <= 1.0


def test_cifar100_fine_and_coarse_labels(cifar100_root: Path):
    fine = data.load("cifar100", LoadOptions(data_root=str(cifar100_root)))
    coarse = data.load("cifar100-coarse", LoadOptions(data_root=str(cifar100_root)))
    assert fine.y_train.tolist() == [0, 99, 5, 6, 7, 8] and fine.spec.num_classes == 100
    assert coarse.y_train.tolist() == [0, 19, 1, 2, 3, 4] and coarse.spec.num_classes == 20
    assert torch.equal(fine.x_train, coarse.x_train)


def test_cifar_pickle_with_code_is_refused(tmp_path: Path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({"data": Path("/")}))
    (folder / "test").write_bytes(pickle.dumps({}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load("cifar100", LoadOptions(data_root=str(tmp_path)))


def _svhn_mat(path: Path, n: int, labels: list[int]) -> None:
    rng = np.random.default_rng(n)
    savemat(
        str(path),
        {
            "X": rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8),
            "y": np.array(labels, dtype=np.uint8).reshape(-1, 1),
        },
    )


def test_svhn_reads_mat_files_and_extra(tmp_path: Path):
    _svhn_mat(tmp_path / "train_32x32.mat", 3, [10, 1, 2])
    _svhn_mat(tmp_path / "test_32x32.mat", 2, [3, 10])
    _svhn_mat(tmp_path / "extra_32x32.mat", 4, [5, 6, 7, 8])
    d = data.load("svhn", LoadOptions(data_root=str(tmp_path)))
    assert d.x_train.shape == (3, 3, 32, 32)
    assert d.y_train.tolist() == [0, 1, 2] and d.y_test.tolist() == [3, 0]
    extra = data.load("svhn", LoadOptions(data_root=str(tmp_path), svhn_extra=True))
    assert len(extra.y_train) == 7
    raw = np.transpose(
        np.asarray(__import__("scipy.io").io.loadmat(str(tmp_path / "train_32x32.mat"))["X"]),
        (3, 2, 0, 1),
    )
    assert torch.allclose(d.x_train, torch.from_numpy(raw.astype(np.float32) / 255))


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "cifar100-coarse", "svhn"])
def test_missing_dataset_names_the_flags(tmp_path: Path, name: str):
    with pytest.raises(DatasetError) as err:
        data.load(name, LoadOptions(data_root=str(tmp_path)))
    message = str(err.value)
    assert "--data-root" in message and "--download" in message and "\n" not in message


def _npz(path: Path, **overrides) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8),
        "y_train": np.arange(12) % 3,
        "x_test": rng.integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8),
        "y_test": np.arange(6) % 3,
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_uint8_nhwc_and_float_nchw(tmp_path: Path):
    d = data.load(f"npz:{_npz(tmp_path / 'ok.npz')}")
    assert d.x_train.shape == (12, 3, 8, 8) and d.spec.num_classes == 3 and d.spec.channels == 3
    floats = np.random.default_rng(1).random((5, 1, 8, 8)).astype(np.float32)
    d2 = data.load(
        f"npz:{_npz(tmp_path / 'f.npz', x_train=floats, y_train=np.array([0, 1, 0, 1, 0]), x_test=floats[:2], y_test=np.array([1, 0]))}"
    )
    assert torch.equal(d2.x_train, torch.from_numpy(floats))


BAD_NPZ = {
    "missing-array": ({"y_test": None}, "missing arrays ['y_test']"),
    "3d-images": ({"x_train": np.zeros((12, 8, 8), np.uint8)}, "x_train must be 4-D"),
    "wrong-dtype": ({"x_train": np.zeros((12, 8, 8, 3), np.int32)}, "has dtype int32"),
    "float-out-of-range": (
        {"x_train": np.full((12, 3, 8, 8), 2.0, np.float32)},
        "must lie in [0, 1]",
    ),
    "label-count": ({"y_train": np.arange(11) % 3}, "has 11 labels but its images have 12"),
    "negative-label": ({"y_train": np.arange(12) % 3 - 1}, "negative label"),
    "test-label-unknown": ({"y_test": np.array([0, 1, 2, 3, 0, 1])}, "y_test has label 3"),
    "float-labels": ({"y_train": np.zeros(12, np.float32)}, "1-D integer array"),
    "shape-mismatch": ({"x_test": np.zeros((6, 4, 4, 3), np.uint8)}, "differ in shape"),
    "empty-train": (
        {"x_train": np.zeros((0, 8, 8, 3), np.uint8), "y_train": np.zeros(0, np.int64)},
        "x_train holds no images",
    ),
    "empty-test": (
        {"x_test": np.zeros((0, 8, 8, 3), np.uint8), "y_test": np.zeros(0, np.int64)},
        "x_test holds no images",
    ),
    "object-array": ({"y_train": np.array([0, 1] * 6, dtype=object)}, "holds Python objects"),
    "0-d-images": ({"x_train": np.array(3, np.uint8)}, "x_train must be 4-D"),
    "nan-images": ({"x_train": np.full((12, 3, 8, 8), np.nan, np.float32)}, "NaN or infinite"),
    "inf-images": ({"x_test": np.full((6, 3, 8, 8), np.inf)}, "NaN or infinite"),
    "int64-images": ({"x_train": np.zeros((12, 8, 8, 3), np.int64)}, "has dtype int64"),
    "bool-images": ({"x_train": np.zeros((12, 8, 8, 3), bool)}, "has dtype bool"),
    "complex-images": ({"x_train": np.zeros((12, 3, 8, 8), np.complex64)}, "has dtype complex64"),
    "bool-labels": ({"y_train": np.arange(12) % 2 == 0}, "1-D integer array"),
    "2-d-labels": ({"y_train": (np.arange(12) % 3)[:, None]}, "1-D integer array"),
    "huge-label": ({"y_train": np.array([0, 1, 2] * 3 + [0, 1, 10**9])}, "label 1000000000"),
    "uint64-label": (
        {"y_train": np.array([0, 1, 2] * 3 + [0, 1, 2**64 - 1], np.uint64)},
        "labels must be 0..K-1",
    ),
    "non-square": ({"x_train": np.zeros((12, 8, 6, 3), np.uint8)}, "must be square, got 8x6"),
    "zero-size-images": ({"x_train": np.zeros((12, 0, 0, 3), np.uint8)}, "must be square"),
    "two-channels": ({"x_train": np.zeros((12, 8, 8, 2), np.uint8)}, "with 1 or 3 channels"),
    "huge-channels": ({"x_train": np.zeros((12, 1000, 2, 2), np.float32)}, "1 or 3 channels"),
    "image-count": ({"x_test": np.zeros((5, 8, 8, 3), np.uint8)}, "has 6 labels but its images"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ), ids=list(BAD_NPZ))
def test_bad_npz_is_rejected_with_its_reason(tmp_path: Path, case: str):
    overrides, message = BAD_NPZ[case]
    path = _npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DatasetError) as err:
        data.load(f"npz:{path}")
    assert message in str(err.value)


def test_bad_npz_message_is_one_line_naming_the_file(tmp_path: Path):
    path = _npz(tmp_path / "bad.npz", x_train=np.zeros((12, 8, 8, 3), np.int16))
    with pytest.raises(DatasetError) as err:
        data.load(f"npz:{path}")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "content", [b"not a zip", b"x_train,y_train\n1,2\n", b""], ids=["junk", "csv", "empty"]
)
def test_npz_not_an_archive(tmp_path: Path, content: bytes):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="is not an npz archive"):
        data.load(f"npz:{path}")


def test_single_npy_array_is_not_an_archive(tmp_path: Path):
    path = tmp_path / "one.npz"
    with path.open("wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DatasetError, match="is not an npz archive"):
        data.load(f"npz:{path}")


def test_damaged_zip_is_a_dataset_error(tmp_path: Path):
    raw = _npz(tmp_path / "ok.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="cannot read the zip archive"):
        data.load(f"npz:{path}")


def test_header_declaring_huge_array_allocates_nothing(tmp_path: Path):
    """A .npy header may claim any shape; the loader compares it with the bytes present.

    The images are large enough that reading the header does not reach the member's end,
    where zipfile would notice the edit by its CRC first.
    """
    images = np.zeros((12, 32, 32, 3), np.uint8)
    path = _npz(tmp_path / "lying.npz", x_train=images, x_test=images[:6])
    good = np.lib.format.header_data_from_array_1_0(images)
    raw = path.read_bytes()
    old = repr(good["shape"]).encode()
    lie = repr((10**12, 32, 32, 3)).encode()
    assert raw.count(old) == 1 and len(lie) > len(old)
    # Same header length: the .npy header is padded with spaces before its newline.
    start = raw.index(old)
    end = raw.index(b"\n", start)
    header = raw[start:end].replace(old, lie)[: end - start]
    path.write_bytes(raw[:start] + header + raw[end:])
    with pytest.raises(DatasetError, match="x_train declares shape"):
        data.load(f"npz:{path}")


UNPICKLED = []


def _unpickled() -> int:
    UNPICKLED.append(True)
    return 0


class _Tripwire:
    def __reduce__(self):
        return _unpickled, ()


def test_object_arrays_are_never_unpickled(tmp_path: Path):
    labels = np.array([_Tripwire()] * 12, dtype=object)
    path = _npz(tmp_path / "pickled.npz", y_train=labels)
    with pytest.raises(DatasetError, match="holds Python objects"):
        data.load(f"npz:{path}")
    assert UNPICKLED == []


def test_npz_accepts_float16_big_endian_and_fortran_order(tmp_path: Path):
    rng = np.random.default_rng(2)
    x = rng.random((4, 1, 3, 3))
    path = _npz(
        tmp_path / "odd.npz",
        x_train=np.asfortranarray(x.astype(">f8")),
        y_train=np.array([0, 1, 1, 0], ">i4"),
        x_test=x[:2].astype(np.float16),
        y_test=np.array([1, 0], np.uint8),
    )
    d = data.load(f"npz:{path}")
    assert torch.equal(d.x_train, torch.from_numpy(x.astype(np.float32)))
    assert d.x_test.dtype == torch.float32 and d.y_train.tolist() == [0, 1, 1, 0]
    assert d.x_train.is_contiguous() and d.y_test.dtype == torch.int64


def test_single_pixel_dataset_gets_finite_normalization(tmp_path: Path):
    one = np.full((1, 1, 1, 1), 0.5, np.float32)
    path = _npz(
        tmp_path / "px.npz", x_train=one, y_train=np.array([0]), x_test=one, y_test=np.array([0])
    )
    spec = data.load(f"npz:{path}").spec
    assert spec.mean == (0.5,) and spec.std == (1.0,)


def test_limits_are_stratified_and_deterministic():
    d = data.load("digits", train_limit=200, test_limit=50)
    assert len(d.y_train) == 200 and len(d.y_test) == 50
    counts = torch.bincount(d.y_train, minlength=10)
    assert int(counts.min()) >= 19 and int(counts.max()) <= 21
    again = data.load("digits", train_limit=200, test_limit=50)
    assert torch.equal(d.y_train, again.y_train) and torch.equal(d.x_test, again.x_test)


def test_unknown_dataset_lists_choices():
    with pytest.raises(KeyError) as err:
        data.load("mnist")
    assert "digits" in str(err.value) and "cifar100-coarse" in str(err.value)


def test_augmentation_crops_and_flips_per_sample():
    x = torch.rand(64, 3, 32, 32)
    out = data.augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # Every output is a shifted (and maybe flipped) window of its padded input.
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(4):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    assert not torch.equal(out, x)
    again = data.augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
