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


def param_count_of(cfg: dict) -> int:
    model = ConvNet(cfg["convs"], cfg["act"], cfg["dense"], rngs=nnx.Rngs(0))
    return int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def evaluate(cfg: dict, epochs: int = 20, seed: int = 0, batch_size: int = 64,
             train_on_valid: bool = False) -> dict[str, float]:
    """Train ``cfg`` and return ``{"valid": acc, "test": acc}``.

    With ``train_on_valid`` the model trains on train+valid (the retraining step)."""
    d = data()
    x_tr, y_tr = d["train"]
    if train_on_valid:
        x_tr = np.concatenate([x_tr, d["valid"][0]])
        y_tr = np.concatenate([y_tr, d["valid"][1]])
    model = ConvNet(cfg["convs"], cfg["act"], cfg["dense"], rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model)
    opt = optax.adam(float(cfg["lr"]))
    opt_state = opt.init(params)
    steps = len(x_tr) // batch_size

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def epoch(carry, key):
        perm = jax.random.permutation(key, len(x_tr))[: steps * batch_size]
        xb = jnp.asarray(x_tr)[perm].reshape(steps, batch_size, 8, 8, 1)
        yb = jnp.asarray(y_tr)[perm].reshape(steps, batch_size)

        def step(carry, batch):
            params, opt_state = carry
            grads = jax.grad(loss_fn)(params, *batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, carry, (xb, yb))[0]

    carry = (params, opt_state)
    for k in jax.random.split(jax.random.key(seed), epochs):
        carry = epoch(carry, k)

    @jax.jit
    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), -1) == y)

    return {split: float(accuracy(carry[0], *map(jnp.asarray, d[split])))
            for split in ("valid", "test")}
