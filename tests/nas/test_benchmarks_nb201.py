"""The NB-201-style cell space: template, cell arithmetic, switch model equivalence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nas
from nas.benchmarks import ground_truth as gt
from nas.benchmarks import nb201

TINY = nb201.NetConfig(channels=4, cells_per_stage=1, num_stages=2)


def test_space_is_nb201s_6_edges_by_5_ops_and_roundtrips():
    # one stage of 2 channels: few distinct weight shapes, so eager initialization is quick
    space = nb201.space(nb201.NetConfig(channels=2, num_stages=1))
    assert space.size() == 5 ** 6 == 15625
    assert [d.name for d in space.decisions] == [
        "edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    assert all(d.num_choices == 5 for d in space.decisions)
    dna = nas.DNA(jnp.array([3, 1, 0, 2, 4, 3], jnp.int32), jnp.zeros((0,), jnp.float32))
    model = space.materialize(dna)
    assert isinstance(model, nb201.NB201Net)
    assert model.genotype == ("conv3x3", "skip", "none", "conv1x1", "avgpool3x3", "conv3x3")
    np.testing.assert_array_equal(space.encode(model).ints, dna.ints)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    forward = nnx.jit(lambda m, x: m(x))  # one compile: both models share a graph
    np.testing.assert_array_equal(forward(model, x), forward(space.materialize(dna), x))


def test_op_names_and_parameter_free_set():
    assert nb201.OPS == ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
    assert nb201.PARAMETER_FREE == {"none", "skip", "avgpool3x3"}
    for cls in nb201.OP_CLASSES:
        n = sum(np.size(v) for v in jax.tree.leaves(nnx.state(cls(4, rngs=nnx.Rngs(0)),
                                                               nnx.Param)))
        assert (n == 0) == cls.parameter_free


def _np_avgpool3(x):
    """3x3 average pool, stride 1, padding excluded from the count (NumPy reference)."""
    n, h, w, c = x.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            win = x[:, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            out[:, i, j] = win.mean(axis=(1, 2))
    return out


def test_parameter_free_cell_matches_numpy_dag():
    # edges (1<-0) skip, (2<-0) pool, (2<-1) skip, (3<-0) none, (3<-1) pool, (3<-2) skip
    cell = nb201.Cell(["skip", "avgpool3x3", "skip", "none", "avgpool3x3", "skip"], 3,
                      rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype(np.float32)
    n1 = x
    n2 = _np_avgpool3(x) + n1
    n3 = _np_avgpool3(n1) + n2
    np.testing.assert_allclose(cell(jnp.asarray(x)), n3, rtol=1e-5, atol=1e-5)


def _np_batch_norm(x, scale, bias, eps=1e-5):
    """Batch-statistics normalization over (N, H, W) in float64 (NumPy reference)."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 1, 2))
    var = ((x - mean) ** 2).mean(axis=(0, 1, 2))
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def test_batch_stat_norm_value_and_gradient_match_numpy():
    rng = np.random.default_rng(0)
    # an offset mean (3) and a tiny-variance channel check the centred variance
    x = (rng.normal(size=(4, 5, 5, 3)) * [1.0, 0.5, 1e-2] + 3.0).astype(np.float32)
    norm = nb201.BatchStatNorm(3)
    norm.scale[...] = jnp.array([1.5, -0.5, 2.0])
    norm.bias[...] = jnp.array([0.1, 0.2, -0.3])
    scale, bias = np.asarray(norm.scale[...]), np.asarray(norm.bias[...])
    np.testing.assert_allclose(norm(jnp.asarray(x)), _np_batch_norm(x, scale, bias),
                               rtol=1e-4, atol=2e-4)
    # gradient of sum(w * norm(x)) in x, against central differences of the float64 reference
    w = rng.normal(size=x.shape)
    got = jax.grad(lambda x: jnp.sum(jnp.asarray(w, jnp.float32) * norm(x)))(jnp.asarray(x))
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 3, 1), (3, 4, 4, 2), (2, 0, 1, 2)]:
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[idx] += h
        down[idx] -= h
        fd = (np.sum(w * _np_batch_norm(up, scale, bias))
              - np.sum(w * _np_batch_norm(down, scale, bias))) / (2 * h)
        np.testing.assert_allclose(float(got[idx]), fd, rtol=2e-3, atol=2e-3)


def test_reaches_output_and_arch_string():
    assert not nb201.reaches_output([0] * 6)
    assert nb201.reaches_output([0, 0, 0, 1, 0, 0])  # direct 0 -> 3
    assert nb201.reaches_output([3, 0, 0, 0, 2, 0])  # 0 -> 1 -> 3
    assert not nb201.reaches_output([3, 0, 0, 0, 0, 4])  # node 1 leads nowhere, 2 is empty
    assert nb201.arch_string([3, 3, 3, 1, 3, 3]) == (
        "|conv3x3~0|+|conv3x3~0|conv3x3~1|+|skip~0|conv3x3~1|conv3x3~2|")


def test_switch_net_equals_standalone_net_with_copied_weights():
    switch = gt.SwitchNet(TINY, rngs=nnx.Rngs(1))
    graphdef, state = nnx.split(switch)
    forward = jax.jit(lambda st, x, ops: nnx.merge(graphdef, st)(x, ops))  # one compile
    x = jax.random.normal(jax.random.key(2), (6, 8, 8, 1))
    for ops in ([3, 1, 2, 4, 0, 3], [2, 2, 0, 1, 3, 4], [0, 0, 0, 1, 0, 0]):
        model = nb201.NB201Net(nb201.genotype_of(ops), rngs=nnx.Rngs(9), **TINY.kwargs())
        before = nnx.jit(lambda m, x: m(x))(model, x)
        gt.copy_into_standalone(switch, ops, model)
        after = nnx.jit(lambda m, x: m(x))(model, x)
        np.testing.assert_allclose(forward(state, x, jnp.array(ops)), after, rtol=1e-5,
                                   atol=1e-5)
        assert not np.allclose(before, after)  # the copy really changed the weights


def test_param_count_by_hand():
    # each conv3x3 edge adds 9 c^2 (conv) + 2 c (norm); conv1x1 adds c^2 + 2 c; cells see
    # c = 4 then 8 in TINY
    base = gt.param_count([0] * 6, TINY)
    assert gt.param_count([3] * 6, TINY) - base == 6 * sum(9 * c * c + 2 * c for c in (4, 8))
    assert gt.param_count([2, 0, 0, 0, 0, 0], TINY) - base == sum(c * c + 2 * c for c in (4, 8))
    assert gt.param_count([1, 4, 1, 4, 1, 4], TINY) == base


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="genotype must list 6 ops"):
        nb201.NB201Net(["skip"] * 5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="op must be one of"):
        nb201.NB201Net(["skip"] * 5 + ["sep_conv"], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="channels must be an int >= 1"):
        nb201.NetConfig(channels=0)
    with pytest.raises(ValueError, match="a cell DNA is 6 ints"):
        nb201.genotype_of([0, 1, 5, 0, 0, 0])
