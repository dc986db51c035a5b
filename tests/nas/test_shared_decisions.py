"""Shared decisions: one name= used in several places of a template is one decision."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nas import DNA, ArchDistribution, Space, deferred, floatv, intv, manyof, oneof

OPS = ("conv", "skip", "pool")


def _rows(dnas: DNA) -> set:
    return {tuple(r) for r in np.asarray(dnas.ints)}


def _brute_force_size(sp: Space) -> int:
    """Independent count: every int vector in the DNA box that is valid and canonical."""
    seen = set()
    for row in itertools.product(*[range(n) for n in sp.num_choices]):
        dna = DNA(jnp.asarray(row, jnp.int32), jnp.zeros((0,), jnp.float32))
        try:
            sp.validate(dna)
        except ValueError:
            continue
        seen.add(tuple(np.asarray(sp.canonicalize(dna).ints)))
    return len(seen)


class Block(nnx.Module):
    def __init__(self, din, width, *, rngs):
        self.lin = nnx.Linear(din, width, rngs=rngs)


class Net(nnx.Module):
    def __init__(self, stem, head):
        self.stem, self.head = stem, head


def width_space():
    rngs = nnx.Rngs(0)
    w = lambda: oneof([8, 16, 32], name="width")  # noqa: E731 - two objects, one name
    return Space(deferred(Net)(stem=deferred(Block)(4, w(), rngs=rngs),
                               head=deferred(Block)(w(), 2, rngs=rngs)))


def test_one_width_for_stem_and_head():
    sp = width_space()
    assert sp.names == ("width",) and sp.n_int == 1 and sp.shared_names == ("width",)
    assert sp.size() == 3 and _rows(sp.enumerate()) == {(0,), (1,), (2,)}
    for i in range(3):
        net = sp.materialize(DNA(jnp.array([i], jnp.int32), jnp.zeros((0,), jnp.float32)))
        width = (8, 16, 32)[i]
        assert net.stem.lin.kernel.shape == (4, width) and net.head.lin.kernel.shape == (width, 2)
        np.testing.assert_array_equal(sp.encode(net).ints, [i])
    assert "(shared)" in sp.describe()


def cell_space(stages=3):
    cell = lambda: [oneof(OPS, name=f"cell/edge_{i}") for i in range(3)]  # noqa: E731
    return Space({f"stage{s}": cell() for s in range(stages)} | {"lr": oneof([0.1, 0.01])})


def test_cell_genotype_repeated_across_stages():
    sp = cell_space()
    assert sp.names == ("cell/edge_0", "cell/edge_1", "cell/edge_2", "lr")
    assert sp.size() == 3 ** 3 * 2 == _brute_force_size(sp)
    batch = sp.sample_batch(jax.random.key(0), 64)
    for i in range(64):
        cfg = sp.materialize(jax.tree.map(lambda x, i=i: x[i], batch))
        assert cfg["stage0"] == cfg["stage1"] == cfg["stage2"]
    assert len(_rows(batch)) > 20  # the three edges and lr still vary
    value = {"stage0": ["conv", "skip", "pool"], "stage1": ["conv", "skip", "pool"],
             "stage2": ["conv", "skip", "pool"], "lr": 0.01}
    np.testing.assert_array_equal(sp.encode(value).ints, [0, 1, 2, 1])
    value["stage2"] = ["pool", "skip", "pool"]  # stages disagree: no single genotype
    with pytest.raises(ValueError, match="cannot be produced"):
        sp.encode(value)


def test_mutate_moves_the_shared_choice_everywhere():
    sp = cell_space()
    mutate = jax.jit(sp.mutate)
    dna = sp.sample(jax.random.key(1))
    for s in range(20):
        child = mutate(jax.random.key(s), dna)
        sp.validate(child)
        assert int(jnp.sum(child.ints != dna.ints)) == 1
        cfg = sp.materialize(child)
        assert cfg["stage0"] == cfg["stage1"] == cfg["stage2"]


def test_same_object_with_a_name_is_shared_and_without_one_is_rejected():
    w = oneof([1, 2], name="w")
    assert Space({"a": w, "b": [w, w]}).n_int == 1
    anon = oneof([1, 2])
    with pytest.raises(ValueError, match=r"same oneof object is used at 'a' and at 'b/0'.*name="):
        Space({"a": anon, "b": [anon]})
    with pytest.raises(ValueError, match="list comprehension"):
        Space({"widths": [oneof([1, 2, 3])] * 2})
    # a manyof's positions each hold their own copy of nested choices: not a reuse
    sp = Space(manyof(2, ["x", {"k": oneof([1, 2])}], distinct=False))
    assert sp.n_int == 4 and sp.size() == 9


@pytest.mark.parametrize("a,b,what", [
    (oneof([1, 2], name="x"), oneof([1, 3], name="x"), "candidates"),
    (oneof([1, 2], name="x"), intv(1, 2, name="x"), "kinds"),
    (manyof(2, list("abc"), name="x"), manyof(1, list("abc"), name="x"), "k "),
    (floatv(0, 1, name="x"), floatv(0, 1, "linear", name="x"), None),
    (floatv(0.1, 1, name="x"), floatv(0.1, 1, "log", name="x"), "scale"),
    (oneof([oneof([1, 2]), 3], name="x"), oneof([oneof([1, 2]), 3], name="x"), None),
    (oneof([oneof([1, 2]), 3], name="x"), oneof([oneof([1, 4]), 3], name="x"), "candidates"),
])
def test_same_name_needs_identical_candidates(a, b, what):
    template = {"p": a, "q": b}
    if what is None:
        assert Space(template).shared_names == ("x",)
    else:
        msg = f"decision 'x' is used in several places with different {what}"
        with pytest.raises(ValueError, match=msg):
            Space(template)


def test_explicit_name_colliding_with_a_path_name_is_a_duplicate():
    with pytest.raises(ValueError, match="duplicate decision name 'a'"):
        Space({"a": oneof([1, 2]), "b": oneof([1, 2, 3], name="a")})


def conditional_space():
    x = lambda: oneof([1, 2, 3], name="x")  # noqa: E731
    return Space({"a": oneof(["none", {"w": x()}], name="a"),
                  "b": oneof(["none", {"w": x()}], name="b")})


def test_shared_under_two_conditions_is_active_if_either_holds():
    sp = conditional_space()
    assert sp.names == ("a", "x", "b")
    assert sp.int_decisions[1].conditions == ((0, 1), (2, 1))
    # by hand: (none, none) 1 + (x, none) 3 + (none, x) 3 + (x, x) 3 = 10
    assert sp.size() == 10 == _brute_force_size(sp) == len(_rows(sp.enumerate()))
    for a, b, on in [(0, 0, False), (1, 0, True), (0, 1, True), (1, 1, True)]:
        act, _ = sp.active(DNA(jnp.array([a, 2, b]), jnp.zeros((0,), jnp.float32)))
        assert bool(act[1]) == on
    cfg = sp.materialize(DNA(jnp.array([1, 2, 1], jnp.int32), jnp.zeros((0,), jnp.float32)))
    assert cfg == {"a": {"w": 3}, "b": {"w": 3}}
    rows = _rows(sp.sample_batch(jax.random.key(0), 400))
    assert rows == _rows(sp.enumerate())


def test_size_counts_shared_choices_once_against_brute_force():
    inner = lambda: oneof(["p", {"k": intv(0, 2)}], name="inner")  # noqa: E731
    sp = Space({"d": oneof([[inner()], [inner(), inner()], "flat"], name="depth"),
                "m": manyof(2, ["u", "v", "w"], name="m"), "m2": manyof(2, list("uvw"), name="m")})
    # depth 0 or 1: inner (1 + 3 = 4); depth 2: 1; times manyof distinct ordered 3*2 = 6
    assert sp.size() == (4 + 4 + 1) * 6 == _brute_force_size(sp)
    assert len(_rows(sp.enumerate())) == sp.size()
    cfg = sp.materialize(sp.sample(jax.random.key(3)))
    assert cfg["m"] == cfg["m2"]


def test_arch_distribution_scores_a_shared_decision_once():
    sp = conditional_space()
    dist = ArchDistribution(sp)
    both = DNA(jnp.array([1, 2, 1], jnp.int32), jnp.zeros((0,), jnp.float32))
    assert float(dist.log_prob(both)) == pytest.approx(np.log(1 / 2) * 2 + np.log(1 / 3))
    neither = DNA(jnp.array([0, 0, 0], jnp.int32), jnp.zeros((0,), jnp.float32))
    assert float(dist.log_prob(neither)) == pytest.approx(np.log(1 / 2) * 2)
    for s in range(20):
        sp.validate(dist.sample(jax.random.key(s)))
