"""Case study: a small convolutional space on scikit-learn's digits (8x8 images).

``space()`` makes the hand-designed :class:`ConvNet` searchable (depth, channels, kernel
sizes, activation, dense width, learning rate); :func:`evaluate` trains a materialized
config with Adam and returns validation and test accuracy on a fixed 60/20/20 split.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nas.primitives import floatv, oneof
from nas.space import Space

ACTIVATIONS: dict[str, Callable] = {"relu": nnx.relu, "gelu": nnx.gelu, "tanh": nnx.tanh}
DEFAULT = {"convs": [(16, 3), (32, 3)], "act": "relu", "dense": 64, "lr": 1e-3}


class ConvNet(nnx.Module):
    """conv blocks (channels, kernel) -> global average pool -> dense -> 10 classes."""

    def __init__(self, convs: Sequence[tuple[int, int]], act: str, dense: int, *,
                 rngs: nnx.Rngs):
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        chans = [1] + [c for c, _ in convs]
        self.convs = nnx.List([
            nnx.Conv(a, b, (k, k), padding="SAME", rngs=rngs)
            for a, b, (_, k) in zip(chans[:-1], chans[1:], convs, strict=True)])
        self.act = act
        self.hidden = nnx.Linear(chans[-1] * 16, dense, rngs=rngs)
        self.out = nnx.Linear(dense, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        f = ACTIVATIONS[self.act]
        for i, conv in enumerate(self.convs):
            x = f(conv(x))
            if i == 0:
                x = nnx.max_pool(x, (2, 2), (2, 2))  # 8x8 -> 4x4
        x = x.reshape(x.shape[0], -1)
        return self.out(f(self.hidden(x)))


def space() -> Space:
    """Config space around :data:`DEFAULT` (which it contains)."""
    block = lambda: (oneof([8, 16, 32]), oneof([1, 3, 5]))  # noqa: E731
    return Space({
        "convs": oneof([[block()], [block(), block()], [block(), block(), block()]],
                       name="convs"),
        "act": oneof(list(ACTIVATIONS), name="act"),
        "dense": oneof([32, 64, 128], name="dense"),
        "lr": floatv(3e-4, 1e-2, "log", name="lr"),
    })


@functools.lru_cache(maxsize=1)
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits split 60/20/20 (train/valid/test), stratified, fixed seed; pixels in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    y = y.astype(np.int32)
    x_tr, x_rest, y_tr, y_rest = train_test_split(x, y, test_size=0.4, random_state=0,
                                                  stratify=y)
    x_va, x_te, y_va, y_te = train_test_split(x_rest, y_rest, test_size=0.5, random_state=0,
                                              stratify=y_rest)
    return {"train": (x_tr, y_tr), "valid": (x_va, y_va), "test": (x_te, y_te)}


TRACE_COUNTS: dict[str, int] = {"train": 0}  # compilations of the trainer, for tests


def param_count_of(cfg: dict) -> int:
    _check_cfg(cfg)
    model = nnx.eval_shape(lambda: ConvNet(cfg["convs"], cfg["act"], cfg["dense"],
                                           rngs=nnx.Rngs(0)))
    return int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def _check_cfg(cfg: dict) -> None:
    if not isinstance(cfg, dict) or not {"convs", "act", "dense", "lr"} <= set(cfg):
        got = sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__
        raise ValueError(f"cfg must be a dict with keys convs, act, dense, lr (as "
                         f"space().materialize gives), got {got}")
    convs = cfg["convs"]
    ok = isinstance(convs, (list, tuple)) and len(convs) >= 1 and all(
        isinstance(b, (list, tuple)) and len(b) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in b)
        for b in convs)
    if not ok:
        raise ValueError(f"cfg['convs'] must be a non-empty list of (channels, kernel) pairs of "
                         f"ints >= 1, got {convs!r}")
    if cfg["act"] not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {cfg['act']!r}")
    dense = cfg["dense"]
    if isinstance(dense, bool) or not isinstance(dense, (int, np.integer)) or dense < 1:
        raise ValueError(f"cfg['dense'] must be an int >= 1, got {dense!r}")
    lr = cfg["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not (
            np.isfinite(lr) and lr > 0):
        raise ValueError(f"cfg['lr'] must be a finite float > 0, got {lr!r}")


def architecture(cfg: dict) -> tuple:
    """The part of ``cfg`` that fixes the compiled program (everything except ``lr``)."""
    return (tuple((int(c), int(k)) for c, k in cfg["convs"]), str(cfg["act"]),
            int(cfg["dense"]))


@functools.lru_cache(maxsize=128)
def _trainer(arch: tuple, batch_size: int, n_train: int, epochs: int) -> Callable:
    """One jitted init -> ``epochs`` x Adam epochs -> accuracy program per architecture;
    the seed key, learning rate and data are arguments, so a repeated architecture (at
    any ``lr`` or seed) reuses it."""
    convs, act, dense = arch
    steps = n_train // batch_size

    def train(key, lr, x_tr, y_tr, x_va, y_va, x_te, y_te):
        TRACE_COUNTS["train"] += 1
        graphdef, params = nnx.split(ConvNet(convs, act, dense, rngs=nnx.Rngs(key)))
        opt = optax.adam(lr)

        def loss_fn(params, x, y):
            logits = nnx.merge(graphdef, params)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def epoch(carry, key):
            perm = jax.random.permutation(key, n_train)[: steps * batch_size]
            xb = x_tr[perm].reshape(steps, batch_size, 8, 8, 1)
            yb = y_tr[perm].reshape(steps, batch_size)

            def step(carry, batch):
                params, opt_state = carry
                grads = jax.grad(loss_fn)(params, *batch)
                updates, opt_state = opt.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), None

            return jax.lax.scan(step, carry, (xb, yb))[0], None

        (params, _), _ = jax.lax.scan(epoch, (params, opt.init(params)),
                                      jax.random.split(key, epochs))

        def accuracy(x, y):
            return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), -1) == y)

        return accuracy(x_va, y_va), accuracy(x_te, y_te)

    return jax.jit(train)


def clear_trainer_cache() -> None:
    """Drop the compiled per-architecture trainers (frees their memory; the next trial of
    each architecture compiles again)."""
    _trainer.cache_clear()


def evaluate(cfg: dict, epochs: int = 20, seed: int = 0, batch_size: int = 64,
             train_on_valid: bool = False) -> dict[str, float]:
    """Train ``cfg`` and return ``{"valid": acc, "test": acc}``.

    With ``train_on_valid`` the model trains on train+valid (the retraining step). The
    compiled trainer is cached per (architecture, batch_size, data size, epochs): ``lr``
    and ``seed`` do not recompile."""
    _check_cfg(cfg)
    for field, v, low in (("epochs", epochs, 1), ("seed", seed, 0), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"evaluate.{field} must be an int >= {low}, got {v!r}")
    d = data()
    x_tr, y_tr = d["train"]
    if train_on_valid:
        x_tr = np.concatenate([x_tr, d["valid"][0]])
        y_tr = np.concatenate([y_tr, d["valid"][1]])
    if batch_size > len(x_tr):
        raise ValueError(f"evaluate.batch_size must be <= the {len(x_tr)} training images, "
                         f"got {batch_size}")
    train = _trainer(architecture(cfg), int(batch_size), len(x_tr), int(epochs))
    valid, test = train(jax.random.key(int(seed)), jnp.float32(cfg["lr"]), x_tr, y_tr,
                        *d["valid"], *d["test"])
    return {"valid": float(valid), "test": float(test)}
