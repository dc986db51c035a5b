"""``jax.random`` draws from a tree of keys, evaluated one tree level at a time.

Mutating a child takes a few dozen draws (splits, randint, uniform, normal) from a tree
of keys up to eight splits deep. Called one by one, every draw is a threefry evaluation,
and XLA on CPU runs each as a 5-iteration while loop: those loops were most of the time
of a jitted ``ask`` (79 of them per step). Here the draws are *declared* first: a static
tree of :class:`KeyNode` s holding the splits and bit draws asked of them. Then
:meth:`KeyTree.run` evaluates the tree with ONE hash loop per tree level, and the bits
become numbers with ``jax.random``'s own arithmetic (:func:`randint`, :func:`uniform`,
:func:`normal`).

The numbers are exactly those of the plain ``jax.random`` calls (tests check this): with
the threefry key and ``jax_threefry_partitionable`` (JAX's default), ``split(k, n)[i]``
and element ``i`` of ``bits(k, shape)`` (flattened) are both functions of
threefry(k, counter i) alone, so every draw of a level comes out of one hash of all the
level's (key, counter) pairs. With another key implementation or flag value, each draw
is its own exact ``jax.random`` call instead (slower, same numbers).

Usage (unbatched code; vmap it)::

    tree = KeyTree(key)
    k_a, k_b = tree.root.split(2)
    draws = {"i": randint_draw(k_a), "u": float_draw(k_b, jnp.float32, (3,))}
    d = tree.run(draws)  # the same pytree, with bit arrays
    i = randint(d["i"], 0, 10)  # == jax.random.randint(k_a, (), 0, 10)
    u = uniform(d["u"], -1.0, 1.0, jnp.float32)  # == jax.random.uniform(k_b, (3,), ...)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def default_int():
    """``jax.random.randint``'s default dtype (int64 under x64, else int32)."""
    return jax.dtypes.canonicalize_dtype(int)


def default_float():
    """``jax.random.uniform``'s default dtype (float64 under x64, else float32)."""
    return jax.dtypes.canonicalize_dtype(float)


class Pending:
    """Bits a :class:`KeyNode` will produce (set by :meth:`KeyTree.run`)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = None

    def get(self):
        if self.value is None:
            raise RuntimeError("random draw read before KeyTree.run()")
        return self.value


class KeyNode:
    """A key (or an array of keys of ``shape``) in a :class:`KeyTree`."""

    def __init__(self, tree: KeyTree, level: int, shape: tuple):
        self.tree, self.level, self.shape = tree, level, tuple(shape)
        # ("split", n, KeyNode | tuple of KeyNodes) or ("bits", shape, width, Pending)
        self.requests = []
        self.value = None  # set by KeyTree.run: raw key data (threefry path) or keys
        tree._add(self)

    def split(self, n: int) -> tuple[KeyNode, ...]:
        """``jax.random.split(key, n)`` as ``n`` nodes."""
        kids = tuple(KeyNode(self.tree, self.level + 1, self.shape) for _ in range(n))
        self.requests.append(("split", n, kids))
        return kids

    def split_vec(self, n: int) -> KeyNode:
        """``jax.random.split(key, n)`` as one node of shape ``self.shape + (n,)``."""
        kid = KeyNode(self.tree, self.level + 1, self.shape + (n,))
        self.requests.append(("split", n, kid))
        return kid

    def bits(self, shape=(), width=32) -> Pending:
        """``jax.random.bits(key, shape, uint{width})`` (shape ``self.shape + shape``)."""
        if width not in (32, 64):
            raise ValueError(f"bit width must be 32 or 64, got {width}")
        out = Pending()
        self.requests.append(("bits", tuple(shape), width, out))
        return out

    def keys(self) -> Pending:
        """The node's keys themselves, as ``jax.random.split`` gives them: a key array of
        ``self.shape``, or raw ``uint32[..., 2]`` key data under a raw root key."""
        if self.tree.done:
            raise RuntimeError("random draws declared after KeyTree.run()")
        out = Pending()
        self.tree._key_requests.append((self, out))
        return out


class KeyTree:
    """The derivation tree of the draws under ``key``."""

    def __init__(self, key):
        self.raw = not jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        if self.raw:
            key = jax.random.wrap_key_data(key)  # a raw uint32 key, as jax.random takes it
        self.key = key
        self.levels: list[list[KeyNode]] = []
        self._key_requests: list[tuple[KeyNode, Pending]] = []
        self.done = False
        self.root = KeyNode(self, 0, key.shape)

    def _add(self, node: KeyNode) -> None:
        if self.done:
            raise RuntimeError("random draws declared after KeyTree.run()")
        while len(self.levels) <= node.level:
            self.levels.append([])
        self.levels[node.level].append(node)

    def run(self, draws):
        """Evaluate every declared draw; returns ``draws`` (a pytree of :class:`Pending`)
        with their values."""
        self.done = True
        impl = jax.random.key_impl(self.key)
        threefry = str(impl) == "threefry2x32" and jax.config.jax_threefry_partitionable
        self.root.value = jax.random.key_data(self.key) if threefry else self.key
        for nodes in self.levels:
            nodes = [n for n in nodes if n.requests]
            if nodes:
                (_level_threefry if threefry else _level_exact)(nodes)
        for node, out in self._key_requests:
            keys = node.value
            if threefry and not self.raw:
                keys = jax.random.wrap_key_data(keys, impl=impl)
            elif self.raw and not threefry:
                keys = jax.random.key_data(keys)
            out.value = keys
        return jax.tree.map(Pending.get, draws)


def _count(node: KeyNode) -> int:
    """Counters (threefry inputs) a node's requests need."""
    return max(r[1] if r[0] == "split" else math.prod(r[1]) for r in node.requests)


def _level_threefry(nodes):
    """One hash of every (key, counter) pair the level needs, flattened."""
    counts = [_count(n) for n in nodes]
    k0, k1, ctr = [], [], []
    for n, c in zip(nodes, counts, strict=True):
        shape = (*n.shape, c)
        k0.append(jnp.broadcast_to(n.value[..., 0, None], shape).reshape(-1))
        k1.append(jnp.broadcast_to(n.value[..., 1, None], shape).reshape(-1))
        ctr.append(np.broadcast_to(np.arange(c, dtype=np.uint32), shape).reshape(-1))
    k0, k1 = (jnp.concatenate(k) if len(k) > 1 else k[0] for k in (k0, k1))
    ctr = jnp.asarray(np.concatenate(ctr))
    h0, h1 = threefry2x32(k0, k1, jnp.zeros_like(ctr), ctr)
    off = 0
    for n, c in zip(nodes, counts, strict=True):
        m = math.prod(n.shape) * c
        h0n, h1n = h0[off:off + m].reshape(*n.shape, c), h1[off:off + m].reshape(*n.shape, c)
        off += m
        for req in n.requests:
            if req[0] == "split":  # key i = threefry(key, i)
                _, k, kids = req
                if isinstance(kids, KeyNode):
                    kids.value = jnp.stack([h0n[..., :k], h1n[..., :k]], axis=-1)
                else:
                    for i, kid in enumerate(kids):
                        kid.value = jnp.stack([h0n[..., i], h1n[..., i]], axis=-1)
            else:  # bits: threefry(key, i)'s halves xor-ed (32) or joined (64)
                _, shape, width, out = req
                size = math.prod(shape)
                hi, lo = h0n[..., :size], h1n[..., :size]
                if width == 32:
                    b = hi ^ lo
                else:
                    b = (hi.astype(jnp.uint64) << jnp.uint64(32)) | lo.astype(jnp.uint64)
                out.value = b.reshape(*n.shape, *shape)


def _level_exact(nodes):
    """Every request as its own jax.random call (any key implementation)."""
    for n in nodes:
        flat = n.value.reshape(-1)
        for req in n.requests:
            if req[0] == "split":
                _, k, kids = req
                v = jax.vmap(lambda key, k=k: jax.random.split(key, k))(flat)
                v = v.reshape(*n.shape, k)
                if isinstance(kids, KeyNode):
                    kids.value = v
                else:
                    for i, kid in enumerate(kids):
                        kid.value = v[..., i]
            else:
                _, shape, width, out = req
                dt = jnp.uint32 if width == 32 else jnp.uint64
                v = jax.vmap(lambda key, s=shape, dt=dt: jax.random.bits(key, s, dt))(flat)
                out.value = v.reshape(*n.shape, *shape)


def threefry2x32(k0, k1, x0, x1):
    """The Threefry-2x32 hash (20 rounds) of counters (x0, x1) under key (k0, k1), what
    ``jax.random``'s threefry2x32 primitive computes; elementwise on uint32 arrays.

    A loop of 10 iterations of 2 rounds, carrying only x0, x1. Written out without a
    loop, XLA fuses the hash into each of its consumers and recomputes it there, down the
    whole tree. With 4 rounds per iteration (JAX's CPU lowering) XLA splits each
    iteration over 2 threads, which costs more than it saves at these sizes on a 2-core
    CPU (measured: ``ask`` 12% slower; but 20% faster with one thread)."""
    rot = np.array([[13, 15, 26, 6], [17, 29, 16, 24]], np.uint32)
    k2 = k0 ^ k1 ^ np.uint32(0x1BD11BDA)

    def body(i, x):
        x0, x1 = x
        first, even = i % 2 == 0, (i // 2) % 2 == 0  # rounds 2i, 2i + 1 of 4-round group i // 2
        for j in range(2):
            r = jnp.where(even, jnp.where(first, rot[0, j], rot[0, j + 2]),
                          jnp.where(first, rot[1, j], rot[1, j + 2]))
            x0 = x0 + x1
            x1 = lax.shift_left(x1, r) | lax.shift_right_logical(x1, np.uint32(32) - r)
            x1 = x0 ^ x1
        # after each group g = i // 2: x0 += ks[g + 1], x1 += ks[g + 2] + g + 1 (ks mod 3)
        g = i // 2
        m = g % 3
        a = jnp.where(m == 0, k1, jnp.where(m == 1, k2, k0))
        b = jnp.where(m == 0, k2, jnp.where(m == 1, k0, k1)) + (g + 1).astype(jnp.uint32)
        return (jnp.where(first, x0, x0 + a), jnp.where(first, x1, x1 + b))

    return lax.fori_loop(0, 10, body, (x0 + k0, x1 + k1))


# ---------------------------------------------------------------------------------------
# Declaring draws, and jax.random's arithmetic on their bits
# ---------------------------------------------------------------------------------------


def randint_draw(node: KeyNode, dtype=None, shape=()):
    """Declare ``jax.random.randint(key, shape, lo, hi, dtype)`` (bounds given to
    :func:`randint`; one draw may be read with several bounds, as the same key would)."""
    width = jnp.iinfo(dtype or default_int()).bits
    k1, k2 = node.split(2)
    return k1.bits(shape, width), k2.bits(shape, width)


def float_draw(node: KeyNode, dtype=None, shape=()):
    """Declare ``jax.random.uniform`` or ``jax.random.normal`` of ``dtype``."""
    return node.bits(shape, jnp.finfo(dtype or default_float()).bits)


def randint(bits, minval, maxval, dtype=None):
    """``jax.random.randint``'s arithmetic (``jax._src.random.core._randint``) on the bits
    of its two sub-keys; the bounds must fit ``dtype``."""
    higher, lower = bits
    dtype = jnp.dtype(dtype or default_int())
    udt = higher.dtype
    minval = jnp.asarray(minval).astype(dtype)
    maxval = jnp.asarray(maxval).astype(dtype)
    span = lax.convert_element_type(maxval - minval, udt)
    span = jnp.where(maxval <= minval, jnp.ones_like(span), span)
    mult = lax.rem(jnp.asarray(2 ** (jnp.iinfo(dtype).bits // 2), udt), span)
    mult = lax.rem(mult * mult, span)
    offset = lax.rem(lax.rem(higher, span) * mult + lax.rem(lower, span), span)
    return minval + offset.astype(dtype)


def uniform(bits, minval=0.0, maxval=1.0, dtype=None):
    """``jax.random.uniform``'s arithmetic (``_uniform``) on its bits."""
    dtype = jnp.dtype(dtype or default_float())
    info = jnp.finfo(dtype)
    udt = bits.dtype
    minval = lax.convert_element_type(minval, dtype)
    maxval = lax.convert_element_type(maxval, dtype)
    fbits = lax.shift_right_logical(bits, jnp.asarray(info.bits - info.nmant, udt))
    fbits = fbits | jnp.asarray(np.array(1.0, dtype).view(udt), udt)
    floats = lax.bitcast_convert_type(fbits, dtype) - jnp.asarray(1.0, dtype)
    return jnp.maximum(minval, floats * (maxval - minval) + minval)


def normal(bits, dtype=None):
    """``jax.random.normal``'s arithmetic (``_normal_real``) on its bits."""
    dtype = jnp.dtype(dtype or default_float())
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = uniform(bits, lo, np.array(1.0, dtype), dtype)
    return lax.mul(jnp.asarray(np.sqrt(2), dtype), lax.erf_inv(u))
