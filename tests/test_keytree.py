"""keytree: draws declared on a tree of keys and evaluated level by level are exactly the
numbers of the plain jax.random calls (any key kind, x64 or not, either threefry mode)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero.engine import keytree as kt

BOUNDS = [(0, 1), (0, 2), (0, 3), (0, 7), (3, 10), (5, 5), (5, 2), (0, 1000), (-4, 4),
          (0, 2**31 - 1)]


def _tree_draws(key):
    """Draws through a KeyTree, and the same with plain jax.random calls."""
    tree = kt.KeyTree(key)
    a, b, c = tree.root.split(3)
    a1, a2 = a.split(2)
    v = c.split_vec(5)  # a vector node: 5 keys
    d = tree.run({
        "ri32": kt.randint_draw(a1, jnp.int32), "ri": kt.randint_draw(v, shape=(2,)),
        "u": kt.float_draw(a2, jnp.float32, (3,)), "n": kt.float_draw(b, jnp.float32),
        "nd": kt.float_draw(v.split_vec(4)), "bits": b.bits((2, 3)), "keys": v.keys(),
    })
    open_lo = jnp.nextafter(jnp.float32(-1.0), jnp.float32(1.0))
    got = {
        "ri32": [kt.randint(d["ri32"], lo, hi, jnp.int32) for lo, hi in BOUNDS],
        "ri": kt.randint(d["ri"], 0, jnp.arange(1, 6)[:, None]),  # traced, broadcast bounds
        "u": [kt.uniform(d["u"], lo, 1.0, jnp.float32) for lo in (0.0, -1.0, open_lo)],
        "n": kt.normal(d["n"], jnp.float32),
        "nd": kt.normal(d["nd"]), "ud": kt.uniform(d["nd"]),
        "bits": d["bits"], "keys": jax.random.key_data(d["keys"]),
    }
    A, B, C = jax.random.split(key, 3)
    A1, A2 = jax.random.split(A, 2)
    V = jax.random.split(C, 5)
    VV = jax.vmap(lambda k: jax.random.split(k, 4))(V)
    want = {
        "ri32": [jax.random.randint(A1, (), lo, hi, jnp.int32) for lo, hi in BOUNDS],
        "ri": jax.vmap(lambda k, hi: jax.random.randint(k, (2,), 0, hi))(V, jnp.arange(1, 6)),
        "u": [jax.random.uniform(A2, (3,), jnp.float32, lo, 1.0) for lo in (0.0, -1.0, open_lo)],
        "n": jax.random.normal(B, (), jnp.float32),
        "nd": jax.vmap(jax.vmap(jax.random.normal))(VV),
        "ud": jax.vmap(jax.vmap(jax.random.uniform))(VV),
        "bits": jax.random.bits(B, (2, 3), jnp.uint32), "keys": jax.random.key_data(V),
    }
    return got, want


def _assert_same(got, want):
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want),
                            strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, path
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=str(path))


@pytest.mark.parametrize("kind", ["threefry", "raw", "rbg", "not_partitionable", "x64"])
def test_draws_are_jax_random_draws(kind):
    make = {"raw": jax.random.PRNGKey,
            "rbg": lambda s: jax.random.key(s, impl="rbg")}.get(kind, jax.random.key)
    ctx = {"not_partitionable": jax.threefry_partitionable(False),
           "x64": jax.enable_x64(True)}.get(kind, contextlib.nullcontext())
    with ctx:
        draws = jax.jit(_tree_draws)
        for seed in range(20):
            _assert_same(*draws(make(seed)))


def test_threefry2x32_is_jax_split():
    key = jax.random.key(42)
    d = jax.random.key_data(key)
    ctr = jnp.arange(300, dtype=jnp.uint32)
    h = jnp.stack(jax.jit(kt.threefry2x32)(d[0], d[1], jnp.zeros_like(ctr), ctr), axis=-1)
    np.testing.assert_array_equal(h, jax.random.key_data(jax.random.split(key, 300)))


def test_declare_after_run_and_read_before_run_fail():
    tree = kt.KeyTree(jax.random.key(0))
    pending = tree.root.bits()
    with pytest.raises(RuntimeError, match="before"):
        pending.get()
    tree.run(pending)
    with pytest.raises(RuntimeError, match="after"):
        tree.root.split(2)
