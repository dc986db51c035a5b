"""Space compilation, DNA, materialize/encode, sampling and mutation."""

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import nas
from nas import DNA, Space, deferred, floatv, intv, manyof, oneof


def nested_space():
    return Space({
        "cell": {"edge_3": {"op": oneof(["conv", {"k": oneof([1, 3]), "w": intv(2, 4)}, "skip"])}},
        "layers": manyof(2, ["a", "b", "c"], distinct=True, sorted=True),
    })


def test_names_are_readable_paths():
    sp = nested_space()
    assert sp.names == ("cell/edge_3/op", "cell/edge_3/op[1]/k", "cell/edge_3/op[1]/w",
                        "layers/0", "layers/1")
    named = Space([oneof([1, 2], name="width"), {"x": floatv(0, 1, name="drop")}])
    assert named.names == ("width", "drop")  # an explicit name= is the whole name


def test_size_matches_hand_count_and_enumeration():
    sp = nested_space()
    assert sp.size() == (1 + 2 * 3 + 1) * math.comb(3, 2) == 24
    dnas = sp.enumerate()
    assert dnas.ints.shape == (24, sp.n_int)
    assert len({tuple(r) for r in np.asarray(dnas.ints)}) == 24


@pytest.mark.parametrize("distinct,is_sorted,expected", [
    (True, True, 3), (True, False, 6), (False, True, 6), (False, False, 9)])
def test_manyof_sizes(distinct, is_sorted, expected):
    sp = Space(manyof(2, ["a", "b", "c"], distinct=distinct, sorted=is_sorted))
    assert sp.size() == expected
    assert sp.enumerate().ints.shape[0] == expected
    values = [sp.materialize(jax.tree.map(lambda x, i=i: x[i], sp.enumerate()))
              for i in range(expected)]
    assert len({tuple(v) for v in values}) == expected


def test_manyof_with_nested_candidates_size():
    # candidates of sizes 1 and 2: with repeats (1+2)^2 = 9; distinct ordered 2*(1*2) = 4
    cands = ["x", {"k": oneof([1, 2])}]
    assert Space(manyof(2, cands, distinct=False)).size() == 9
    sp = Space(manyof(2, cands, distinct=True))
    assert sp.size() == 4 and sp.enumerate().ints.shape[0] == 4


def test_enumerate_materialize_encode_roundtrip():
    sp = nested_space()
    dnas = sp.enumerate()
    for i in range(dnas.ints.shape[0]):
        dna = jax.tree.map(lambda x, i=i: x[i], dnas)
        value = sp.materialize(dna)
        np.testing.assert_array_equal(sp.encode(value).ints, dna.ints)
    assert sp.materialize(sp.encode({"cell": {"edge_3": {"op": {"k": 3, "w": 4}}},
                                     "layers": ["a", "c"]})) == {
        "cell": {"edge_3": {"op": {"k": 3, "w": 4}}}, "layers": ["a", "c"]}
    with pytest.raises(ValueError, match="cannot be produced"):
        sp.encode({"cell": {"edge_3": {"op": "pool"}}, "layers": ["a", "c"]})


def test_samples_are_valid_canonical_and_uniform():
    sp = nested_space()
    all_rows = {tuple(r) for r in np.asarray(sp.enumerate().ints)}
    batch = jax.jit(sp.sample_batch, static_argnums=1)(jax.random.key(0), 3000)
    rows = [tuple(r) for r in np.asarray(batch.ints)]
    assert set(rows) <= all_rows
    counts = collections.Counter(r[0] for r in rows)  # top-level op: uniform over 3
    for c in range(3):
        assert abs(counts[c] / 3000 - 1 / 3) < 0.04
    layer_pairs = collections.Counter(r[3:] for r in rows)
    assert set(layer_pairs) == {(0, 1), (0, 2), (1, 2)}


def test_log_float_sampling_is_log_uniform():
    sp = Space(floatv(1e-4, 1.0, "log"))
    x = np.asarray(sp.sample_batch(jax.random.key(1), 4000).floats[:, 0])
    assert x.min() >= np.float32(1e-4) and x.max() <= 1.0
    assert abs(np.median(np.log10(x)) - (-2.0)) < 0.15  # geometric middle of 1e-4..1


MUTATION_SPACE = Space({"a": oneof(list(range(5))), "m": manyof(3, list("abcdef")),
                        "n": intv(0, 9)})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_mutation_changes_exactly_one_decision_and_stays_valid(seed):
    sp = MUTATION_SPACE
    key = jax.random.key(seed)
    dna = sp.sample(key)
    child = _mutate(sp)(jax.random.fold_in(key, 1), dna)
    sp.validate(child)  # distinct manyof stays distinct
    assert int(jnp.sum(child.ints != dna.ints)) == 1


_MUTATORS = {}


def _mutate(sp):
    if sp not in _MUTATORS:
        _MUTATORS[sp] = jax.jit(sp.mutate)
    return _MUTATORS[sp]


def test_mutation_redraws_newly_active_subtree():
    sp = Space(oneof(["a", {"k": intv(0, 99)}]))
    dna = DNA(jnp.array([0, 0], jnp.int32), jnp.zeros((0,), jnp.float32))
    ks = {int(sp.mutate(jax.random.key(s), dna).ints[1]) for s in range(20)}
    assert len(ks) > 5  # not always the reset value 0


def test_invalid_dna_errors_name_the_slot():
    sp = Space({"op": oneof(["a", "b"]), "m": manyof(2, ["x", "y", "z"], sorted=True),
                "lr": floatv(0.1, 1.0)})
    ok = sp.sample(jax.random.key(0))
    with pytest.raises(ValueError, match="'op' is out of range"):
        sp.materialize(DNA(ok.ints.at[0].set(2), ok.floats))
    with pytest.raises(ValueError, match="repeats a choice"):
        sp.materialize(DNA(jnp.array([0, 1, 1]), ok.floats))
    with pytest.raises(ValueError, match="is sorted but DNA is not"):
        sp.materialize(DNA(jnp.array([0, 2, 1]), ok.floats))
    with pytest.raises(ValueError, match="'lr' is outside"):
        sp.materialize(DNA(ok.ints, jnp.array([2.0])))
    with pytest.raises(ValueError, match="shapes"):
        sp.materialize(DNA(jnp.zeros(5, jnp.int32), ok.floats))
    with pytest.raises(ValueError, match="nas.DNA"):
        sp.materialize([0, 1, 2])


@pytest.mark.parametrize("make,match", [
    (lambda: Space({"a": oneof([1, 2], name="x"), "b": oneof([1, 3], name="x")}),
     "'x' is used in several places with different candidates"),
    (lambda: Space({"x": oneof([1, 2]), "b": oneof([1, 2], name="x")}), "duplicate"),
    (lambda: oneof([]), "at least one"),
    (lambda: oneof("abc"), "list or tuple"),
    (lambda: manyof(4, [1, 2, 3]), "k \\(4\\) must be <="),
    (lambda: manyof(0, [1, 2, 3]), "manyof.k"),
    (lambda: floatv(0.0, 1.0, "log"), "must be > 0"),
    (lambda: floatv(1.0, 0.0), "low < high"),
    (lambda: floatv(0.1, 1.0, "cubic"), "scale must be one of"),
    (lambda: intv(3, 1), "low <= high"),
    (lambda: oneof([1], name="a//b"), "non-empty parts"),
    (lambda: Space({"a": 1}), "no choice"),
    (lambda: Space(manyof(2, [oneof([1, 2]), 3], sorted=True)), "sorted=True is not supported"),
])
def test_malformed_spaces_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


class MLP(nnx.Module):
    """An ordinary NNX model: nothing in it knows about nas."""

    def __init__(self, widths, act, *, rngs):
        dims = [4, *widths]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in pairs])
        self.act = act
        self.head = nnx.Linear(dims[-1], 2, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return self.head(x)


def test_flax_nnx_model_materialize_and_encode():
    rngs = nnx.Rngs(0)
    sp = Space(deferred(MLP)(
        widths=oneof([[8], [16, 16], [intv(4, 6)]]), act=oneof([nnx.relu, nnx.tanh]), rngs=rngs))
    assert sp.names == ("widths", "widths[2]/0", "act")
    assert sp.size() == (1 + 1 + 3) * 2
    dna = DNA(jnp.array([1, 0, 1], jnp.int32), jnp.zeros((0,), jnp.float32))
    model = sp.materialize(dna)
    assert isinstance(model, MLP) and model.act is nnx.tanh
    assert [lyr.kernel.shape for lyr in model.layers] == [(4, 16), (16, 16)]
    assert model(jnp.ones((3, 4))).shape == (3, 2)
    np.testing.assert_array_equal(sp.encode(model).ints, dna.ints)
    m2 = sp.materialize(DNA(jnp.array([2, 1, 0], jnp.int32), jnp.zeros((0,), jnp.float32)))
    assert m2.layers[0].kernel.shape == (4, 5)
    assert sp.decode(sp.encode(m2)) == {"widths": "[1 items]", "widths[2]/0": 5, "act": "relu"}


def test_public_api_exports():
    for name in ("oneof", "manyof", "floatv", "intv", "Space", "DNA", "RegularizedEvolution",
                 "RandomSearch", "Reinforce", "search", "run_vectorized", "ArchParam"):
        assert hasattr(nas, name)
