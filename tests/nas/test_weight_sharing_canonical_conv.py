"""Hard mixed ops run nnx.Conv through canonical_conv: same values and gradients as plain
nnx.Conv, and no non-canonical gradient convolution left inside a ``lax.switch`` branch."""

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax
from weight_sharing_cells import data, template

import nas
from nas import weight_sharing as ws
from nas.weight_sharing import canonical_conv

CONFIGS = [  # strides, padding, lhs dilation, rhs dilation, groups, layouts
    ((1, 1), "SAME", None, None, 1, ("NHWC", "HWIO", "NHWC")),
    ((2, 2), "SAME", None, (2, 2), 1, ("NHWC", "HWIO", "NHWC")),
    ((1, 2), ((1, 0), (2, 1)), (1, 2), None, 2, ("NHWC", "HWIO", "NHWC")),
    ((1, 1), "VALID", None, None, 1, ("NCHW", "OIHW", "NCHW")),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_conv_value_gradient_and_second_order_equal_lax(config):
    strides, padding, lhs_dil, rhs_dil, groups, layouts = config
    if layouts[0] == "NHWC":
        x = jax.random.normal(jax.random.key(0), (3, 9, 8, 4))
        w = jax.random.normal(jax.random.key(1), (3, 3, 4 // groups, 6))
    else:
        x = jax.random.normal(jax.random.key(0), (3, 4, 9, 8))
        w = jax.random.normal(jax.random.key(1), (6, 4, 3, 3))
    dn = lax.conv_dimension_numbers(x.shape, w.shape, layouts)

    def loss(conv, x, w):
        return jnp.sum(jnp.sin(conv(x, w, strides, padding, lhs_dil, rhs_dil, dn, groups)))

    want = jax.jit(jax.value_and_grad(lambda x, w: loss(lax.conv_general_dilated, x, w),
                                      (0, 1)))(x, w)
    got = jax.jit(jax.value_and_grad(
        lambda x, w: loss(canonical_conv.conv_general_dilated, x, w), (0, 1)))(x, w)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)

    def grad_norm(conv):  # reverse over reverse through the custom VJP
        return jax.jit(jax.grad(
            lambda w: jnp.sum(jax.grad(lambda x, w: loss(conv, x, w))(x, w) ** 2)))(w)

    np.testing.assert_allclose(grad_norm(canonical_conv.conv_general_dilated),
                               grad_norm(lax.conv_general_dilated), rtol=1e-4, atol=1e-4)


DNA_CONVS = nas.DNA(jnp.array([3, 2, 3, 3, 2, 3], jnp.int32), jnp.zeros((0,), jnp.float32))


def _space():
    return nas.Space(template(channels=4, num_cells=1))


def _loss_and_grads(model, sel, x, y):
    def loss(params):
        m = nnx.merge(graphdef, params, rest)
        out = m(x, selection=sel) if sel is not None else m(x)
        return ws.cross_entropy(out, y)

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return jax.jit(jax.value_and_grad(loss))(params), params


def test_hard_mode_equals_plain_nnx_conv_materialized_model():
    """Each edge a conv (1x1 / 3x3): the supernet's hard mode (canonical convs) gives the
    loss and weight gradients of the stand-alone model that space.materialize builds from
    plain nnx.Conv layers with the same weights."""
    sp = _space()
    x, y = data(8, seed=0)
    dna = sp.validate(DNA_CONVS)
    sn = ws.Supernet(sp)
    (s_loss, s_grad), s_params = _loss_and_grads(sn, ws.from_dna(sp, dna), x, y)
    model = sp.materialize(dna)
    # copy the chosen candidates' weights into the plain model (nnx.Conv, lax's own VJP)
    net = sn.net
    model.stem.kernel[...] = net.stem.kernel[...]
    model.stem.bias[...] = net.stem.bias[...]
    model.head.kernel[...] = net.head.kernel[...]
    model.head.bias[...] = net.head.bias[...]
    for e, op in enumerate(dna.ints.tolist()):
        src, dst = net.cells[0].edges[e].candidates[op].conv, model.cells[0].edges[e].conv
        dst.kernel[...] = src.kernel[...]
        dst.bias[...] = src.bias[...]
    (m_loss, m_grad), _ = _loss_and_grads(model, None, x, y)
    np.testing.assert_allclose(s_loss, m_loss, rtol=1e-5)
    for e, op in enumerate(dna.ints.tolist()):
        got = s_grad["net"]["cells"][0]["edges"][e]["candidates"][op]["conv"]
        want = m_grad["cells"][0]["edges"][e]["conv"]
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(got[name][...], want[name][...], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s_grad["net"]["stem"]["kernel"][...],
                               m_grad["stem"]["kernel"][...], rtol=1e-4, atol=1e-6)
    # and the same as the supernet without canonical convs (plain nnx.Conv in the branches)
    (p_loss, p_grad), _ = _loss_and_grads(ws.Supernet(sp, canonical_convs=False),
                                          ws.from_dna(sp, dna), x, y)
    np.testing.assert_allclose(s_loss, p_loss, rtol=1e-6)
    for g, r in zip(jax.tree.leaves(s_grad), jax.tree.leaves(p_grad), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def _branch_convs(jaxpr, inside=False):
    """dimension_numbers of every convolution, with whether it sits in a cond branch."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive is lax.conv_general_dilated_p:
            found.append((inside, tuple(map(tuple, eqn.params["dimension_numbers"]))))
        for sub in jex.jaxprs_in_params(eqn.params):
            found += _branch_convs(sub, inside or eqn.primitive.name == "cond")
    return found


@pytest.mark.parametrize("canonical", [True, False])
def test_hard_mode_gradient_has_only_canonical_convs_in_branches(canonical):
    sp = _space()
    x, y = data(4, seed=0)
    sn = ws.Supernet(sp, canonical_convs=canonical)
    sel = ws.from_dna(sp, sp.validate(DNA_CONVS))
    graphdef, params, rest = nnx.split(sn, nnx.Param, ...)

    def loss(params):
        return ws.cross_entropy(nnx.merge(graphdef, params, rest)(x, selection=sel), y)

    convs = _branch_convs(jax.make_jaxpr(jax.grad(loss))(params).jaxpr)
    in_branch = [dn for inside, dn in convs if inside]
    canon = tuple(map(tuple, canonical_conv._canonical_specs(4)))
    assert len(in_branch) >= 3 * 6  # forward, input and weight gradient of 6 edge convs
    non_canonical = [dn for dn in in_branch if dn != canon]
    if canonical:
        assert non_canonical == []
    else:  # JAX's own transpose rules: the check above would see them
        assert non_canonical


def test_use_canonical_convs_changes_only_convs_of_the_given_copy():
    sn = ws.Supernet(_space())
    copy = nnx.clone(sn)
    n_convs = sum(isinstance(m, nnx.Conv) for _, m in nnx.iter_graph(sn))
    assert canonical_conv.use_canonical_convs(copy) == n_convs
    assert all(m.conv_general_dilated is lax.conv_general_dilated
               for _, m in nnx.iter_graph(sn) if isinstance(m, nnx.Conv))


def test_canonical_convs_flag_is_checked():
    with pytest.raises(ValueError, match="canonical_convs"):
        ws.Supernet(_space(), canonical_convs="yes")
