"""Convolutions whose gradients run fast inside a ``lax.switch`` branch on XLA:CPU.

A hard mixed op (GDAS, ENAS, random search with sharing, one-shot evaluation) runs the
chosen candidate inside a ``lax.switch`` branch. JAX's transpose rules write a
convolution's gradients as convolutions in non-canonical layouts (weight gradient
``f01b_i01o->01bf``, input gradient with an ``01oi`` kernel). At the top level of a
program XLA:CPU rewrites them with transposes into its fast NHWC/HWIO form; inside a
conditional's branch (or a loop body, jax-ml/jax#12868) it does not, and runs them in a
generic emitter about 30x slower (179 ms vs 5.7 ms for one 3x3 gradient at 64x16x16x16).

:func:`conv_general_dilated` is a drop-in for ``jax.lax.conv_general_dilated`` with the
same forward value and the same gradient (JAX's own transpose rule, evaluated as is),
except that every convolution of the gradient is written with explicit transposes in the
canonical layout (batch, spatial..., feature / spatial..., in, out). It has a custom VJP,
so reverse mode (also twice) works, forward mode (``jax.jvp``) does not.

:func:`use_canonical_convs` points every sub-module that calls
``jax.lax.conv_general_dilated`` through its ``conv_general_dilated`` attribute (every
``flax.nnx.Conv``) at it; the supernet's hard mode does this on its private copy of the
candidates, so the user's model code and modules are unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.extend.core as jex
import numpy as np
from flax import nnx
from jax import lax


def _canonical_specs(ndim: int) -> lax.ConvDimensionNumbers:
    spatial = tuple(range(1, ndim - 1))
    return lax.ConvDimensionNumbers(lhs_spec=(0, ndim - 1, *spatial),
                                    rhs_spec=(ndim - 1, ndim - 2, *range(ndim - 2)),
                                    out_spec=(0, ndim - 1, *spatial))


def _transpose(x: jax.Array, perm: tuple[int, ...]) -> jax.Array:
    return x if perm == tuple(range(len(perm))) else lax.transpose(x, perm)


def _bind_canonical(lhs: jax.Array, rhs: jax.Array, *, dimension_numbers, **params):
    """One ``conv_general_dilated`` primitive with its operands and result transposed so
    that XLA sees the canonical layout; same value."""
    dn = dimension_numbers
    nd = lhs.ndim
    if dn is None:  # lax's default: NCHW / OIHW / NCHW
        dn = lax.ConvDimensionNumbers((0, 1, *range(2, nd)), (0, 1, *range(2, nd)),
                                      (0, 1, *range(2, nd)))
    lhs_spec, rhs_spec, out_spec = dn
    canon = _canonical_specs(nd)
    # canonical axis order: lhs (batch, spatial..., feature), rhs (spatial..., in, out)
    lhs_c = _transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    rhs_c = _transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    out_c = lax.conv_general_dilated_p.bind(lhs_c, rhs_c, dimension_numbers=canon, **params)
    canonical_pos = (out_spec[0], *out_spec[2:], out_spec[1])  # target axis of each out_c axis
    return _transpose(out_c, tuple(int(i) for i in np.argsort(canonical_pos)))


def _eval_canonical(jaxpr: jex.Jaxpr, consts, *args):
    """Evaluate ``jaxpr`` with every convolution rewritten by :func:`_bind_canonical`."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jex.Literal) else env[v]

    for var, val in zip(jaxpr.constvars, consts, strict=True):
        env[var] = val
    for var, val in zip(jaxpr.invars, args, strict=True):
        env[var] = val
    for eqn in jaxpr.eqns:
        if all(isinstance(v, jex.DropVar) for v in eqn.outvars):
            continue  # e.g. the forward value that jax.vjp recomputes
        invals = [read(v) for v in eqn.invars]
        if eqn.primitive is lax.conv_general_dilated_p:
            outs = [_bind_canonical(*invals, **eqn.params)]
        else:
            outs = eqn.primitive.bind(*invals, **eqn.params)
            if not eqn.primitive.multiple_results:
                outs = [outs]
        for var, val in zip(eqn.outvars, outs, strict=True):
            if not isinstance(var, jex.DropVar):
                env[var] = val
    return [read(v) for v in jaxpr.outvars]


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None,
                         **kwargs):
    """``jax.lax.conv_general_dilated`` (same arguments, value and gradient) whose gradient
    convolutions are written in XLA:CPU's canonical layout (fast inside ``lax.switch``).
    Further keyword arguments (e.g. ``out_sharding``) are passed on."""
    conv = functools.partial(
        lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type, **kwargs)

    @jax.custom_vjp
    def run(x, w):
        return conv(x, w)

    def fwd(x, w):
        return conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        closed = jax.make_jaxpr(lambda x, w, g: jax.vjp(conv, x, w)[1](g))(x, w, g)
        dx, dw = _eval_canonical(closed.jaxpr, closed.consts, x, w, g)
        return dx, dw

    run.defvjp(fwd, bwd)
    return run(lhs, rhs)


def use_canonical_convs(module: nnx.Module) -> int:
    """Make every sub-module of ``module`` whose ``conv_general_dilated`` attribute is
    ``jax.lax.conv_general_dilated`` (every ``nnx.Conv``) use :func:`conv_general_dilated`
    instead. Changes ``module`` in place (call it on a copy); returns how many changed."""
    changed = 0
    for _, sub in nnx.iter_graph(module):
        if (isinstance(sub, nnx.Module)
                and getattr(sub, "conv_general_dilated", None) is lax.conv_general_dilated):
            sub.conv_general_dilated = conv_general_dilated
            changed += 1
    return changed
