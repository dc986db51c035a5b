"""The vector output branch: labels and predictions of multi-class tasks (XLA side).

A multi-class task with K classes (``2 <= K <= F``) stores each label as a class index. The
reference reserves two vector addresses for this branch (definitions.h):
``v1 = kLabelsVectorAddress`` and ``v2 = kPredictionsVectorAddress``. Per example:

* before Predict: ``v0 <- x``, ``v1 <- 0`` (the label is hidden, as ``s0 <- 0`` for scalars);
* after Predict, in training: ``v2 <- truncating_softmax(v2)`` written back into memory (as
  the binary branch writes ``sigmoid(s1)``); the train error is ``sum_k |onehot_k - p_k|``;
  training stops early if it is NaN or above ``max_abs_error``;
* before Learn: ``v0 <- x``, ``v1 <- one-hot label`` (zeros past K);
* validation: ``p = truncating_softmax(v2)`` (not written back); the example is correct when
  ``argmax(p)`` is the label; fitness = accuracy (max over epochs, as for binary tasks).

``truncating_softmax`` and ``argmax`` follow the reference's ``internal::TruncatingSoftmax``
(softmax of the first K entries shifted by their max, entries past K set to 0) and
``internal::Argmax`` (first index 0, ``>=`` so ties go to the last index, NaN never
selected). The native kernel (interpreter.h) and tests/reference_interpreter.py implement
the same rules; docs/evaluator.md ("Multi-class tasks") states them for users.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _tree_sum(x: jax.Array) -> jax.Array:
    """Pairwise sum over a power-of-two last axis (the kernels' order)."""
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        x = x[..., :h] + x[..., h:]
    return x[..., 0]


def truncating_softmax(v: jax.Array, num_classes: int) -> jax.Array:
    """Softmax of ``v[:K]`` (shifted by its max), zeros in ``v[K:]``; all NaN when a logit is
    NaN or +inf, or all K are -inf."""
    inside = jnp.arange(v.shape[-1]) < num_classes
    top = jnp.max(v[..., :num_classes], axis=-1, keepdims=True)
    e = jnp.where(inside, jnp.exp(jnp.where(inside, v, top) - top), 0.0)
    total = _tree_sum(e)[..., None]
    return jnp.where(inside, e / total, 0.0).astype(v.dtype)


def argmax(p: jax.Array) -> jax.Array:
    """int32 index of the last maximum of ``p``, NaN entries skipped; 0 if all are NaN."""
    n = p.shape[-1]
    ok = ~jnp.isnan(p)
    top = jnp.max(jnp.where(ok, p, -jnp.inf), axis=-1, keepdims=True)
    hit = ok & (p == top)
    last = n - 1 - jnp.argmax(hit[..., ::-1], axis=-1)
    return jnp.where(hit.any(axis=-1), last, 0).astype(jnp.int32)


def label_vector(label: jax.Array, num_classes: int, feature_size: int, dtype) -> jax.Array:
    """One-hot vector of a class index stored as a float (zeros past the classes; all zeros
    for a label outside ``[0, K)``, which the task constructors reject)."""
    inside = (label >= 0) & (label < num_classes)
    cls = jnp.where(inside, label, -1.0).astype(jnp.int32)
    return (jnp.arange(feature_size) == cls).astype(dtype)


def train_error(label_vec: jax.Array, p: jax.Array) -> jax.Array:
    """``sum_k |y_k - p_k|`` (pairwise order over the F entries; entries past K are 0)."""
    return _tree_sum(jnp.abs(label_vec - p))
