"""Property: any file named .npz loads as valid data or fails with a one-line DatasetError.

A user's npz is the one input the suite does not control, so `load_npz` is tried on arbitrary
numeric arrays (every dtype, 0-5 dims, zero-size sides, NaN, inf, extremes), on missing and
extra keys, on damaged archives, on arbitrary .npy headers and on bytes that are no archive at
all. Nothing but a valid `Data` or a one-line `DatasetError` may come back.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robustbench_lr.data import Data, DatasetError, load_npz

KEYS = ("x_train", "y_train", "x_test", "y_test")
DTYPES = [
    "u1", "i1", "<i2", ">i4", "i8", "<u2", ">u4", "u8",
    "<f2", "f4", ">f4", "f8", ">f8", "?", "c8", "c16",
]  # fmt: skip
FLOAT_IMAGES = ["<f2", "f4", ">f4", "f8", ">f8"]

any_array = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)
    )
)


@st.composite
def plausible(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """The four arrays of a valid dataset: uint8 NHWC or float NCHW images, labels 0..K-1."""
    size, channels = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))

    def images(n: int) -> np.ndarray:
        if draw(st.booleans()):
            return draw(hnp.arrays(np.uint8, (n, size, size, channels)))
        dtype = np.dtype(draw(st.sampled_from(FLOAT_IMAGES)))
        unit = st.floats(0, 1, width=16)  # representable in every float dtype drawn
        return draw(hnp.arrays(dtype, (n, channels, size, size), elements=unit))

    def labels(n: int, top: int) -> np.ndarray:
        dtype = np.dtype(draw(st.sampled_from(["u1", "<i2", ">i4", "i8", "u8"])))
        return draw(hnp.arrays(dtype, (n,), elements=st.integers(0, top)))

    def every_class(n: int) -> np.ndarray:  # 0..K-1, each at least once, in any order
        given = labels(n, draw(st.integers(0, n - 1)))
        classes = np.arange(int(given.max()) + 1, dtype=given.dtype)
        return np.array(draw(st.permutations([*classes, *given[len(classes) :]])), given.dtype)

    n_train, n_test = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    y_train = every_class(n_train)
    return {
        "x_train": images(n_train),
        "y_train": y_train,
        "x_test": images(n_test),
        "y_test": labels(n_test, int(y_train.max())),
    }


@st.composite
def npz_contents(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], bool]:
    """A plausible dataset with some arrays replaced by arbitrary ones, dropped, or joined by
    extra keys; the flag says whether it is still the untouched plausible dataset."""
    arrays = draw(plausible())
    untouched = True
    for key in KEYS:
        fate = draw(st.sampled_from(["keep", "keep", "keep", "replace", "drop"]))
        if fate == "replace":
            arrays[key], untouched = draw(any_array), False
        elif fate == "drop":
            del arrays[key]
            untouched = False
    extra = draw(st.dictionaries(st.sampled_from(["x_val", "meta", "y"]), any_array, max_size=2))
    return {**arrays, **extra}, untouched


def _savez_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _load_bytes(raw: bytes) -> Data | None:
    """`load_npz` of a temporary file holding `raw`: the Data, or None after a DatasetError
    whose message is one non-empty line (any other exception fails the test)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        path.write_bytes(raw)
        try:
            data = load_npz(path)
        except DatasetError as err:
            message = str(err)
            assert message.strip() and "\n" not in message, repr(message)
            return None
    _assert_valid(data, raw)
    return data


def _assert_valid(data: Data, raw: bytes) -> None:
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == torch.float32 and x.ndim == 4 and x.is_contiguous()
        assert x.shape[1] in (1, 3) and x.shape[2] == x.shape[3] >= 1 and len(x) >= 1
        assert bool(torch.isfinite(x).all()) and 0 <= float(x.min()) <= float(x.max()) <= 1
        assert y.dtype == torch.int64 and y.shape == (len(x),)
        assert 0 <= int(y.min()) and int(y.max()) < data.spec.num_classes
    assert data.x_train.shape[1:] == data.x_test.shape[1:]
    assert data.spec.num_classes == int(data.y_train.max()) + 1
    assert (data.spec.channels, data.spec.size) == tuple(data.x_train.shape[1:3])
    assert all(np.isfinite(v) for v in (*data.spec.mean, *data.spec.std))
    assert data.fingerprint == hashlib.sha256(raw).hexdigest()


def _expected_images(x: np.ndarray) -> torch.Tensor:
    if x.dtype == np.uint8:
        return torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    return torch.from_numpy(x.astype(np.float32))


@settings(max_examples=150, deadline=None)
@given(npz_contents())
def test_any_arrays_load_as_valid_data_or_fail_in_one_line(contents):
    arrays, untouched = contents
    data = _load_bytes(_savez_bytes(arrays))
    if untouched:  # a valid dataset is never refused, and arrives unchanged
        assert data is not None
        assert torch.allclose(data.x_train, _expected_images(arrays["x_train"]))
        assert data.y_test.tolist() == arrays["y_test"].astype(np.int64).tolist()


@settings(max_examples=100, deadline=None)
@given(
    plausible(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    st.none() | st.integers(0, 10**6),
)
def test_damaged_archives_fail_in_one_line(arrays, edits, cut):
    raw = bytearray(_savez_bytes(arrays))
    for position, value in edits:
        raw[position % len(raw)] = value
    if cut is not None:
        raw = raw[: cut % (len(raw) + 1)]
    _load_bytes(bytes(raw))


DESCRS = ["|u1", "<f4", ">f8", "<i8", "|O", "<U3", "|S0", "|V0", "|b1", [("a", "<f4")]]
SIDE = st.integers(-2, 6) | st.just(10**13) | st.booleans()
WELL_FORMED = st.builds(
    "{{'descr': {!r}, 'fortran_order': {}, 'shape': {!r}, }}".format,
    st.sampled_from(DESCRS),
    st.booleans(),
    st.tuples(SIDE) | st.tuples(SIDE, SIDE, SIDE, SIDE) | st.just(()),
)
HEADER = WELL_FORMED | st.text(alphabet="{}()[]':,<>|=0123456789 .-_fiuOdescrhapTrue", max_size=120)


@settings(max_examples=150, deadline=None)
@given(plausible(), HEADER, st.binary(max_size=300), st.sampled_from([1, 2, 3, 9]))
def test_arbitrary_npy_headers_fail_in_one_line(arrays, header, payload, major):
    """y_test's .npy member gets a made-up header (any text, any format version)."""
    text = header.encode("latin1") + b"\n"
    size = len(text).to_bytes(2 if major == 1 else 4, "little")
    member = b"\x93NUMPY" + bytes([major, 0]) + size + text + payload
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in KEYS[:3]:
            with archive.open(f"{key}.npy", "w") as handle:
                np.lib.format.write_array(handle, arrays[key])
        archive.writestr("y_test.npy", member)
    _load_bytes(buffer.getvalue())


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"]),
    st.binary(max_size=2000) | st.text(max_size=500).map(str.encode),
)
def test_garbage_and_text_fail_in_one_line(prefix, body):
    assert _load_bytes(prefix + body) is None
